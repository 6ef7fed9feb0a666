import { act, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { CallDetail, Me } from '../api/types';
import { FakeWebSocket } from '../test/fakeWebSocket';
import { adminMe, apiError, json, makeCall, makeDetail, makeTurn, memberMe } from '../test/fixtures';
import { renderPage } from '../test/render';
import { CallDetailPage } from './CallDetailPage';
import { LiveCallPage } from './LiveCallPage';

const ID = 'cccccccc-0000-4000-8000-0000000000d1';

const transcript = [
  makeTurn(0, { speaker: 'agent', text: 'Hello, you reached Acme Dental. Who is calling, and why?', at: '2026-11-20T14:05:02Z' }),
  makeTurn(1, {
    speaker: 'caller',
    text: "It's Dr. Lee's office about Tuesday.",
    at: '2026-11-20T14:05:07Z',
    timings: { speech_end_ms: 8000, stt_final_ms: 8180, first_token_ms: null, first_tts_byte_ms: null, first_audio_frame_ms: null },
  }),
  makeTurn(2, {
    speaker: 'agent',
    text: 'Thanks, putting you through.',
    at: '2026-11-20T14:05:09Z',
    interrupted: true,
    timings: { speech_end_ms: 8000, stt_final_ms: 8180, first_token_ms: 8500, first_tts_byte_ms: 8650, first_audio_frame_ms: 8690 },
  }),
];

function stubApi(detail: CallDetail | Response, extra?: (u: URL, init: RequestInit) => Response | undefined) {
  const calls: { url: URL; init: RequestInit }[] = [];
  vi.stubGlobal(
    'fetch',
    vi.fn(async (input: RequestInfo | URL, init: RequestInit = {}) => {
      const url = new URL(String(input), 'http://localhost');
      calls.push({ url, init });
      const e = extra?.(url, init);
      if (e) return e;
      if (url.pathname === `/api/calls/${ID}` && (init.method ?? 'GET') === 'GET') return detail instanceof Response ? detail : json(detail);
      return apiError(404, 'not_found');
    }),
  );
  return calls;
}

function renderDetail(me: Me = adminMe) {
  return renderPage(<CallDetailPage />, { url: `/calls/${ID}`, path: '/calls/:id', me });
}

describe('CallDetailPage', () => {
  beforeEach(() => {
    FakeWebSocket.reset();
    vi.stubGlobal('WebSocket', FakeWebSocket);
  });

  it('renders the transcript as a conversation: caller left, agent right, with per-turn timings', async () => {
    stubApi(makeDetail({ id: ID, transcript }));
    renderDetail();
    const log = await screen.findByRole('log', { name: 'Transcript' });
    const turns = log.querySelectorAll('[data-seq]');
    expect([...turns].map((t) => t.getAttribute('data-speaker'))).toEqual(['agent', 'caller', 'agent']);
    expect([...turns].map((t) => t.getAttribute('data-align'))).toEqual(['right', 'left', 'right']);
    expect(turns[1]!.textContent).toContain("It's Dr. Lee's office about Tuesday.");
    // Offsets from when the call was answered (14:05:01).
    expect(turns[1]!.textContent).toContain('0:06');

    // Caller turn: only STT happened.
    const callerTimings = within(turns[1] as HTMLElement).getByTestId('turn-timings');
    expect(callerTimings.textContent).toBe('STT 180 ms');
    // Agent turn: every stage and the total reply latency.
    const agentTimings = within(turns[2] as HTMLElement).getByTestId('turn-timings');
    expect(agentTimings.querySelector('[data-timing="llm"]')!.textContent).toBe('first token 320 ms');
    expect(agentTimings.querySelector('[data-timing="tts"]')!.textContent).toBe('TTS 150 ms');
    expect(agentTimings.querySelector('[data-timing="total"]')!.textContent).toBe('latency 690 ms');
    expect(within(turns[2] as HTMLElement).getByText('interrupted')).toBeTruthy();
    // A turn without timings shows none.
    expect(within(turns[0] as HTMLElement).queryByTestId('turn-timings')).toBeNull();
  });

  it('shows metadata and the classification with its rationale', async () => {
    stubApi(makeDetail({ id: ID, from: '+15551234567', stir_verstat: 'TN-Validation-Passed-A', node_id: 'node-ams-1', region: 'ams' }));
    renderDetail();
    expect(await screen.findByTestId('rationale')).toHaveProperty('textContent', 'Names a practice and an existing appointment; no sales language.');
    expect(screen.getByTestId('confidence').textContent).toBe('91%');
    expect(screen.getByText(/TN-Validation-Passed-A \(full attestation/)).toBeTruthy();
    expect(screen.getByText('node-ams-1 · ams')).toBeTruthy();
    expect(screen.getByRole('heading', { name: '+1 555 123 4567' })).toBeTruthy();
  });

  it('says so when there is no recording and no lead', async () => {
    stubApi(makeDetail({ id: ID, recording: null, lead: null, transcript: [] }));
    renderDetail();
    const rec = await screen.findByTestId('recording-card');
    expect(rec.textContent).toContain('No recording for this call.');
    expect(rec.querySelector('audio')).toBeNull();
    expect(screen.getByTestId('lead-card').textContent).toContain('No lead captured.');
    expect(screen.getByText('No transcript')).toBeTruthy();
  });

  it('plays a completed recording and shows the lead', async () => {
    stubApi(
      makeDetail({
        id: ID,
        recording: { url: `/api/calls/${ID}/recording`, duration_s: 73, status: 'completed' },
        lead: { id: 'l1', name: 'Sam Patel', callback_number: '+15551112222', reason: 'Wants a quote for a crown', urgency: 'high', handled_at: null },
      }),
    );
    renderDetail();
    const rec = await screen.findByTestId('recording-card');
    expect(rec.querySelector('audio')!.getAttribute('src')).toBe(`/api/calls/${ID}/recording`);
    expect(rec.textContent).toContain('1:13');
    const lead = screen.getByTestId('lead-card');
    expect(lead.textContent).toContain('Sam Patel');
    expect(lead.textContent).toContain('Wants a quote for a crown');
    expect(lead.textContent).toContain('high urgency');
    expect(within(lead).getByRole('link').getAttribute('href')).toBe('tel:+15551112222');
  });

  it('hides the rationale from members and the delete button too', async () => {
    const d = makeDetail({ id: ID });
    stubApi({ ...d, screening: { ...d.screening!, rationale: null } });
    renderDetail(memberMe);
    expect(await screen.findByText('Visible to admins only.')).toBeTruthy();
    expect(screen.queryByTestId('rationale')).toBeNull();
    expect(screen.getByRole('button', { name: 'Block caller' })).toBeTruthy();
    expect(screen.queryByRole('button', { name: 'Delete' })).toBeNull();
  });

  it('blocks the caller only after confirmation, then notifies and refreshes', async () => {
    let blocked = false;
    const calls = stubApi(makeDetail({ id: ID }), (u, init) => {
      if (u.pathname === `/api/calls/${ID}/block-caller` && init.method === 'POST') {
        blocked = true;
        return json({ contact: { id: 'k1', number: '+15551230000', kind: 'block', name: null, note: null, created_at: '2026-11-20T15:00:00Z' } });
      }
      if (u.pathname === `/api/calls/${ID}` && blocked) return json(makeDetail({ id: ID, contact: { id: 'k1', kind: 'block', name: null } }));
      return undefined;
    });
    const user = userEvent.setup();
    renderDetail();
    await user.click(await screen.findByRole('button', { name: 'Block caller' }));
    expect(await screen.findByText('Block this caller?')).toBeTruthy();
    expect(calls.some((c) => c.url.pathname.endsWith('/block-caller'))).toBe(false);
    await user.click(within(screen.getByRole('dialog')).getByRole('button', { name: 'Block caller' }));
    expect(await screen.findByText(/is blocked\. Future calls from it are rejected\./)).toBeTruthy();
    expect(calls.filter((c) => c.url.pathname.endsWith('/block-caller'))).toHaveLength(1);
    expect(await screen.findByRole('button', { name: 'Blocked' })).toHaveProperty('disabled', true);
  });

  it('reports a failed action', async () => {
    stubApi(makeDetail({ id: ID }), (u) =>
      u.pathname.endsWith('/mark-known') ? apiError(409, 'conflict', 'number is on the block list') : undefined,
    );
    const user = userEvent.setup();
    renderDetail();
    await user.click(await screen.findByRole('button', { name: 'Mark as known' }));
    await user.click(within(screen.getByRole('dialog')).getByRole('button', { name: 'Mark as known' }));
    expect(await screen.findByText('number is on the block list')).toBeTruthy();
    expect(screen.getByText('Could not mark as known')).toBeTruthy();
  });

  it('answers an unknown (or other tenant’s) call with “not found”', async () => {
    stubApi(apiError(404, 'not_found', 'no such call'));
    renderDetail();
    expect(await screen.findByText('Call not found')).toBeTruthy();
  });
});

describe('LiveCallPage', () => {
  beforeEach(() => {
    FakeWebSocket.reset();
    vi.stubGlobal('WebSocket', FakeWebSocket);
  });

  it('streams turns in as they arrive, ignores duplicates and shows the end of the call', async () => {
    const live = makeDetail({ id: ID, live: true, ended_at: null, outcome: null, duration_s: null, transcript: [transcript[0]!] });
    stubApi(live);
    renderPage(<LiveCallPage />, { url: `/calls/${ID}/live`, path: '/calls/:id/live', me: adminMe });
    const log = await screen.findByRole('log', { name: 'Transcript' });
    await waitFor(() => expect(log.querySelectorAll('[data-seq]')).toHaveLength(1));
    const ws = FakeWebSocket.last();
    expect(new URL(ws.url).searchParams.get('call_id')).toBe(ID);
    act(() => ws.open());

    act(() => ws.send(JSON.stringify({ type: 'turn', call_id: ID, turn: transcript[2] })));
    act(() => ws.send(JSON.stringify({ type: 'turn', call_id: ID, turn: transcript[1] })));
    act(() => ws.send(JSON.stringify({ type: 'turn', call_id: ID, turn: transcript[1] })));
    await waitFor(() => expect(log.querySelectorAll('[data-seq]')).toHaveLength(3));
    expect([...log.querySelectorAll('[data-seq]')].map((e) => e.getAttribute('data-seq'))).toEqual(['0', '1', '2']);

    act(() => ws.send(JSON.stringify({ type: 'call_ended', call: makeCall({ id: ID, live: false, outcome: 'transferred', duration_s: 64 }) })));
    const ended = await screen.findByTestId('call-ended');
    expect(ended.textContent).toContain('transferred');
    expect(ended.textContent).toContain('1:04');
    // The socket is closed once the call is over.
    await waitFor(() => expect(ws.closedByClient).toBe(true));
  });
});
