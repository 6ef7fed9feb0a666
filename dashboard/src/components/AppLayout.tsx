import { AppShell, Burger, Group, Menu, NavLink, ScrollArea, Select, Text, UnstyledButton } from '@mantine/core';
import { useDisclosure } from '@mantine/hooks';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect } from 'react';
import { Link, Outlet, useLocation, useNavigate } from 'react-router';
import { api } from '../api/client';
import { isAdmin, ME_KEY, useSession } from '../auth/auth';

const SETTINGS_LINKS = [
  { to: '/settings/numbers', label: 'Numbers & modes' },
  { to: '/settings/hours', label: 'Business hours' },
  { to: '/settings/departments', label: 'Departments' },
  { to: '/settings/kb', label: 'Knowledge base' },
  { to: '/settings/screening', label: 'Screening' },
  { to: '/settings/sms', label: 'SMS text-back' },
  { to: '/settings/providers', label: 'AI providers' },
  { to: '/settings/contacts', label: 'Allow & block list' },
  { to: '/settings/users', label: 'Users' },
];

function TenantSwitcher() {
  const { tenantId, setTenantId } = useSession();
  const tenants = useQuery({ queryKey: ['tenants'], queryFn: () => api.listTenants() });
  return (
    <Select
      aria-label="Tenant"
      size="xs"
      w={{ base: 140, sm: 220 }}
      placeholder="All tenants"
      clearable
      data={(tenants.data?.items ?? []).map((t) => ({ value: t.id, label: t.name }))}
      value={tenantId}
      onChange={(v) => setTenantId(v)}
    />
  );
}

export function AppLayout() {
  const [opened, { toggle, close }] = useDisclosure(false);
  const { me } = useSession();
  const location = useLocation();
  const navigate = useNavigate();
  const qc = useQueryClient();

  useEffect(() => close(), [location.pathname, close]);

  const logout = async () => {
    try {
      await api.logout();
    } finally {
      qc.setQueryData(ME_KEY, undefined);
      qc.removeQueries();
      navigate('/login', { replace: true });
    }
  };

  const active = (to: string) => location.pathname === to || location.pathname.startsWith(`${to}/`);

  return (
    <AppShell
      header={{ height: 56 }}
      navbar={{ width: 230, breakpoint: 'sm', collapsed: { mobile: !opened } }}
      padding={{ base: 'xs', sm: 'md' }}
    >
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between" wrap="nowrap">
          <Group gap="sm" wrap="nowrap">
            <Burger opened={opened} onClick={toggle} hiddenFrom="sm" size="sm" aria-label="Toggle navigation" />
            <Text component={Link} to="/calls" fw={700} size="lg" c="indigo.7">
              callgate
            </Text>
            {me.role !== 'superadmin' && me.tenant_name && (
              <Text size="sm" c="dimmed" visibleFrom="xs" truncate maw={220}>
                {me.tenant_name}
              </Text>
            )}
          </Group>
          <Group gap="xs" wrap="nowrap">
            {me.role === 'superadmin' && <TenantSwitcher />}
            <Menu position="bottom-end" withinPortal>
              <Menu.Target>
                <UnstyledButton aria-label="Account">
                  <Text size="sm" truncate maw={{ base: 110, sm: 240 }}>
                    {me.display_name ?? me.email}
                  </Text>
                </UnstyledButton>
              </Menu.Target>
              <Menu.Dropdown>
                <Menu.Label>
                  {me.email} · {me.role}
                </Menu.Label>
                <Menu.Item onClick={logout}>Log out</Menu.Item>
              </Menu.Dropdown>
            </Menu>
          </Group>
        </Group>
      </AppShell.Header>

      <AppShell.Navbar p="xs">
        <AppShell.Section grow component={ScrollArea}>
          <NavLink component={Link} to="/calls" label="Inbox" active={active('/calls')} />
          <NavLink component={Link} to="/live" label="Live calls" active={active('/live')} />
          <NavLink component={Link} to="/dialer" label="Dialer" active={active('/dialer')} />
          {isAdmin(me) && (
            <NavLink label="Settings" defaultOpened={location.pathname.startsWith('/settings')} childrenOffset="md">
              {SETTINGS_LINKS.map((l) => (
                <NavLink key={l.to} component={Link} to={l.to} label={l.label} active={active(l.to)} />
              ))}
            </NavLink>
          )}
        </AppShell.Section>
      </AppShell.Navbar>

      <AppShell.Main>
        <Outlet />
      </AppShell.Main>
    </AppShell>
  );
}
