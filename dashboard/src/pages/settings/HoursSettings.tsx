import { ActionIcon, Button, Card, Checkbox, Group, Select, Stack, Switch, Text } from '@mantine/core';
import { TimeInput } from '@mantine/dates';
import { useQuery } from '@tanstack/react-query';
import { useMemo, useState } from 'react';
import { api } from '../../api/client';
import { WEEKDAYS, type BusinessHours, type TenantSettings, type TimeRange, type Weekday } from '../../api/types';
import { ErrorState, Loading, PageTitle } from '../../components/common';
import { useSettingsMutation } from './shared';

const DAY_NAMES: Record<Weekday, string> = {
  mon: 'Monday',
  tue: 'Tuesday',
  wed: 'Wednesday',
  thu: 'Thursday',
  fri: 'Friday',
  sat: 'Saturday',
  sun: 'Sunday',
};

/** Problems with one day's ranges, or null. */
export function validateDay(ranges: TimeRange[]): string | null {
  const hhmm = /^([01]\d|2[0-3]):[0-5]\d$|^24:00$/;
  for (const [open, close] of ranges) {
    if (!hhmm.test(open) || !hhmm.test(close)) return 'Use HH:MM (24-hour).';
    if (open >= close) return 'Opening must be before closing.';
  }
  const sorted = [...ranges].sort((a, b) => a[0].localeCompare(b[0]));
  for (let i = 1; i < sorted.length; i++) if (sorted[i]![0] < sorted[i - 1]![1]) return 'Ranges overlap.';
  return null;
}

function timezones(current: string): string[] {
  const intl = Intl as unknown as { supportedValuesOf?: (k: string) => string[] };
  const all = intl.supportedValuesOf ? intl.supportedValuesOf('timeZone') : [];
  return all.includes(current) ? all : [current, ...all];
}

function HoursForm({ tenant }: { tenant: TenantSettings }) {
  const [tz, setTz] = useState(tenant.timezone);
  const [alwaysOpen, setAlwaysOpen] = useState(Object.keys(tenant.business_hours).length === 0);
  const [hours, setHours] = useState<BusinessHours>(() =>
    Object.keys(tenant.business_hours).length === 0
      ? { mon: [['09:00', '17:00']], tue: [['09:00', '17:00']], wed: [['09:00', '17:00']], thu: [['09:00', '17:00']], fri: [['09:00', '17:00']] }
      : tenant.business_hours,
  );
  const zones = useMemo(() => timezones(tenant.timezone), [tenant.timezone]);
  const errors = Object.fromEntries(WEEKDAYS.map((d) => [d, validateDay(hours[d] ?? [])]));
  const invalid = !alwaysOpen && Object.values(errors).some(Boolean);

  const save = useSettingsMutation(
    () => api.patchTenant({ timezone: tz, business_hours: alwaysOpen ? {} : hours }),
    { success: 'Business hours saved.', failure: 'Could not save business hours', invalidate: ['tenant'] },
  );

  const setDay = (d: Weekday, ranges: TimeRange[] | undefined) =>
    setHours((h) => {
      const next = { ...h };
      if (ranges) next[d] = ranges;
      else delete next[d];
      return next;
    });

  return (
    <Stack maw={640}>
      <Select label="Time zone" searchable data={zones} value={tz} onChange={(v) => v && setTz(v)} allowDeselect={false} />
      <Switch label="Always open (24/7)" checked={alwaysOpen} onChange={(e) => setAlwaysOpen(e.currentTarget.checked)} />
      {!alwaysOpen && (
        <Card withBorder>
          <Stack gap="sm">
            {WEEKDAYS.map((d) => {
              const ranges = hours[d];
              return (
                <Group key={d} align="flex-start" wrap="nowrap">
                  <Checkbox
                    w={120}
                    mt={8}
                    label={DAY_NAMES[d]}
                    checked={!!ranges}
                    onChange={(e) => setDay(d, e.currentTarget.checked ? [['09:00', '17:00']] : undefined)}
                  />
                  <Stack gap={4} style={{ flex: 1 }}>
                    {!ranges && (
                      <Text size="sm" c="dimmed" mt={8}>
                        Closed
                      </Text>
                    )}
                    {ranges?.map(([open, close], i) => (
                      <Group key={i} gap={6} wrap="nowrap">
                        <TimeInput
                          aria-label={`${DAY_NAMES[d]} opens`}
                          value={open}
                          onChange={(e) => setDay(d, ranges.map((r, j) => (j === i ? [e.currentTarget.value, r[1]] : r)))}
                        />
                        <Text size="sm">–</Text>
                        <TimeInput
                          aria-label={`${DAY_NAMES[d]} closes`}
                          value={close}
                          onChange={(e) => setDay(d, ranges.map((r, j) => (j === i ? [r[0], e.currentTarget.value] : r)))}
                        />
                        <ActionIcon
                          variant="subtle"
                          color="gray"
                          aria-label="Remove range"
                          onClick={() => setDay(d, ranges.length > 1 ? ranges.filter((_, j) => j !== i) : undefined)}
                        >
                          ×
                        </ActionIcon>
                      </Group>
                    ))}
                    {ranges && (
                      <Button
                        variant="subtle"
                        size="compact-xs"
                        w="fit-content"
                        onClick={() => setDay(d, [...ranges, ['13:00', '17:00']])}
                      >
                        + add a range
                      </Button>
                    )}
                    {errors[d] && (
                      <Text size="xs" c="red">
                        {errors[d]}
                      </Text>
                    )}
                  </Stack>
                </Group>
              );
            })}
          </Stack>
        </Card>
      )}
      <Group>
        <Button onClick={() => save.mutate(undefined)} loading={save.isPending} disabled={invalid}>
          Save
        </Button>
      </Group>
    </Stack>
  );
}

export function HoursSettings() {
  const tenant = useQuery({ queryKey: ['tenant'], queryFn: () => api.getTenant() });
  return (
    <>
      <PageTitle>Business hours</PageTitle>
      <Text size="sm" c="dimmed" mb="md">
        Outside these hours calls take a message instead of being transferred.
      </Text>
      {tenant.isPending ? (
        <Loading />
      ) : tenant.isError ? (
        <ErrorState error={tenant.error} onRetry={() => tenant.refetch()} />
      ) : (
        <HoursForm key={tenant.data.updated_at} tenant={tenant.data} />
      )}
    </>
  );
}
