import { Badge, Button, Card, Group, Modal, Stack, Switch, Text, TextInput, Textarea } from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { api } from '../../api/client';
import type { KbEntry, KbInput } from '../../api/types';
import { EmptyState, ErrorState, Loading, PageTitle } from '../../components/common';
import { ConfirmButton } from '../../components/ConfirmButton';
import { useSettingsMutation } from './shared';

function KbForm({ initial, onSubmit, busy }: { initial: KbInput; onSubmit: (v: KbInput) => void; busy: boolean }) {
  const [v, setV] = useState(initial);
  return (
    <Stack>
      <TextInput
        label="Question"
        placeholder="What are your opening hours?"
        required
        value={v.question}
        onChange={(e) => setV({ ...v, question: e.currentTarget.value })}
      />
      <Textarea
        label="Answer"
        description="What the receptionist says. Keep it short: it is spoken on the phone."
        autosize
        minRows={3}
        required
        value={v.answer}
        onChange={(e) => setV({ ...v, answer: e.currentTarget.value })}
      />
      <Switch label="Enabled" checked={v.enabled} onChange={(e) => setV({ ...v, enabled: e.currentTarget.checked })} />
      <Group justify="flex-end">
        <Button onClick={() => onSubmit({ ...v, question: v.question.trim() })} loading={busy} disabled={!v.question.trim() || !v.answer.trim()}>
          Save
        </Button>
      </Group>
    </Stack>
  );
}

export function KbSettings() {
  const [search, setSearch] = useState('');
  const [q] = useDebouncedValue(search.trim(), 300);
  const list = useQuery({ queryKey: ['kb', q], queryFn: () => api.listKb(q || undefined) });
  const [editing, setEditing] = useState<KbEntry | 'new' | null>(null);
  const close = () => setEditing(null);
  const create = useSettingsMutation((v: KbInput) => api.createKb(v), {
    success: 'Entry added.',
    failure: 'Could not add the entry',
    invalidate: ['kb'],
  });
  const update = useSettingsMutation(({ id, v }: { id: string; v: Partial<KbInput> }) => api.patchKb(id, v), {
    success: 'Entry saved.',
    failure: 'Could not save the entry',
    invalidate: ['kb'],
  });
  const remove = useSettingsMutation((id: string) => api.deleteKb(id), {
    success: 'Entry deleted.',
    failure: 'Could not delete the entry',
    invalidate: ['kb'],
  });

  return (
    <>
      <PageTitle right={<Button onClick={() => setEditing('new')}>Add entry</Button>}>Knowledge base</PageTitle>
      <Text size="sm" c="dimmed" mb="sm">
        Answers the receptionist gives callers. Each edit is re-indexed within a minute.
      </Text>
      <TextInput mb="md" maw={400} placeholder="Search questions and answers" aria-label="Search the knowledge base" value={search} onChange={(e) => setSearch(e.currentTarget.value)} />
      {list.isPending ? (
        <Loading />
      ) : list.isError ? (
        <ErrorState error={list.error} onRetry={() => list.refetch()} />
      ) : list.data.items.length === 0 ? (
        <EmptyState title={q ? 'Nothing matches' : 'The knowledge base is empty'}>
          {q ? 'Try other words.' : 'Add the questions callers ask most.'}
        </EmptyState>
      ) : (
        <Stack>
          {list.data.items.map((e) => (
            <Card withBorder key={e.id} data-kb-id={e.id}>
              <Group justify="space-between" align="flex-start" wrap="nowrap">
                <Stack gap={4} style={{ minWidth: 0 }}>
                  <Group gap="xs">
                    <Text fw={600}>{e.question}</Text>
                    {!e.enabled && <Badge color="gray">off</Badge>}
                    {!e.embedded && (
                      <Badge color="yellow" variant="light">
                        indexing
                      </Badge>
                    )}
                  </Group>
                  <Text size="sm" style={{ whiteSpace: 'pre-wrap' }}>
                    {e.answer}
                  </Text>
                </Stack>
                <Group gap={4} wrap="nowrap">
                  <Button size="xs" variant="subtle" onClick={() => setEditing(e)} aria-label={`Edit “${e.question}”`}>
                    Edit
                  </Button>
                  <ConfirmButton
                    size="xs"
                    variant="subtle"
                    color="red"
                    title="Delete entry?"
                    message={`“${e.question}” will no longer be answered.`}
                    confirmLabel="Delete"
                    onConfirm={() => remove.mutate(e.id)}
                  >
                    Delete
                  </ConfirmButton>
                </Group>
              </Group>
            </Card>
          ))}
        </Stack>
      )}
      <Modal opened={editing !== null} onClose={close} title={editing === 'new' ? 'Add entry' : 'Edit entry'} size="lg">
        {editing !== null && (
          <KbForm
            initial={editing === 'new' ? { question: '', answer: '', enabled: true } : editing}
            busy={create.isPending || update.isPending}
            onSubmit={(v) => {
              const input: KbInput = { question: v.question, answer: v.answer, enabled: v.enabled };
              if (editing === 'new') create.mutate(input, { onSuccess: close });
              else update.mutate({ id: editing.id, v: input }, { onSuccess: close });
            }}
          />
        )}
      </Modal>
    </>
  );
}
