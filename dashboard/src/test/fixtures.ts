import type { CallDetail, CallSummary, Me, Turn } from '../api/types';

export const TENANT = '11111111-1111-4111-8111-111111111111';

export const adminMe: Me = {
  id: 'aaaaaaaa-0000-4000-8000-000000000001',
  email: 'owner@example.com',
  display_name: 'Olivia Owner',
  role: 'admin',
  tenant_id: TENANT,
  tenant_name: 'Acme Dental',
};

export const memberMe: Me = { ...adminMe, id: 'aaaaaaaa-0000-4000-8000-000000000002', role: 'member', email: 'm@example.com', display_name: null };

let n = 0;
export function makeCall(over: Partial<CallSummary> = {}): CallSummary {
  n += 1;
  const id = over.id ?? `cccccccc-0000-4000-8000-${String(n).padStart(12, '0')}`;
  return {
    id,
    call_sid: `CA${String(n).padStart(32, '0')}`,
    tenant_id: TENANT,
    direction: 'inbound',
    from: '+15551230000',
    to: '+15559870000',
    caller_name: null,
    started_at: '2026-11-20T14:05:00Z',
    ended_at: '2026-11-20T14:06:12Z',
    duration_s: 72,
    mode: 'screening',
    status: 'completed',
    outcome: 'message_taken',
    label: 'legit',
    intent: 'dentist confirming an appointment',
    confidence: 0.91,
    live: false,
    has_recording: false,
    has_lead: false,
    ...over,
  };
}

export function makeTurn(seq: number, over: Partial<Turn> = {}): Turn {
  return {
    seq,
    speaker: seq % 2 === 0 ? 'agent' : 'caller',
    text: `turn ${seq}`,
    at: new Date(Date.parse('2026-11-20T14:05:00Z') + seq * 3000).toISOString(),
    ended_at: null,
    interrupted: false,
    timings: { speech_end_ms: null, stt_final_ms: null, first_token_ms: null, first_tts_byte_ms: null, first_audio_frame_ms: null },
    ...over,
  };
}

export function makeDetail(over: Partial<CallDetail> = {}): CallDetail {
  const base = makeCall(over);
  return {
    ...base,
    number_id: null,
    forwarded_from: null,
    stir_verstat: 'TN-Validation-Passed-A',
    node_id: 'node-ams-1',
    region: 'ams',
    answered_at: '2026-11-20T14:05:01Z',
    summary: null,
    screening: {
      label: 'legit',
      intent: 'dentist confirming an appointment',
      confidence: 0.91,
      rationale: 'Names a practice and an existing appointment; no sales language.',
      action: 'transfer',
    },
    transcript: [],
    recording: null,
    lead: null,
    contact: null,
    ...over,
  };
}

/** A JSON Response as the node would send it. */
export function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
}

export function apiError(status: number, code: string, message = code): Response {
  return json({ error: { code, message } }, status);
}
