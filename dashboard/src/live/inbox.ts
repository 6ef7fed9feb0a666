// Applies call-level socket messages to the inbox's cached pages.
import type { InfiniteData } from '@tanstack/react-query';
import type { CallPage, CallSummary, LiveMessage } from '../api/types';
import { callMatches, type InboxFilters } from '../lib/filters';

export type InboxData = InfiniteData<CallPage, string | undefined>;

export interface InboxApplyResult {
  data: InboxData | undefined;
  /** A new call arrived that may match but cannot be placed here (free-text filter): offer a refresh. */
  unplaced: boolean;
}

function contains(data: InboxData, id: string): boolean {
  return data.pages.some((p) => p.items.some((c) => c.id === id));
}

function replace(data: InboxData, call: CallSummary): InboxData {
  let changed = false;
  const pages = data.pages.map((p) => {
    if (!p.items.some((c) => c.id === call.id)) return p;
    changed = true;
    return { ...p, items: p.items.map((c) => (c.id === call.id ? call : c)) };
  });
  return changed ? { ...data, pages } : data;
}

export function applyLiveToInbox(
  data: InboxData | undefined,
  msg: LiveMessage,
  filters: InboxFilters,
): InboxApplyResult {
  if (msg.type === 'turn' || !data || data.pages.length === 0) return { data, unplaced: false };
  const call = msg.call;
  if (contains(data, call.id)) {
    // An update or end of a call already listed. If it no longer matches (e.g. its label changed under
    // a label filter) it stays until the next refetch: rows do not vanish under the reader's eyes.
    return { data: replace(data, call), unplaced: false };
  }
  const match = callMatches(call, filters);
  if (match === false) return { data, unplaced: false };
  if (match === undefined) return { data, unplaced: msg.type === 'call_started' };
  if (msg.type !== 'call_started') return { data, unplaced: false };
  // New calls go on top of the first page, keeping it sorted newest first.
  const [first, ...rest] = data.pages as [CallPage, ...CallPage[]];
  const items = [...first.items, call].sort(
    (a, b) => Date.parse(b.started_at) - Date.parse(a.started_at) || (b.id < a.id ? -1 : b.id > a.id ? 1 : 0),
  );
  return { data: { ...data, pages: [{ ...first, items }, ...rest] }, unplaced: false };
}
