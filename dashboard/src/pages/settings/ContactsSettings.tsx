import { Badge, SegmentedControl, Table, Text } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { api } from '../../api/client';
import type { ContactKind } from '../../api/types';
import { EmptyState, ErrorState, Loading, PageTitle } from '../../components/common';
import { ConfirmButton } from '../../components/ConfirmButton';
import { formatDateTime, formatPhone } from '../../lib/format';
import { useSettingsMutation } from './shared';

export function ContactsSettings() {
  const [kind, setKind] = useState<ContactKind | 'all'>('all');
  const list = useQuery({ queryKey: ['contacts', kind], queryFn: () => api.listContacts(kind === 'all' ? undefined : kind) });
  const remove = useSettingsMutation((id: string) => api.deleteContact(id), {
    success: 'Removed from the list.',
    failure: 'Could not remove the contact',
    invalidate: ['contacts'],
  });
  return (
    <>
      <PageTitle>Allow & block list</PageTitle>
      <Text size="sm" c="dimmed" mb="sm">
        Known contacts are put straight through; blocked numbers are rejected. Add them from a call's page.
      </Text>
      <SegmentedControl
        mb="md"
        value={kind}
        onChange={(v) => setKind(v as ContactKind | 'all')}
        data={[
          { value: 'all', label: 'All' },
          { value: 'allow', label: 'Known' },
          { value: 'block', label: 'Blocked' },
        ]}
      />
      {list.isPending ? (
        <Loading />
      ) : list.isError ? (
        <ErrorState error={list.error} onRetry={() => list.refetch()} />
      ) : list.data.items.length === 0 ? (
        <EmptyState title="Nobody on the list" />
      ) : (
        <Table.ScrollContainer minWidth={420}>
          <Table verticalSpacing="xs">
            <Table.Tbody>
              {list.data.items.map((c) => (
                <Table.Tr key={c.id}>
                  <Table.Td>
                    <Text size="sm">{formatPhone(c.number)}</Text>
                    {c.name && (
                      <Text size="xs" c="dimmed">
                        {c.name}
                      </Text>
                    )}
                  </Table.Td>
                  <Table.Td>
                    <Badge color={c.kind === 'block' ? 'red' : 'green'} variant="light">
                      {c.kind === 'block' ? 'Blocked' : 'Known'}
                    </Badge>
                  </Table.Td>
                  <Table.Td visibleFrom="sm">
                    <Text size="xs" c="dimmed">
                      {formatDateTime(c.created_at)}
                    </Text>
                  </Table.Td>
                  <Table.Td ta="right">
                    <ConfirmButton
                      size="xs"
                      variant="subtle"
                      color="gray"
                      title={c.kind === 'block' ? 'Unblock?' : 'Forget contact?'}
                      message={`${formatPhone(c.number)} will be screened like any other caller.`}
                      confirmLabel="Remove"
                      onConfirm={() => remove.mutate(c.id)}
                    >
                      {c.kind === 'block' ? 'Unblock' : 'Remove'}
                    </ConfirmButton>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
    </>
  );
}
