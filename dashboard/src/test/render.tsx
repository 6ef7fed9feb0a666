import { render } from '@testing-library/react';
import type { ReactElement, ReactNode } from 'react';
import { MemoryRouter, Route, Routes, useLocation } from 'react-router';
import { AppProviders, createQueryClient } from '../AppProviders';
import type { Me } from '../api/types';
import { SessionProvider } from '../auth/auth';

export function LocationProbe() {
  const l = useLocation();
  return <output data-testid="location">{l.pathname + l.search}</output>;
}

export function locationOf(container: { getByTestId: (id: string) => HTMLElement }): URL {
  return new URL(container.getByTestId('location').textContent ?? '/', 'http://x');
}

/** Renders `element` at `path` (a route pattern) starting from `url`, with a fixed session. */
export function renderPage(
  element: ReactElement,
  { url, path, me, extraRoutes }: { url: string; path: string; me: Me; extraRoutes?: ReactNode },
) {
  const queryClient = createQueryClient();
  queryClient.setDefaultOptions({ queries: { retry: false, staleTime: Infinity } });
  const utils = render(
    <AppProviders queryClient={queryClient} env="test">
      <MemoryRouter initialEntries={[url]}>
        <SessionProvider me={me}>
          <Routes>
            <Route
              path={path}
              element={
                <>
                  {element}
                  <LocationProbe />
                </>
              }
            />
            {extraRoutes}
            <Route path="*" element={<LocationProbe />} />
          </Routes>
        </SessionProvider>
      </MemoryRouter>
    </AppProviders>,
  );
  return { ...utils, queryClient };
}
