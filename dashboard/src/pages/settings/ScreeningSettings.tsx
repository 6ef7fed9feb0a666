import { Badge, Button, Card, Group, NumberInput, SegmentedControl, Select, Stack, Table, Text, TextInput, Title } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { api } from '../../api/client';
import { SCREENING_ACTIONS, SCREENING_LABELS, type ScreeningAction, type ScreeningLabel, type ScreeningPolicy } from '../../api/types';
import { EmptyState, ErrorState, LabelBadge, Loading, PageTitle } from '../../components/common';
import { ConfirmButton } from '../../components/ConfirmButton';
import { humanize } from '../../lib/format';
import { LABEL_TEXT } from '../../lib/labels';
import { useSettingsMutation } from './shared';

const ACTION_OPTIONS = SCREENING_ACTIONS.map((a) => ({ value: a, label: humanize(a) }));
const LABEL_OPTIONS = SCREENING_LABELS.map((l) => ({ value: l, label: LABEL_TEXT[l] }));

function PolicyRow({ p }: { p: ScreeningPolicy }) {
  const [action, setAction] = useState<ScreeningAction>(p.action);
  const [min, setMin] = useState<number>(p.min_confidence);
  const save = useSettingsMutation(() => api.putPolicy(p.label, { action, min_confidence: min }), {
    success: `Policy for ${LABEL_TEXT[p.label]} saved.`,
    failure: 'Could not save the policy',
    invalidate: ['screening', 'policies'],
  });
  const reset = useSettingsMutation(() => api.resetPolicy(p.label), {
    success: `Policy for ${LABEL_TEXT[p.label]} reset.`,
    failure: 'Could not reset the policy',
    invalidate: ['screening', 'policies'],
  });
  const dirty = action !== p.action || min !== p.min_confidence;
  return (
    <Table.Tr>
      <Table.Td>
        <Group gap={6}>
          <LabelBadge label={p.label} />
          {p.is_default && (
            <Text size="xs" c="dimmed">
              default
            </Text>
          )}
        </Group>
      </Table.Td>
      <Table.Td>
        <Select aria-label={`Action for ${p.label}`} data={ACTION_OPTIONS} value={action} onChange={(v) => v && setAction(v as ScreeningAction)} allowDeselect={false} size="xs" w={160} />
      </Table.Td>
      <Table.Td>
        <NumberInput
          aria-label={`Minimum confidence for ${p.label}`}
          size="xs"
          w={100}
          min={0}
          max={1}
          step={0.05}
          decimalScale={2}
          value={min}
          onChange={(v) => setMin(Math.min(1, Math.max(0, Number(v) || 0)))}
        />
      </Table.Td>
      <Table.Td>
        <Group gap={4} wrap="nowrap">
          <Button size="xs" disabled={!dirty} loading={save.isPending} onClick={() => save.mutate(undefined)}>
            Save
          </Button>
          {!p.is_default && (
            <Button size="xs" variant="subtle" color="gray" loading={reset.isPending} onClick={() => reset.mutate(undefined)}>
              Reset
            </Button>
          )}
        </Group>
      </Table.Td>
    </Table.Tr>
  );
}

function Examples() {
  const [filter, setFilter] = useState<ScreeningLabel | 'all'>('all');
  const list = useQuery({
    queryKey: ['screening', 'examples', filter],
    queryFn: () => api.listExamples(filter === 'all' ? undefined : filter),
  });
  const [text, setText] = useState('');
  const [label, setLabel] = useState<ScreeningLabel>('legit');
  const [intent, setIntent] = useState('');
  const add = useSettingsMutation(() => api.createExample({ text: text.trim(), label, intent: intent.trim() }), {
    success: 'Example added.',
    failure: 'Could not add the example',
    invalidate: ['screening', 'examples'],
  });
  const remove = useSettingsMutation((id: string) => api.deleteExample(id), {
    success: 'Example deleted.',
    failure: 'Could not delete the example',
    invalidate: ['screening', 'examples'],
  });
  return (
    <Stack>
      <Card withBorder>
        <Stack gap="xs">
          <Text size="sm" fw={500}>
            Teach the screener with a sentence a caller might say
          </Text>
          <TextInput aria-label="Caller sentence" placeholder="Hi, this is Dr. Lee's office about your appointment" value={text} onChange={(e) => setText(e.currentTarget.value)} />
          <Group grow align="flex-end">
            <Select label="Label" data={LABEL_OPTIONS} value={label} onChange={(v) => v && setLabel(v as ScreeningLabel)} allowDeselect={false} />
            <TextInput label="Intent (one line)" placeholder="dentist confirming an appointment" value={intent} onChange={(e) => setIntent(e.currentTarget.value)} />
          </Group>
          <Group justify="flex-end">
            <Button
              disabled={!text.trim()}
              loading={add.isPending}
              onClick={() =>
                add.mutate(undefined, {
                  onSuccess: () => {
                    setText('');
                    setIntent('');
                  },
                })
              }
            >
              Add example
            </Button>
          </Group>
        </Stack>
      </Card>
      <SegmentedControl
        w="fit-content"
        value={filter}
        onChange={(v) => setFilter(v as ScreeningLabel | 'all')}
        data={[{ value: 'all', label: 'All' }, ...LABEL_OPTIONS]}
      />
      {list.isPending ? (
        <Loading />
      ) : list.isError ? (
        <ErrorState error={list.error} onRetry={() => list.refetch()} />
      ) : list.data.items.length === 0 ? (
        <EmptyState title="No examples" />
      ) : (
        <Table.ScrollContainer minWidth={480}>
          <Table verticalSpacing="xs">
            <Table.Tbody>
              {list.data.items.map((ex) => (
                <Table.Tr key={ex.id}>
                  <Table.Td w={110}>
                    <LabelBadge label={ex.label} />
                  </Table.Td>
                  <Table.Td>
                    <Text size="sm">“{ex.text}”</Text>
                    {ex.intent && (
                      <Text size="xs" c="dimmed">
                        {ex.intent}
                      </Text>
                    )}
                  </Table.Td>
                  <Table.Td w={100} ta="right">
                    {ex.builtin ? (
                      <Badge variant="outline" color="gray">
                        built-in
                      </Badge>
                    ) : (
                      <ConfirmButton
                        size="xs"
                        variant="subtle"
                        color="red"
                        title="Delete example?"
                        message={`“${ex.text}” will no longer guide the screener.`}
                        confirmLabel="Delete"
                        onConfirm={() => remove.mutate(ex.id)}
                      >
                        Delete
                      </ConfirmButton>
                    )}
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
    </Stack>
  );
}

export function ScreeningSettings() {
  const policies = useQuery({ queryKey: ['screening', 'policies'], queryFn: () => api.listPolicies() });
  return (
    <>
      <PageTitle>Screening</PageTitle>
      <Title order={3} size="h5" mb="xs">
        What to do with each kind of caller
      </Title>
      <Text size="sm" c="dimmed" mb="sm">
        A result below the minimum confidence is treated as Unknown.
      </Text>
      {policies.isPending ? (
        <Loading />
      ) : policies.isError ? (
        <ErrorState error={policies.error} onRetry={() => policies.refetch()} />
      ) : (
        <Table.ScrollContainer minWidth={480} mb="xl">
          <Table verticalSpacing="xs">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Label</Table.Th>
                <Table.Th>Action</Table.Th>
                <Table.Th>Min. confidence</Table.Th>
                <Table.Th />
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {policies.data.items.map((p) => (
                <PolicyRow key={`${p.label}:${p.action}:${p.min_confidence}:${p.is_default}`} p={p} />
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
      <Title order={3} size="h5" mb="xs">
        Labelled examples
      </Title>
      <Examples />
    </>
  );
}
