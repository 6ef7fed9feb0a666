import type { CallOutcome, CallStatus, TurnTimings } from '../api/types';

/** 42 → "0:42", 725 → "12:05", 3723 → "1:02:03". */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '—';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

/** 0.934 → "93%". */
export function formatConfidence(c: number | null | undefined): string {
  if (c === null || c === undefined || !Number.isFinite(c)) return '—';
  return `${Math.round(c * 100)}%`;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayTimeFmt = new Intl.DateTimeFormat(undefined, {
  month: 'short',
  day: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
});
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

/** Time only for today, else date and time. */
export function formatCallTime(iso: string, now: Date = new Date()): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const sameDay =
    d.getFullYear() === now.getFullYear() && d.getMonth() === now.getMonth() && d.getDate() === now.getDate();
  return sameDay ? timeFmt.format(d) : dayTimeFmt.format(d);
}

export function formatDateTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : fullFmt.format(d);
}

export function formatMs(ms: number): string {
  return ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}

/** "+15551234567" → "+1 555 123 4567" for NANP numbers; anything else unchanged. */
export function formatPhone(n: string | null | undefined): string {
  if (!n) return '—';
  const m = /^\+1(\d{3})(\d{3})(\d{4})$/.exec(n);
  return m ? `+1 ${m[1]} ${m[2]} ${m[3]}` : n;
}

export function humanize(s: string | null | undefined): string {
  if (!s) return '—';
  const t = s.replace(/_/g, ' ');
  return t.charAt(0).toUpperCase() + t.slice(1);
}

export const OUTCOME_COLORS: Record<CallOutcome, string> = {
  completed: 'gray',
  transferred: 'blue',
  message_taken: 'teal',
  rejected: 'red',
  voicemail: 'grape',
  missed: 'orange',
  failed: 'red',
  abandoned: 'gray',
};

export function statusIsRinging(s: CallStatus): boolean {
  return s === 'queued' || s === 'ringing';
}

export interface TimingStep {
  key: 'stt' | 'llm' | 'tts' | 'send' | 'total';
  label: string;
  ms: number;
}

function diff(a: number | null, b: number | null): number | null {
  return a !== null && b !== null && a >= b ? a - b : null;
}

/**
 * Per-stage durations of one turn from its timings (all measured on the node's clock since the media
 * stream started): STT = stt_final − speech_end, LLM = first_token − stt_final, TTS = first_tts_byte −
 * first_token, send = first_audio_frame − first_tts_byte, total (reply latency) = first_audio_frame −
 * speech_end. Stages that did not happen are left out.
 */
export function timingSteps(t: TurnTimings): TimingStep[] {
  const steps: TimingStep[] = [];
  const push = (key: TimingStep['key'], label: string, ms: number | null) => {
    if (ms !== null) steps.push({ key, label, ms });
  };
  push('stt', 'STT', diff(t.stt_final_ms, t.speech_end_ms));
  push('llm', 'first token', diff(t.first_token_ms, t.stt_final_ms));
  push('tts', 'TTS', diff(t.first_tts_byte_ms, t.first_token_ms));
  push('send', 'to audio', diff(t.first_audio_frame_ms, t.first_tts_byte_ms));
  push('total', 'latency', diff(t.first_audio_frame_ms, t.speech_end_ms));
  return steps;
}
