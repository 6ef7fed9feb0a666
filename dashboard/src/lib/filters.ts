// Inbox filters <-> URL query string <-> API query. The URL keeps calendar days (YYYY-MM-DD, local
// time) so a shared link reads naturally; the API gets RFC 3339 instants.
import {
  CALL_MODES,
  CALL_OUTCOMES,
  SCREENING_LABELS,
  type CallFilters,
  type CallMode,
  type CallOutcome,
  type CallSummary,
  type ScreeningLabel,
} from '../api/types';

export interface InboxFilters {
  label?: ScreeningLabel | 'none';
  mode?: CallMode;
  outcome?: CallOutcome;
  from?: string;
  q?: string;
  /** YYYY-MM-DD, first day included. */
  since?: string;
  /** YYYY-MM-DD, last day included. */
  until?: string;
}

export const FILTER_KEYS = ['label', 'mode', 'outcome', 'from', 'q', 'since', 'until'] as const;

const DAY = /^\d{4}-\d{2}-\d{2}$/;

function oneOf<T extends string>(values: readonly T[], v: string | null): T | undefined {
  return v !== null && (values as readonly string[]).includes(v) ? (v as T) : undefined;
}

/** Reads the filters from a query string, dropping values that are not valid. */
export function parseFilters(params: URLSearchParams): InboxFilters {
  const f: InboxFilters = {};
  const label = oneOf([...SCREENING_LABELS, 'none'] as const, params.get('label'));
  if (label) f.label = label;
  const mode = oneOf(CALL_MODES, params.get('mode'));
  if (mode) f.mode = mode;
  const outcome = oneOf(CALL_OUTCOMES, params.get('outcome'));
  if (outcome) f.outcome = outcome;
  const from = params.get('from')?.trim();
  if (from) f.from = from;
  const q = params.get('q')?.trim();
  if (q) f.q = q;
  const since = params.get('since');
  if (since && DAY.test(since)) f.since = since;
  const until = params.get('until');
  if (until && DAY.test(until)) f.until = until;
  return f;
}

/** Writes the filters into `params` (other keys are kept), removing empty ones. */
export function writeFilters(params: URLSearchParams, f: InboxFilters): URLSearchParams {
  const next = new URLSearchParams(params);
  for (const key of FILTER_KEYS) {
    const v = f[key];
    if (v) next.set(key, v);
    else next.delete(key);
  }
  return next;
}

export function hasFilters(f: InboxFilters): boolean {
  return FILTER_KEYS.some((k) => !!f[k]);
}

/** Local midnight of a YYYY-MM-DD day, plus `addDays`. */
function localDayStart(day: string, addDays = 0): Date {
  const [y, m, d] = day.split('-').map(Number) as [number, number, number];
  return new Date(y, m - 1, d + addDays);
}

export function toApiFilters(f: InboxFilters): CallFilters {
  const out: CallFilters = {};
  if (f.label) out.label = f.label;
  if (f.mode) out.mode = f.mode;
  if (f.outcome) out.outcome = f.outcome;
  if (f.from) out.from = f.from;
  if (f.q) out.q = f.q;
  if (f.since) out.since = localDayStart(f.since).toISOString();
  if (f.until) out.until = localDayStart(f.until, 1).toISOString();
  return out;
}

/**
 * Whether a call pushed over the live socket belongs in the list filtered by `f`. `undefined` when the
 * browser cannot tell (free-text search runs on the server).
 */
export function callMatches(call: CallSummary, f: InboxFilters): boolean | undefined {
  if (f.label && (call.label ?? 'none') !== f.label) return false;
  if (f.mode && call.mode !== f.mode) return false;
  if (f.outcome && call.outcome !== f.outcome) return false;
  if (f.from) {
    if (f.from.endsWith('*') ? !call.from.startsWith(f.from.slice(0, -1)) : call.from !== f.from) return false;
  }
  const api = toApiFilters(f);
  const t = Date.parse(call.started_at);
  if (api.since && t < Date.parse(api.since)) return false;
  if (api.until && t >= Date.parse(api.until)) return false;
  if (f.q) return undefined;
  return true;
}
