// State of one call followed live: the call as last seen, its turns ordered by seq, and whether it has
// ended. Fed by the detail snapshot (GET /api/calls/{id}) and by socket messages, in any order.
import type { CallDetail, CallSummary, LiveMessage, Turn } from '../api/types';

export interface LiveCallState {
  callId: string;
  call: CallSummary | CallDetail | null;
  turns: Turn[];
  ended: boolean;
}

export type LiveCallAction = { type: 'snapshot'; call: CallDetail } | { type: 'message'; msg: LiveMessage };

export function initialLiveCall(callId: string): LiveCallState {
  return { callId, call: null, turns: [], ended: false };
}

function sameTurn(a: Turn, b: Turn): boolean {
  return (
    a.seq === b.seq &&
    a.speaker === b.speaker &&
    a.text === b.text &&
    a.at === b.at &&
    a.ended_at === b.ended_at &&
    a.interrupted === b.interrupted &&
    a.timings.speech_end_ms === b.timings.speech_end_ms &&
    a.timings.stt_final_ms === b.timings.stt_final_ms &&
    a.timings.first_token_ms === b.timings.first_token_ms &&
    a.timings.first_tts_byte_ms === b.timings.first_tts_byte_ms &&
    a.timings.first_audio_frame_ms === b.timings.first_audio_frame_ms
  );
}

/**
 * Inserts or replaces `turn` by seq, keeping the list ordered. Returns the same array when the turn is
 * already there unchanged, so a duplicate delivery causes no re-render.
 */
export function upsertTurn(turns: Turn[], turn: Turn): Turn[] {
  let lo = 0;
  let hi = turns.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (turns[mid]!.seq < turn.seq) lo = mid + 1;
    else hi = mid;
  }
  const existing = turns[lo];
  if (existing && existing.seq === turn.seq) {
    if (sameTurn(existing, turn)) return turns;
    const next = turns.slice();
    next[lo] = turn;
    return next;
  }
  const next = turns.slice();
  next.splice(lo, 0, turn);
  return next;
}

function mergeCall(prev: LiveCallState['call'], call: CallSummary): CallSummary | CallDetail {
  // A summary update keeps the detail-only fields (screening rationale, recording, …) already known.
  return prev ? { ...prev, ...call } : call;
}

export function liveCallReducer(state: LiveCallState, action: LiveCallAction): LiveCallState {
  if (action.type === 'snapshot') {
    const c = action.call;
    if (c.id !== state.callId) return state;
    let turns = state.turns;
    for (const t of c.transcript) turns = upsertTurn(turns, t);
    return { ...state, call: c, turns, ended: state.ended || !c.live };
  }
  const msg = action.msg;
  switch (msg.type) {
    case 'turn': {
      if (msg.call_id !== state.callId) return state;
      const turns = upsertTurn(state.turns, msg.turn);
      return turns === state.turns ? state : { ...state, turns };
    }
    case 'call_started':
    case 'call_updated':
      if (msg.call.id !== state.callId) return state;
      return { ...state, call: mergeCall(state.call, msg.call), ended: state.ended || !msg.call.live };
    case 'call_ended':
      if (msg.call.id !== state.callId) return state;
      return { ...state, call: mergeCall(state.call, { ...msg.call, live: false }), ended: true };
    default:
      return state;
  }
}
