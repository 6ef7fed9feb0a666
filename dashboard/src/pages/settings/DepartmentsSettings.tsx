import { Badge, Button, Group, Modal, NumberInput, Stack, Switch, Table, TagsInput, Text, TextInput, Textarea } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { api } from '../../api/client';
import type { Department, DepartmentInput } from '../../api/types';
import { EmptyState, ErrorState, Loading, PageTitle } from '../../components/common';
import { ConfirmButton } from '../../components/ConfirmButton';
import { E164, useSettingsMutation } from './shared';

const EMPTY: DepartmentInput = { name: '', transfer_to: '', description: '', keywords: [], enabled: true, position: 0 };

function DepartmentForm({ initial, onSubmit, busy }: { initial: DepartmentInput; onSubmit: (d: DepartmentInput) => void; busy: boolean }) {
  const [d, setD] = useState(initial);
  const targetOk = E164.test(d.transfer_to) || /^sips?:.+/.test(d.transfer_to);
  return (
    <Stack>
      <TextInput label="Name" required value={d.name} onChange={(e) => setD({ ...d, name: e.currentTarget.value })} />
      <TextInput
        label="Transfer to"
        description="A phone number (+1555…) or a SIP URI"
        required
        value={d.transfer_to}
        error={d.transfer_to && !targetOk ? 'E.164 number or sip: URI' : undefined}
        onChange={(e) => setD({ ...d, transfer_to: e.currentTarget.value.trim() })}
      />
      <Textarea
        label="Description"
        description="What the agent may tell callers about this department"
        autosize
        minRows={2}
        value={d.description}
        onChange={(e) => setD({ ...d, description: e.currentTarget.value })}
      />
      <TagsInput
        label="Keywords"
        description="Words that route a caller here; Enter after each"
        value={d.keywords}
        onChange={(keywords) => setD({ ...d, keywords })}
      />
      <Group grow>
        <NumberInput label="Position" min={0} value={d.position} onChange={(v) => setD({ ...d, position: Number(v) || 0 })} />
        <Switch mt="lg" label="Enabled" checked={d.enabled} onChange={(e) => setD({ ...d, enabled: e.currentTarget.checked })} />
      </Group>
      <Group justify="flex-end">
        <Button onClick={() => onSubmit(d)} loading={busy} disabled={!d.name.trim() || !targetOk}>
          Save
        </Button>
      </Group>
    </Stack>
  );
}

export function DepartmentsSettings() {
  const list = useQuery({ queryKey: ['departments'], queryFn: () => api.listDepartments() });
  const [editing, setEditing] = useState<Department | 'new' | null>(null);
  const close = () => setEditing(null);
  const create = useSettingsMutation((d: DepartmentInput) => api.createDepartment(d), {
    success: (r) => `Department “${r.name}” added.`,
    failure: 'Could not add the department',
    invalidate: ['departments'],
  });
  const update = useSettingsMutation(({ id, d }: { id: string; d: DepartmentInput }) => api.patchDepartment(id, d), {
    success: (r) => `Department “${r.name}” saved.`,
    failure: 'Could not save the department',
    invalidate: ['departments'],
  });
  const remove = useSettingsMutation((id: string) => api.deleteDepartment(id), {
    success: 'Department deleted.',
    failure: 'Could not delete the department',
    invalidate: ['departments'],
  });

  return (
    <>
      <PageTitle right={<Button onClick={() => setEditing('new')}>Add department</Button>}>Departments</PageTitle>
      <Text size="sm" c="dimmed" mb="md">
        Where the receptionist transfers callers (“sales”, “billing”).
      </Text>
      {list.isPending ? (
        <Loading />
      ) : list.isError ? (
        <ErrorState error={list.error} onRetry={() => list.refetch()} />
      ) : list.data.items.length === 0 ? (
        <EmptyState title="No departments">Add one so the receptionist can transfer callers.</EmptyState>
      ) : (
        <Table.ScrollContainer minWidth={520}>
          <Table verticalSpacing="sm">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th>Transfer to</Table.Th>
                <Table.Th>Keywords</Table.Th>
                <Table.Th />
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {list.data.items.map((d) => (
                <Table.Tr key={d.id}>
                  <Table.Td>
                    <Group gap="xs">
                      <Text size="sm" fw={500}>
                        {d.name}
                      </Text>
                      {!d.enabled && <Badge color="gray">off</Badge>}
                    </Group>
                    <Text size="xs" c="dimmed" lineClamp={1}>
                      {d.description}
                    </Text>
                  </Table.Td>
                  <Table.Td>
                    <Text size="sm">{d.transfer_to}</Text>
                  </Table.Td>
                  <Table.Td>
                    <Group gap={4}>
                      {d.keywords.map((k) => (
                        <Badge key={k} variant="light" size="sm">
                          {k}
                        </Badge>
                      ))}
                    </Group>
                  </Table.Td>
                  <Table.Td>
                    <Group gap={4} justify="flex-end" wrap="nowrap">
                      <Button size="xs" variant="subtle" onClick={() => setEditing(d)}>
                        Edit
                      </Button>
                      <ConfirmButton
                        size="xs"
                        variant="subtle"
                        color="red"
                        title="Delete department?"
                        message={`Callers can no longer be transferred to “${d.name}”.`}
                        confirmLabel="Delete"
                        onConfirm={() => remove.mutate(d.id)}
                      >
                        Delete
                      </ConfirmButton>
                    </Group>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
      <Modal opened={editing !== null} onClose={close} title={editing === 'new' ? 'Add department' : 'Edit department'}>
        {editing !== null && (
          <DepartmentForm
            initial={editing === 'new' ? { ...EMPTY, position: list.data?.items.length ?? 0 } : editing}
            busy={create.isPending || update.isPending}
            onSubmit={(d) => {
              const input: DepartmentInput = {
                name: d.name.trim(),
                transfer_to: d.transfer_to,
                description: d.description,
                keywords: d.keywords,
                enabled: d.enabled,
                position: d.position,
              };
              if (editing === 'new') create.mutate(input, { onSuccess: close });
              else update.mutate({ id: editing.id, d: input }, { onSuccess: close });
            }}
          />
        )}
      </Modal>
    </>
  );
}
