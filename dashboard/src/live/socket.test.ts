import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { LiveMessage } from '../api/types';
import { FakeWebSocket } from '../test/fakeWebSocket';
import { makeCall } from '../test/fixtures';
import { LiveSocket, liveUrl, parseLiveMessage, type LiveStatus } from './socket';

function setup(overrides: Partial<ConstructorParameters<typeof LiveSocket>[0]> = {}) {
  const messages: LiveMessage[] = [];
  const statuses: LiveStatus[] = [];
  const opens: boolean[] = [];
  const onUnauthorized = vi.fn();
  const socket = new LiveSocket({
    url: 'ws://localhost/api/calls/live',
    WebSocketImpl: FakeWebSocket as unknown as new (url: string) => WebSocket,
    onMessage: (m) => messages.push(m),
    onStatus: (s) => statuses.push(s),
    onOpen: (r) => opens.push(r),
    onUnauthorized,
    initialDelayMs: 100,
    maxDelayMs: 1000,
    random: () => 1,
    ...overrides,
  });
  return { socket, messages, statuses, opens, onUnauthorized };
}

describe('LiveSocket', () => {
  beforeEach(() => {
    FakeWebSocket.reset();
    vi.useFakeTimers();
  });
  afterEach(() => vi.useRealTimers());

  it('delivers parsed messages and drops malformed ones', () => {
    const { socket, messages } = setup();
    socket.start();
    const ws = FakeWebSocket.last();
    ws.open();
    ws.send('not json');
    ws.send(JSON.stringify({ type: 'mystery', call: makeCall() }));
    ws.send(JSON.stringify({ type: 'turn', call_id: 'x' }));
    const call = makeCall();
    ws.send(JSON.stringify({ type: 'call_started', call }));
    expect(messages).toEqual([{ type: 'call_started', call }]);
  });

  it('reconnects with growing delays and reports the reconnect', () => {
    const { socket, statuses, opens } = setup();
    socket.start();
    FakeWebSocket.last().open();
    expect(opens).toEqual([false]);

    FakeWebSocket.last().serverClose(1006);
    expect(statuses.at(-1)).toBe('reconnecting');
    expect(FakeWebSocket.instances).toHaveLength(1);
    vi.advanceTimersByTime(99);
    expect(FakeWebSocket.instances).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(FakeWebSocket.instances).toHaveLength(2);

    // Second failure in a row waits twice as long.
    FakeWebSocket.last().serverClose(1006);
    vi.advanceTimersByTime(199);
    expect(FakeWebSocket.instances).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(FakeWebSocket.instances).toHaveLength(3);

    FakeWebSocket.last().open();
    expect(opens).toEqual([false, true]);
    expect(statuses.at(-1)).toBe('open');
  });

  it('caps the delay and resets it after a successful connection', () => {
    const { socket } = setup();
    expect([0, 1, 2, 3, 4, 5].map((n) => socket.delayFor(n))).toEqual([100, 200, 400, 800, 1000, 1000]);
    const jittery = setup({ random: () => 0 }).socket;
    expect(jittery.delayFor(2)).toBe(200);
  });

  it('stops on 4401 and sends the user to the login page', () => {
    const { socket, onUnauthorized, statuses } = setup();
    socket.start();
    FakeWebSocket.last().open();
    FakeWebSocket.last().serverClose(4401);
    vi.advanceTimersByTime(60_000);
    expect(onUnauthorized).toHaveBeenCalledTimes(1);
    expect(FakeWebSocket.instances).toHaveLength(1);
    expect(statuses.at(-1)).toBe('closed');
  });

  it('stop() closes the socket and cancels a pending reconnect', () => {
    const { socket } = setup();
    socket.start();
    FakeWebSocket.last().serverClose(1006);
    socket.stop();
    vi.advanceTimersByTime(60_000);
    expect(FakeWebSocket.instances).toHaveLength(1);

    const b = setup();
    b.socket.start();
    const ws = FakeWebSocket.last();
    ws.open();
    b.socket.stop();
    expect(ws.closedByClient).toBe(true);
  });
});

describe('liveUrl / parseLiveMessage', () => {
  it('follows the page scheme', () => {
    expect(liveUrl('/api/calls/live', { protocol: 'https:', host: 'cg.example.com' })).toBe('wss://cg.example.com/api/calls/live');
    expect(liveUrl('/api/calls/live?call_id=1', { protocol: 'http:', host: '127.0.0.1:5173' })).toBe(
      'ws://127.0.0.1:5173/api/calls/live?call_id=1',
    );
  });
  it('accepts a turn only with a numeric seq', () => {
    expect(parseLiveMessage(JSON.stringify({ type: 'turn', call_id: 'c', turn: { seq: '1' } }))).toBeNull();
    expect(parseLiveMessage(JSON.stringify({ type: 'turn', call_id: 'c', turn: { seq: 1 } }))).not.toBeNull();
  });
});
