import { act, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { CallSummary } from '../api/types';
import { FakeWebSocket } from '../test/fakeWebSocket';
import { adminMe, apiError, json, makeCall } from '../test/fixtures';
import { locationOf, renderPage } from '../test/render';
import { InboxPage } from './InboxPage';

interface Page {
  items: CallSummary[];
  next_cursor: string | null;
}

/** Stubs fetch: `GET /api/calls` answers with `pages(url)`; records every URL asked for. */
function stubCalls(pages: (u: URL) => Response | Page) {
  const urls: URL[] = [];
  vi.stubGlobal(
    'fetch',
    vi.fn(async (input: RequestInfo | URL) => {
      const u = new URL(String(input), 'http://localhost');
      urls.push(u);
      if (u.pathname !== '/api/calls') return apiError(404, 'not_found');
      const r = pages(u);
      return r instanceof Response ? r : json(r);
    }),
  );
  return urls;
}

const rows = () => within(screen.getByRole('table', { name: 'Calls' })).getAllByRole('row').slice(1);

function renderInbox(url = '/calls') {
  return renderPage(<InboxPage />, { url, path: '/calls', me: adminMe });
}

describe('InboxPage', () => {
  beforeEach(() => {
    FakeWebSocket.reset();
    vi.stubGlobal('WebSocket', FakeWebSocket);
  });

  it('shows one row per call with a coloured label badge, intent, confidence and duration', async () => {
    stubCalls(() => ({
      items: [
        makeCall({ from: '+15551234567', label: 'spam', intent: 'car warranty robocall', confidence: 0.97, duration_s: 12 }),
        makeCall({ from: '+15557654321', label: 'legit', intent: 'dentist confirming Tuesday', confidence: 0.84, duration_s: 75 }),
        makeCall({ from: '+15550000000', label: null, intent: null, confidence: null, live: true, outcome: null, duration_s: null }),
      ],
      next_cursor: null,
    }));
    renderInbox();
    await screen.findByRole('table', { name: 'Calls' });
    const r = rows();
    expect(r).toHaveLength(3);

    const spam = within(r[0]!);
    expect(spam.getByTestId('call-from').textContent).toBe('+1 555 123 4567');
    const spamBadge = r[0]!.querySelector('[data-testid="call-label"] [data-label]')!;
    expect(spamBadge.textContent).toBe('Spam');
    expect(spamBadge.getAttribute('style')).toContain('red');
    expect(spam.getAllByText('car warranty robocall').length).toBeGreaterThan(0);
    expect(spam.getByText('97%')).toBeTruthy();
    expect(spam.getByTestId('call-duration').textContent).toBe('0:12');

    const legitBadge = r[1]!.querySelector('[data-testid="call-label"] [data-label]')!;
    expect(legitBadge.textContent).toBe('Legit');
    expect(legitBadge.getAttribute('style')).toContain('green');
    expect(within(r[1]!).getByTestId('call-duration').textContent).toBe('1:15');

    expect(r[2]!.querySelector('[data-testid="call-label"] [data-label]')!.textContent).toBe('Not screened');
    expect(within(r[2]!).getByTestId('call-duration').textContent).toBe('live');
    // A live call links to the live view, a finished one to the detail page.
    expect(within(r[2]!).getByRole('link').getAttribute('href')).toMatch(/\/calls\/.+\/live$/);
    expect(within(r[0]!).getByRole('link').getAttribute('href')).toMatch(/\/calls\/[^/]+$/);
  });

  it('reads the filters from the URL and sends them to the API', async () => {
    const urls = stubCalls(() => ({ items: [makeCall({ label: 'marketing' })], next_cursor: null }));
    renderInbox('/calls?label=marketing&mode=forward&since=2026-11-01&until=2026-11-02&q=refund');
    await screen.findByRole('table', { name: 'Calls' });
    const q = Object.fromEntries(urls[0]!.searchParams);
    expect(q).toMatchObject({
      label: 'marketing',
      mode: 'forward',
      q: 'refund',
      since: '2026-11-01T00:00:00.000Z',
      until: '2026-11-03T00:00:00.000Z',
      limit: '50',
    });
    expect((screen.getByLabelText('Search') as HTMLInputElement).value).toBe('refund');
  });

  it('puts a chosen label and typed search into the URL and refetches', async () => {
    const urls = stubCalls(() => ({ items: [makeCall()], next_cursor: null }));
    const user = userEvent.setup();
    const view = renderInbox();
    await screen.findByRole('table', { name: 'Calls' });

    await user.click(screen.getByRole('combobox', { name: 'Label' }));
    await user.click(await screen.findByRole('option', { name: 'Spam' }));
    await waitFor(() => expect(locationOf(view).searchParams.get('label')).toBe('spam'));
    await waitFor(() => expect(urls.at(-1)!.searchParams.get('label')).toBe('spam'));

    await user.type(screen.getByLabelText('Search'), 'refund');
    await waitFor(() => expect(locationOf(view).searchParams.get('q')).toBe('refund'));
    expect(locationOf(view).searchParams.get('label')).toBe('spam');
    await waitFor(() => expect(urls.at(-1)!.searchParams.get('q')).toBe('refund'));

    await user.click(screen.getByRole('button', { name: 'Clear filters' }));
    await waitFor(() => expect(locationOf(view).search).toBe(''));
  });

  it('loads the next page with the cursor', async () => {
    const urls = stubCalls((u) =>
      u.searchParams.get('cursor') === 'page2'
        ? { items: [makeCall({ intent: 'older call' })], next_cursor: null }
        : { items: [makeCall({ intent: 'newest call' }), makeCall()], next_cursor: 'page2' },
    );
    const user = userEvent.setup();
    renderInbox();
    await screen.findByRole('table', { name: 'Calls' });
    expect(rows()).toHaveLength(2);
    await user.click(screen.getByRole('button', { name: 'Load more' }));
    await waitFor(() => expect(rows()).toHaveLength(3));
    expect(urls.at(-1)!.searchParams.get('cursor')).toBe('page2');
    expect(within(rows()[2]!).getAllByText('older call').length).toBeGreaterThan(0);
    expect(screen.queryByRole('button', { name: 'Load more' })).toBeNull();
    expect(screen.getByText(/3 calls/)).toBeTruthy();
  });

  it('shows an empty state when there are no calls at all', async () => {
    stubCalls(() => ({ items: [], next_cursor: null }));
    renderInbox();
    expect(await screen.findByText('No calls yet')).toBeTruthy();
  });

  it('says when no call matches the filters', async () => {
    stubCalls(() => ({ items: [], next_cursor: null }));
    renderInbox('/calls?label=spam');
    expect(await screen.findByText('No calls match these filters')).toBeTruthy();
  });

  it('shows an error with a retry that works', async () => {
    let fail = true;
    stubCalls(() => (fail ? apiError(500, 'internal', 'database unavailable') : { items: [makeCall()], next_cursor: null }));
    const user = userEvent.setup();
    renderInbox();
    expect(await screen.findByText('database unavailable')).toBeTruthy();
    fail = false;
    await user.click(screen.getByRole('button', { name: 'Try again' }));
    await screen.findByRole('table', { name: 'Calls' });
    expect(rows()).toHaveLength(1);
  });

  it('adds a call pushed over the live socket on top, and updates it when it ends', async () => {
    stubCalls(() => ({ items: [makeCall({ started_at: '2026-11-20T10:00:00Z', intent: 'earlier call' })], next_cursor: null }));
    renderInbox();
    await screen.findByRole('table', { name: 'Calls' });
    const ws = FakeWebSocket.last();
    expect(new URL(ws.url).pathname).toBe('/api/calls/live');
    act(() => ws.open());
    expect(screen.getByTestId('live-status').textContent).toBe('Live');

    const fresh = makeCall({ started_at: '2026-11-20T11:00:00Z', from: '+15559990000', live: true, label: null, intent: null, outcome: null });
    act(() => ws.send(JSON.stringify({ type: 'call_started', call: fresh })));
    await waitFor(() => expect(rows()).toHaveLength(2));
    expect(within(rows()[0]!).getByTestId('call-from').textContent).toBe('+1 555 999 0000');

    act(() =>
      ws.send(JSON.stringify({ type: 'call_ended', call: { ...fresh, live: false, label: 'spam', outcome: 'rejected', duration_s: 9 } })),
    );
    await waitFor(() => expect(rows()[0]!.querySelector('[data-testid="call-label"] [data-label]')!.textContent).toBe('Spam'));
    expect(rows()).toHaveLength(2);
    expect(within(rows()[0]!).getByTestId('call-duration').textContent).toBe('0:09');
  });

  it('does not show a pushed call that the filters exclude', async () => {
    stubCalls(() => ({ items: [makeCall({ label: 'spam' })], next_cursor: null }));
    renderInbox('/calls?label=spam');
    await screen.findByRole('table', { name: 'Calls' });
    const ws = FakeWebSocket.last();
    act(() => ws.open());
    act(() => ws.send(JSON.stringify({ type: 'call_started', call: makeCall({ label: 'legit' }) })));
    act(() => ws.send(JSON.stringify({ type: 'call_started', call: makeCall({ label: 'spam', started_at: '2026-11-21T00:00:00Z' }) })));
    await waitFor(() => expect(rows()).toHaveLength(2));
    expect(rows().every((r) => r.querySelector('[data-testid="call-label"] [data-label]')!.textContent === 'Spam')).toBe(true);
  });
});
