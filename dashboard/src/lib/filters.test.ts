import { describe, expect, it } from 'vitest';
import { makeCall } from '../test/fixtures';
import { applyLiveToInbox, type InboxData } from '../live/inbox';
import { callMatches, parseFilters, toApiFilters, writeFilters } from './filters';
import { formatDuration, timingSteps } from './format';

describe('inbox filters', () => {
  it('parses valid values and drops invalid ones', () => {
    const f = parseFilters(new URLSearchParams('label=spam&mode=bogus&outcome=missed&from=%2B1555&q=+refund+&since=2026-11-01&until=yesterday'));
    expect(f).toEqual({ label: 'spam', outcome: 'missed', from: '+1555', q: 'refund', since: '2026-11-01' });
  });

  it('round-trips through the URL and keeps unrelated parameters', () => {
    const params = writeFilters(new URLSearchParams('tab=x&label=legit'), { mode: 'forward', q: 'invoice' });
    expect(params.get('tab')).toBe('x');
    expect(params.get('label')).toBeNull();
    expect(parseFilters(params)).toEqual({ mode: 'forward', q: 'invoice' });
  });

  it('turns calendar days into a half-open instant range (TZ=UTC in tests)', () => {
    expect(toApiFilters({ since: '2026-11-01', until: '2026-11-03' })).toEqual({
      since: '2026-11-01T00:00:00.000Z',
      until: '2026-11-04T00:00:00.000Z',
    });
  });

  it('matches live calls against filters; free text is undecidable', () => {
    const c = makeCall({ label: 'spam', mode: 'screening', from: '+15550001111', started_at: '2026-11-02T10:00:00Z' });
    expect(callMatches(c, { label: 'spam' })).toBe(true);
    expect(callMatches(c, { label: 'legit' })).toBe(false);
    expect(callMatches(makeCall({ label: null }), { label: 'none' })).toBe(true);
    expect(callMatches(c, { from: '+1555*' })).toBe(true);
    expect(callMatches(c, { from: '+1666*' })).toBe(false);
    expect(callMatches(c, { since: '2026-11-03' })).toBe(false);
    expect(callMatches(c, { until: '2026-11-02' })).toBe(true);
    expect(callMatches(c, { q: 'anything' })).toBeUndefined();
  });
});

describe('applyLiveToInbox', () => {
  const page = (items = [makeCall({ started_at: '2026-11-20T10:00:00Z' })]): InboxData => ({
    pages: [{ items, next_cursor: null }],
    pageParams: [undefined],
  });

  it('puts a matching new call on top and skips a non-matching one', () => {
    const fresh = makeCall({ started_at: '2026-11-20T11:00:00Z', label: null, live: true });
    const r = applyLiveToInbox(page(), { type: 'call_started', call: fresh }, {});
    expect(r.data?.pages[0]!.items[0]!.id).toBe(fresh.id);
    const r2 = applyLiveToInbox(page(), { type: 'call_started', call: fresh }, { label: 'spam' });
    expect(r2.data?.pages[0]!.items).toHaveLength(1);
  });

  it('updates a listed call in place and never duplicates', () => {
    const listed = makeCall({ live: true, label: null });
    const data = page([listed]);
    const r = applyLiveToInbox(data, { type: 'call_updated', call: { ...listed, label: 'legit' } }, {});
    expect(r.data?.pages[0]!.items).toHaveLength(1);
    expect(r.data?.pages[0]!.items[0]!.label).toBe('legit');
    const again = applyLiveToInbox(r.data, { type: 'call_started', call: listed }, {});
    expect(again.data?.pages[0]!.items).toHaveLength(1);
  });

  it('asks for a refresh when a free-text search is active', () => {
    const r = applyLiveToInbox(page(), { type: 'call_started', call: makeCall() }, { q: 'refund' });
    expect(r.unplaced).toBe(true);
    expect(r.data?.pages[0]!.items).toHaveLength(1);
  });
});

describe('format', () => {
  it('formats durations', () => {
    expect([formatDuration(0), formatDuration(42), formatDuration(725), formatDuration(3723), formatDuration(null)]).toEqual([
      '0:00',
      '0:42',
      '12:05',
      '1:02:03',
      '—',
    ]);
  });
  it('derives per-stage timings and skips missing stages', () => {
    const steps = timingSteps({ speech_end_ms: 1000, stt_final_ms: 1180, first_token_ms: 1500, first_tts_byte_ms: 1650, first_audio_frame_ms: 1690 });
    expect(steps.map((s) => [s.key, s.ms])).toEqual([
      ['stt', 180],
      ['llm', 320],
      ['tts', 150],
      ['send', 40],
      ['total', 690],
    ]);
    expect(timingSteps({ speech_end_ms: 500, stt_final_ms: 640, first_token_ms: null, first_tts_byte_ms: null, first_audio_frame_ms: null })).toEqual([
      { key: 'stt', label: 'STT', ms: 140 },
    ]);
  });
});
