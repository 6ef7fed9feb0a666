import { Badge, Button, Group, Modal, PasswordInput, Select, Stack, Switch, Table, Text, TextInput } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { api } from '../../api/client';
import type { Role, User, UserCreate } from '../../api/types';
import { useSession } from '../../auth/auth';
import { EmptyState, ErrorState, Loading, PageTitle } from '../../components/common';
import { ConfirmButton } from '../../components/ConfirmButton';
import { formatDateTime } from '../../lib/format';
import { useSettingsMutation } from './shared';

const MIN_PASSWORD = 12;

function roleOptions(myRole: Role) {
  const base = [
    { value: 'member', label: 'Member — sees calls' },
    { value: 'admin', label: 'Admin — settings and users' },
  ];
  return myRole === 'superadmin' ? [...base, { value: 'superadmin', label: 'Superadmin — all tenants' }] : base;
}

function AddUser({ onDone }: { onDone: () => void }) {
  const { me } = useSession();
  const [u, setU] = useState<UserCreate>({ email: '', password: '', role: 'member', display_name: '' });
  const create = useSettingsMutation((input: UserCreate) => api.createUser(input), {
    success: (r) => `${r.email} can now sign in.`,
    failure: 'Could not add the user',
    invalidate: ['users'],
  });
  const emailOk = /^[^@\s]+@[^@\s]+$/.test(u.email);
  return (
    <Stack>
      <TextInput label="E-mail" type="email" required value={u.email} onChange={(e) => setU({ ...u, email: e.currentTarget.value.trim() })} />
      <TextInput label="Name" value={u.display_name ?? ''} onChange={(e) => setU({ ...u, display_name: e.currentTarget.value })} />
      <Select label="Role" data={roleOptions(me.role)} value={u.role} onChange={(v) => v && setU({ ...u, role: v as Role })} allowDeselect={false} />
      <PasswordInput
        label="Initial password"
        description={`At least ${MIN_PASSWORD} characters; share it safely.`}
        required
        autoComplete="new-password"
        value={u.password}
        onChange={(e) => setU({ ...u, password: e.currentTarget.value })}
        error={u.password && u.password.length < MIN_PASSWORD ? `At least ${MIN_PASSWORD} characters` : undefined}
      />
      <Group justify="flex-end">
        <Button
          disabled={!emailOk || u.password.length < MIN_PASSWORD}
          loading={create.isPending}
          onClick={() => create.mutate({ ...u, display_name: u.display_name?.trim() || null }, { onSuccess: onDone })}
        >
          Add user
        </Button>
      </Group>
    </Stack>
  );
}

function UserRow({ u }: { u: User }) {
  const { me } = useSession();
  const self = u.id === me.id;
  const patch = useSettingsMutation((p: Parameters<typeof api.patchUser>[1]) => api.patchUser(u.id, p), {
    success: `${u.email} updated.`,
    failure: 'Could not update the user',
    invalidate: ['users'],
  });
  const remove = useSettingsMutation(() => api.deleteUser(u.id), {
    success: `${u.email} removed.`,
    failure: 'Could not remove the user',
    invalidate: ['users'],
  });
  return (
    <Table.Tr>
      <Table.Td>
        <Text size="sm">{u.display_name ?? u.email}</Text>
        {u.display_name && (
          <Text size="xs" c="dimmed">
            {u.email}
          </Text>
        )}
        {self && (
          <Badge size="xs" variant="light">
            you
          </Badge>
        )}
      </Table.Td>
      <Table.Td>
        <Select
          aria-label={`Role of ${u.email}`}
          size="xs"
          w={130}
          data={roleOptions(me.role).map((o) => ({ value: o.value, label: o.value }))}
          value={u.role}
          disabled={self || (u.role === 'superadmin' && me.role !== 'superadmin')}
          onChange={(v) => v && v !== u.role && patch.mutate({ role: v as Role })}
          allowDeselect={false}
        />
      </Table.Td>
      <Table.Td>
        <Switch
          aria-label={`${u.email} enabled`}
          checked={!u.disabled}
          disabled={self}
          onChange={(e) => patch.mutate({ disabled: !e.currentTarget.checked })}
        />
      </Table.Td>
      <Table.Td visibleFrom="sm">
        <Text size="xs" c="dimmed">
          {u.last_login_at ? formatDateTime(u.last_login_at) : 'never'}
        </Text>
      </Table.Td>
      <Table.Td ta="right">
        {!self && (
          <ConfirmButton
            size="xs"
            variant="subtle"
            color="red"
            title="Remove user?"
            message={`${u.email} will be signed out and can no longer sign in.`}
            confirmLabel="Remove"
            onConfirm={() => remove.mutate(undefined)}
          >
            Remove
          </ConfirmButton>
        )}
      </Table.Td>
    </Table.Tr>
  );
}

export function UsersSettings() {
  const list = useQuery({ queryKey: ['users'], queryFn: () => api.listUsers() });
  const [adding, setAdding] = useState(false);
  return (
    <>
      <PageTitle right={<Button onClick={() => setAdding(true)}>Add user</Button>}>Users</PageTitle>
      {list.isPending ? (
        <Loading />
      ) : list.isError ? (
        <ErrorState error={list.error} onRetry={() => list.refetch()} />
      ) : list.data.items.length === 0 ? (
        <EmptyState title="No users" />
      ) : (
        <Table.ScrollContainer minWidth={480}>
          <Table verticalSpacing="xs">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>User</Table.Th>
                <Table.Th>Role</Table.Th>
                <Table.Th>Enabled</Table.Th>
                <Table.Th visibleFrom="sm">Last sign-in</Table.Th>
                <Table.Th />
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {list.data.items.map((u) => (
                <UserRow key={u.id} u={u} />
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
      <Modal opened={adding} onClose={() => setAdding(false)} title="Add user">
        {adding && <AddUser onDone={() => setAdding(false)} />}
      </Modal>
    </>
  );
}
