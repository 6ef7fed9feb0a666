import { Button, Card, Group, Select, Stack, Text, TextInput } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { api } from '../../api/client';
import { CALL_MODES, type CallMode, type PhoneNumber } from '../../api/types';
import { EmptyState, ErrorState, Loading, PageTitle } from '../../components/common';
import { formatPhone } from '../../lib/format';
import { E164, useSettingsMutation } from './shared';

const MODE_HELP: Record<CallMode, string> = {
  screening: 'The AI asks who is calling and why, then transfers, takes a message or ends spam.',
  receptionist: 'The AI answers questions from the knowledge base, transfers to departments, takes leads.',
  forward: 'Rings the owner first; a missed call gets a text back, and the AI answers if nobody replies.',
};

function NumberRow({ n }: { n: PhoneNumber }) {
  const [mode, setMode] = useState<CallMode>(n.mode);
  const [owner, setOwner] = useState(n.owner_phone ?? '');
  const [name, setName] = useState(n.friendly_name ?? '');
  const save = useSettingsMutation(() => api.patchNumber(n.id, { mode, owner_phone: owner || null, friendly_name: name || null }), {
    success: `${formatPhone(n.e164)} saved.`,
    failure: 'Could not save the number',
    invalidate: ['numbers'],
  });
  const ownerError = owner && !E164.test(owner) ? 'E.164, e.g. +15551234567' : mode === 'forward' && !owner ? 'Forward mode needs an owner phone' : undefined;
  const dirty = mode !== n.mode || owner !== (n.owner_phone ?? '') || name !== (n.friendly_name ?? '');
  return (
    <Card withBorder>
      <Stack gap="xs">
        <Group justify="space-between">
          <Text fw={600}>{formatPhone(n.e164)}</Text>
          {n.region && (
            <Text size="xs" c="dimmed">
              region {n.region}
            </Text>
          )}
        </Group>
        <Group grow align="flex-start" wrap="wrap">
          <TextInput label="Name" value={name} onChange={(e) => setName(e.currentTarget.value)} miw={160} />
          <Select
            label="Mode"
            data={CALL_MODES.map((m) => ({ value: m, label: m.charAt(0).toUpperCase() + m.slice(1) }))}
            value={mode}
            onChange={(v) => v && setMode(v as CallMode)}
            allowDeselect={false}
            miw={160}
          />
          <TextInput
            label="Owner phone"
            description="Transfers and forwarding ring this phone"
            value={owner}
            onChange={(e) => setOwner(e.currentTarget.value.trim())}
            error={ownerError}
            miw={180}
          />
        </Group>
        <Text size="xs" c="dimmed">
          {MODE_HELP[mode]}
        </Text>
        <Group justify="flex-end">
          <Button size="xs" disabled={!dirty || !!ownerError} loading={save.isPending} onClick={() => save.mutate(undefined)}>
            Save
          </Button>
        </Group>
      </Stack>
    </Card>
  );
}

export function NumbersSettings() {
  const numbers = useQuery({ queryKey: ['numbers'], queryFn: () => api.listNumbers() });
  return (
    <>
      <PageTitle>Numbers & modes</PageTitle>
      {numbers.isPending ? (
        <Loading />
      ) : numbers.isError ? (
        <ErrorState error={numbers.error} onRetry={() => numbers.refetch()} />
      ) : numbers.data.items.length === 0 ? (
        <EmptyState title="No numbers yet">An operator adds numbers with `voice-node number add`.</EmptyState>
      ) : (
        <Stack>
          {numbers.data.items.map((n) => (
            <NumberRow key={`${n.id}:${n.updated_at}`} n={n} />
          ))}
        </Stack>
      )}
    </>
  );
}
