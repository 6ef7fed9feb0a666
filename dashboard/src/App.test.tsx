import { screen, waitFor } from '@testing-library/react';
import { render } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { MemoryRouter } from 'react-router';
import { App } from './App';
import { AppProviders, createQueryClient } from './AppProviders';
import { FakeWebSocket } from './test/fakeWebSocket';
import { adminMe, apiError, json, makeCall } from './test/fixtures';
import { LocationProbe, locationOf } from './test/render';

function renderApp(url: string) {
  const qc = createQueryClient();
  qc.setDefaultOptions({ queries: { retry: false } });
  return render(
    <AppProviders queryClient={qc} env="test">
      <MemoryRouter initialEntries={[url]}>
        <App />
        <LocationProbe />
      </MemoryRouter>
    </AppProviders>,
  );
}

describe('App: sign-in and 401 handling', () => {
  beforeEach(() => {
    FakeWebSocket.reset();
    vi.stubGlobal('WebSocket', FakeWebSocket);
  });

  it('sends a signed-out visitor to the login page and back where they were after signing in', async () => {
    let signedIn = false;
    const fetchFn = vi.fn(async (input: RequestInfo | URL, init: RequestInit = {}) => {
      const u = new URL(String(input), 'http://localhost');
      if (u.pathname === '/api/auth/login') {
        const body = JSON.parse(String(init.body)) as { password: string };
        if (body.password !== 'correct horse battery') return apiError(401, 'invalid_credentials', 'wrong e-mail or password');
        signedIn = true;
        return json({ user: adminMe });
      }
      if (!signedIn) return apiError(401, 'unauthorized');
      if (u.pathname === '/api/me') return json(adminMe);
      if (u.pathname === '/api/calls') return json({ items: [makeCall({ intent: 'after sign-in' })], next_cursor: null });
      return apiError(404, 'not_found');
    });
    vi.stubGlobal('fetch', fetchFn);
    const user = userEvent.setup();
    const view = renderApp('/calls?label=legit');

    await screen.findByRole('button', { name: 'Sign in' });
    expect(locationOf(view).pathname).toBe('/login');
    expect(locationOf(view).searchParams.get('next')).toBe('/calls?label=legit');

    await user.type(screen.getByLabelText(/E-mail/), 'owner@example.com');
    await user.type(screen.getByLabelText(/Password/), 'wrong');
    await user.click(screen.getByRole('button', { name: 'Sign in' }));
    expect(await screen.findByText('Wrong e-mail or password.')).toBeTruthy();
    expect(locationOf(view).pathname).toBe('/login');

    await user.clear(screen.getByLabelText(/Password/));
    await user.type(screen.getByLabelText(/Password/), 'correct horse battery');
    await user.click(screen.getByRole('button', { name: 'Sign in' }));
    await waitFor(() => expect(locationOf(view).pathname).toBe('/calls'));
    expect(locationOf(view).searchParams.get('label')).toBe('legit');
    expect((await screen.findAllByText('after sign-in')).length).toBeGreaterThan(0);
  });

  it('returns to the login page when the session expires mid-use', async () => {
    let expired = false;
    vi.stubGlobal(
      'fetch',
      vi.fn(async (input: RequestInfo | URL) => {
        const u = new URL(String(input), 'http://localhost');
        if (u.pathname === '/api/me') return expired ? apiError(401, 'unauthorized') : json(adminMe);
        if (u.pathname.startsWith('/api/calls/')) {
          expired = true;
          return apiError(401, 'unauthorized', 'session expired');
        }
        return apiError(404, 'not_found');
      }),
    );
    const view = renderApp('/calls/cccccccc-0000-4000-8000-000000000777');
    await screen.findByRole('button', { name: 'Sign in' });
    expect(locationOf(view).pathname).toBe('/login');
    expect(locationOf(view).searchParams.get('next')).toBe('/calls/cccccccc-0000-4000-8000-000000000777');
  });

  it('never redirects after login to another site', async () => {
    vi.stubGlobal(
      'fetch',
      vi.fn(async (input: RequestInfo | URL) => {
        const u = new URL(String(input), 'http://localhost');
        if (u.pathname === '/api/auth/login') return json({ user: adminMe });
        if (u.pathname === '/api/me') return json(adminMe);
        if (u.pathname === '/api/calls') return json({ items: [], next_cursor: null });
        return apiError(404, 'not_found');
      }),
    );
    const user = userEvent.setup();
    const view = renderApp('/login?next=//evil.example/x');
    await user.type(await screen.findByLabelText(/E-mail/), 'a@b.c');
    await user.type(screen.getByLabelText(/Password/), 'whatever password');
    await user.click(screen.getByRole('button', { name: 'Sign in' }));
    await waitFor(() => expect(locationOf(view).pathname).toBe('/calls'));
  });
});
