// A reconnecting client for `WS /api/calls/live`. Reconnects with capped exponential backoff and jitter;
// stops for good on 4401 (session gone: back to login) and 4404 (unknown call). Each successful
// (re)connection calls `onOpen(isReconnect)` so the caller can re-read what it may have missed: the
// server replays nothing.
import { WS_CLOSE_NOT_FOUND, WS_CLOSE_UNAUTHORIZED, type LiveMessage } from '../api/types';

export type LiveStatus = 'connecting' | 'open' | 'reconnecting' | 'closed';

type WebSocketCtor = new (url: string) => WebSocket;

export interface LiveSocketOptions {
  url: string;
  onMessage: (msg: LiveMessage) => void;
  onStatus?: (status: LiveStatus) => void;
  onOpen?: (isReconnect: boolean) => void;
  onUnauthorized?: () => void;
  onNotFound?: () => void;
  WebSocketImpl?: WebSocketCtor;
  initialDelayMs?: number;
  maxDelayMs?: number;
  random?: () => number;
}

const MESSAGE_TYPES = new Set(['call_started', 'call_updated', 'turn', 'call_ended']);

export function parseLiveMessage(data: unknown): LiveMessage | null {
  if (typeof data !== 'string') return null;
  let v: unknown;
  try {
    v = JSON.parse(data);
  } catch {
    return null;
  }
  if (!v || typeof v !== 'object') return null;
  const m = v as Record<string, unknown>;
  if (typeof m.type !== 'string' || !MESSAGE_TYPES.has(m.type)) return null;
  if (m.type === 'turn') {
    if (typeof m.call_id !== 'string' || !m.turn || typeof m.turn !== 'object') return null;
    if (typeof (m.turn as { seq?: unknown }).seq !== 'number') return null;
  } else if (!m.call || typeof m.call !== 'object' || typeof (m.call as { id?: unknown }).id !== 'string') {
    return null;
  }
  return v as LiveMessage;
}

/** ws(s)://<this host><path>, following the page's scheme. */
export function liveUrl(pathWithQuery: string, loc: Pick<Location, 'protocol' | 'host'> = window.location): string {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}${pathWithQuery}`;
}

export class LiveSocket {
  private ws: WebSocket | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private attempt = 0;
  private stopped = true;
  private everOpened = false;
  private readonly opts: Required<Pick<LiveSocketOptions, 'initialDelayMs' | 'maxDelayMs' | 'random'>> &
    LiveSocketOptions;

  constructor(opts: LiveSocketOptions) {
    this.opts = { initialDelayMs: 500, maxDelayMs: 15_000, random: Math.random, ...opts };
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      if (ws.readyState === 0 || ws.readyState === 1) ws.close(1000);
    }
    this.opts.onStatus?.('closed');
  }

  /** Delay before reconnection attempt `n` (0-based): initial·2ⁿ capped at max, times 0.5–1 jitter. */
  delayFor(n: number): number {
    const base = Math.min(this.opts.maxDelayMs, this.opts.initialDelayMs * 2 ** n);
    return Math.round(base * (0.5 + this.opts.random() * 0.5));
  }

  private connect(): void {
    const Impl = this.opts.WebSocketImpl ?? WebSocket;
    this.opts.onStatus?.(this.everOpened || this.attempt > 0 ? 'reconnecting' : 'connecting');
    let ws: WebSocket;
    try {
      ws = new Impl(this.opts.url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      const isReconnect = this.everOpened;
      this.everOpened = true;
      this.attempt = 0;
      this.opts.onStatus?.('open');
      this.opts.onOpen?.(isReconnect);
    };
    ws.onmessage = (ev: MessageEvent) => {
      const msg = parseLiveMessage(ev.data);
      if (msg) this.opts.onMessage(msg);
    };
    ws.onclose = (ev: CloseEvent) => {
      this.ws = null;
      if (this.stopped) return;
      if (ev.code === WS_CLOSE_UNAUTHORIZED) {
        this.stopped = true;
        this.opts.onStatus?.('closed');
        this.opts.onUnauthorized?.();
        return;
      }
      if (ev.code === WS_CLOSE_NOT_FOUND) {
        this.stopped = true;
        this.opts.onStatus?.('closed');
        this.opts.onNotFound?.();
        return;
      }
      this.scheduleReconnect();
    };
    // An error is always followed by a close event, which does the work.
    ws.onerror = () => {};
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    this.opts.onStatus?.('reconnecting');
    const delay = this.delayFor(this.attempt);
    this.attempt += 1;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.stopped) this.connect();
    }, delay);
  }
}
