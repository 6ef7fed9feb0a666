import { describe, expect, it } from 'vitest';
import type { LiveMessage } from '../api/types';
import { makeCall, makeDetail, makeTurn } from '../test/fixtures';
import { initialLiveCall, liveCallReducer, upsertTurn, type LiveCallState } from './transcript';

const ID = 'cccccccc-0000-4000-8000-00000000abcd';
const msg = (m: LiveMessage) => ({ type: 'message' as const, msg: m });
const turn = (seq: number, text = `turn ${seq}`) => msg({ type: 'turn', call_id: ID, turn: makeTurn(seq, { text }) });

function run(...actions: Parameters<typeof liveCallReducer>[1][]): LiveCallState {
  return actions.reduce(liveCallReducer, initialLiveCall(ID));
}

describe('liveCallReducer', () => {
  it('appends turns in seq order', () => {
    const s = run(turn(0), turn(1), turn(2));
    expect(s.turns.map((t) => t.seq)).toEqual([0, 1, 2]);
    expect(s.turns.map((t) => t.text)).toEqual(['turn 0', 'turn 1', 'turn 2']);
  });

  it('puts a late turn in its place', () => {
    const s = run(turn(0), turn(2), turn(3), turn(1));
    expect(s.turns.map((t) => t.seq)).toEqual([0, 1, 2, 3]);
  });

  it('ignores an exact duplicate and keeps the same state object', () => {
    const s1 = run(turn(0), turn(1));
    const s2 = liveCallReducer(s1, turn(1));
    expect(s2).toBe(s1);
    expect(s2.turns).toHaveLength(2);
  });

  it('replaces a turn re-sent with changes (interrupted after barge-in) without adding a row', () => {
    const s1 = run(turn(0), turn(1));
    const updated = makeTurn(1, { text: 'turn 1', interrupted: true });
    const s2 = liveCallReducer(s1, msg({ type: 'turn', call_id: ID, turn: updated }));
    expect(s2.turns).toHaveLength(2);
    expect(s2.turns[1]!.interrupted).toBe(true);
  });

  it('ignores turns and events of other calls', () => {
    const other = 'cccccccc-0000-4000-8000-00000000ffff';
    const s = run(
      msg({ type: 'turn', call_id: other, turn: makeTurn(0) }),
      msg({ type: 'call_ended', call: makeCall({ id: other, live: false }) }),
    );
    expect(s.turns).toEqual([]);
    expect(s.ended).toBe(false);
    expect(s.call).toBeNull();
  });

  it('marks the call ended on call_ended and keeps what it knew', () => {
    const s0 = run(msg({ type: 'call_started', call: makeCall({ id: ID, live: true, ended_at: null, outcome: null }) }), turn(0));
    expect(s0.ended).toBe(false);
    const s = liveCallReducer(
      s0,
      msg({ type: 'call_ended', call: makeCall({ id: ID, live: false, outcome: 'transferred', duration_s: 95 }) }),
    );
    expect(s.ended).toBe(true);
    expect(s.call?.outcome).toBe('transferred');
    expect(s.call?.live).toBe(false);
    expect(s.turns).toHaveLength(1);
  });

  it('merges a snapshot with turns that arrived live before it', () => {
    const live = run(turn(3, 'said after the snapshot was read'));
    const snap = makeDetail({ id: ID, live: true, ended_at: null, transcript: [makeTurn(0), makeTurn(1), makeTurn(2)] });
    const s = liveCallReducer(live, { type: 'snapshot', call: snap });
    expect(s.turns.map((t) => t.seq)).toEqual([0, 1, 2, 3]);
    expect(s.turns[3]!.text).toBe('said after the snapshot was read');
    expect(s.ended).toBe(false);
  });

  it('a snapshot of an ended call ends the view', () => {
    const s = run({ type: 'snapshot', call: makeDetail({ id: ID, live: false }) });
    expect(s.ended).toBe(true);
  });

  it('a call_updated keeps detail-only fields from the snapshot', () => {
    const snap = makeDetail({ id: ID, live: true, ended_at: null, label: null, screening: null, node_id: 'n-1' });
    const s = run({ type: 'snapshot', call: snap }, msg({ type: 'call_updated', call: makeCall({ id: ID, live: true, label: 'spam' }) }));
    expect(s.call?.label).toBe('spam');
    expect((s.call as { node_id?: string }).node_id).toBe('n-1');
  });
});

describe('upsertTurn', () => {
  it('keeps order over many random arrivals and never duplicates', () => {
    const seqs = [5, 1, 9, 0, 3, 3, 7, 2, 8, 6, 4, 1, 9];
    let turns = [] as ReturnType<typeof makeTurn>[];
    for (const s of seqs) turns = upsertTurn(turns, makeTurn(s));
    expect(turns.map((t) => t.seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});
