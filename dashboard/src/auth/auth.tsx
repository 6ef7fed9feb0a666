import { Button, Center, Loader, Stack, Text } from '@mantine/core';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { createContext, useCallback, useContext, useEffect, useRef, useState, type ReactNode } from 'react';
import { Navigate, useLocation, useNavigate } from 'react-router';
import { api, isApiError } from '../api/client';
import type { Me, Role } from '../api/types';

export const ME_KEY = ['me'] as const;

export function useMeQuery() {
  return useQuery({ queryKey: ME_KEY, queryFn: ({ signal }) => api.me(signal), retry: false, staleTime: 60_000 });
}

interface Session {
  me: Me;
  /** The tenant the pages act on: the user's own, or the one a superadmin picked (null: all). */
  tenantId: string | null;
  setTenantId: (id: string | null) => void;
}

const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside <RequireAuth>');
  return s;
}

export function hasRole(me: Me, ...roles: Role[]): boolean {
  return roles.includes(me.role);
}

export function isAdmin(me: Me): boolean {
  return me.role === 'admin' || me.role === 'superadmin';
}

export function loginPath(next: string): string {
  return next && next !== '/' && !next.startsWith('/login') ? `/login?next=${encodeURIComponent(next)}` : '/login';
}

const TENANT_KEY = 'callgate.tenant';

/** Sends the user to the login page whenever the API answers 401. */
export function UnauthorizedRedirect() {
  const navigate = useNavigate();
  const qc = useQueryClient();
  const location = useLocation();
  const where = useRef(location);
  where.current = location;
  useEffect(() => {
    api.onUnauthorized = () => {
      const { pathname, search } = where.current;
      if (pathname === '/login') return;
      const here = pathname + search;
      qc.setQueryData(ME_KEY, undefined);
      qc.removeQueries();
      navigate(loginPath(here), { replace: true });
    };
    return () => {
      api.onUnauthorized = undefined;
    };
  }, [navigate, qc]);
  return null;
}

export function RequireAuth({ children }: { children: ReactNode }) {
  const me = useMeQuery();
  const location = useLocation();
  const qc = useQueryClient();
  const [tenantId, setTenant] = useState<string | null>(() =>
    typeof localStorage !== 'undefined' ? localStorage.getItem(TENANT_KEY) : null,
  );

  const isSuper = me.data?.role === 'superadmin';
  const effectiveTenant = me.data ? (isSuper ? tenantId : me.data.tenant_id) : null;
  // Set synchronously so the first queries of the children already carry the scope.
  api.tenantId = isSuper ? tenantId : null;

  const setTenantId = useCallback(
    (id: string | null) => {
      if (id) localStorage.setItem(TENANT_KEY, id);
      else localStorage.removeItem(TENANT_KEY);
      api.tenantId = id;
      qc.removeQueries({ predicate: (q) => q.queryKey[0] !== ME_KEY[0] });
      setTenant(id);
    },
    [qc],
  );

  if (me.isPending) {
    return (
      <Center h="100vh">
        <Loader aria-label="Loading" />
      </Center>
    );
  }
  if (me.isError) {
    if (isApiError(me.error) && me.error.status === 401) {
      return <Navigate to={loginPath(location.pathname + location.search)} replace />;
    }
    return (
      <Center h="100vh" p="md">
        <Stack align="center">
          <Text c="red">Could not reach callgate: {me.error.message}</Text>
          <Button onClick={() => me.refetch()}>Try again</Button>
        </Stack>
      </Center>
    );
  }
  return (
    <SessionContext.Provider key={effectiveTenant ?? 'all'} value={{ me: me.data, tenantId: effectiveTenant, setTenantId }}>
      {children}
    </SessionContext.Provider>
  );
}

/** For tests and stories: a fixed session. */
export function SessionProvider({ me, children }: { me: Me; children: ReactNode }) {
  return (
    <SessionContext.Provider value={{ me, tenantId: me.tenant_id, setTenantId: () => {} }}>
      {children}
    </SessionContext.Provider>
  );
}
