import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it, vi } from 'vitest';
import type { KbEntry, ProviderSetting } from '../../api/types';
import { adminMe, apiError, json, memberMe } from '../../test/fixtures';
import { renderPage } from '../../test/render';
import { validateDay } from './HoursSettings';
import { KbSettings } from './KbSettings';
import { ProvidersSettings } from './ProvidersSettings';
import SettingsRoutes from './SettingsRoutes';

type Seen = { method: string; path: string; body: unknown };

function stub(handler: (method: string, path: string, body: unknown) => Response | undefined) {
  const seen: Seen[] = [];
  vi.stubGlobal(
    'fetch',
    vi.fn(async (input: RequestInfo | URL, init: RequestInit = {}) => {
      const u = new URL(String(input), 'http://localhost');
      const method = init.method ?? 'GET';
      const body = init.body ? JSON.parse(String(init.body)) : undefined;
      seen.push({ method, path: u.pathname, body });
      return handler(method, u.pathname, body) ?? apiError(404, 'not_found');
    }),
  );
  return seen;
}

describe('Knowledge base editor', () => {
  it('edits an entry and shows the saved text', async () => {
    let entry: KbEntry = { id: 'k1', question: 'What are your hours?', answer: 'Nine to five.', enabled: true, embedded: true, updated_at: '2026-11-20T10:00:00Z' };
    const seen = stub((method, path, body) => {
      if (method === 'GET' && path === '/api/kb') return json({ items: [entry] });
      if (method === 'PATCH' && path === '/api/kb/k1') {
        entry = { ...entry, ...(body as Partial<KbEntry>), embedded: false };
        return json(entry);
      }
      return undefined;
    });
    const user = userEvent.setup();
    renderPage(<KbSettings />, { url: '/settings/kb', path: '/settings/kb', me: adminMe });
    await user.click(await screen.findByRole('button', { name: 'Edit “What are your hours?”' }));
    const dialog = await screen.findByRole('dialog');
    const answer = within(dialog).getByLabelText(/Answer/);
    await user.clear(answer);
    await user.type(answer, 'Nine to five, and Saturday mornings.');
    await user.click(within(dialog).getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(screen.getByText('Nine to five, and Saturday mornings.')).toBeTruthy());
    expect(seen.find((s) => s.method === 'PATCH')!.body).toEqual({
      question: 'What are your hours?',
      answer: 'Nine to five, and Saturday mornings.',
      enabled: true,
    });
    // Re-indexing is pending after an edit.
    expect(screen.getByText('indexing')).toBeTruthy();
  });
});

describe('Providers', () => {
  const items: ProviderSetting[] = [
    { kind: 'stt', provider: 'deepgram', base_url: null, model: 'nova-3', settings: {}, has_api_key: true, is_default: false, updated_at: '2026-11-20T10:00:00Z' },
    { kind: 'tts', provider: 'offline', base_url: null, model: null, settings: {}, has_api_key: false, is_default: true, updated_at: null },
    { kind: 'llm', provider: 'offline', base_url: null, model: null, settings: {}, has_api_key: false, is_default: true, updated_at: null },
  ];

  it('keeps keys write-only: a stored key is never shown, and saving without typing one does not send it', async () => {
    const seen = stub((method, path) => {
      if (method === 'GET' && path === '/api/providers') return json({ items });
      if (method === 'PUT' && path === '/api/providers/stt') return json(items[0]);
      return undefined;
    });
    const user = userEvent.setup();
    renderPage(<ProvidersSettings />, { url: '/settings/providers', path: '/settings/providers', me: adminMe });
    const key = (await screen.findByLabelText(/API key/)) as HTMLInputElement;
    expect(key.value).toBe('');
    expect(key.type).toBe('password');
    expect(screen.getByText('key stored')).toBeTruthy();

    const model = screen.getByLabelText('Model') as HTMLInputElement;
    await user.clear(model);
    await user.type(model, 'nova-2');
    await user.click(screen.getAllByRole('button', { name: 'Save' })[0]!);
    await waitFor(() => expect(seen.some((s) => s.method === 'PUT')).toBe(true));
    const put = seen.find((s) => s.method === 'PUT')!;
    expect(put.body).toEqual({ provider: 'deepgram', base_url: null, model: 'nova-2' });

    await user.type(key, 'dg_secret_123');
    await user.click(screen.getAllByRole('button', { name: 'Save' })[0]!);
    await waitFor(() => expect(seen.filter((s) => s.method === 'PUT')).toHaveLength(2));
    expect((seen.filter((s) => s.method === 'PUT')[1]!.body as { api_key: string }).api_key).toBe('dg_secret_123');
  });
});

describe('Settings access', () => {
  it('tells a member that settings are for admins, without asking the API', async () => {
    const seen = stub(() => undefined);
    renderPage(<SettingsRoutes />, { url: '/settings/kb', path: '/settings/*', me: memberMe });
    expect(await screen.findByText('Admins only')).toBeTruthy();
    expect(seen).toHaveLength(0);
  });
});

describe('validateDay', () => {
  it('accepts ordered ranges and rejects reversed or overlapping ones', () => {
    expect(validateDay([['09:00', '12:00'], ['13:00', '17:00']])).toBeNull();
    expect(validateDay([['00:00', '24:00']])).toBeNull();
    expect(validateDay([['17:00', '09:00']])).toMatch(/before/);
    expect(validateDay([['09:00', '13:00'], ['12:00', '17:00']])).toMatch(/overlap/);
    expect(validateDay([['9am', '17:00']])).toMatch(/HH:MM/);
  });
});
