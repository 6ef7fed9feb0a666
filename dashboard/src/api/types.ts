// The JSON API of the voice node as the dashboard uses it. dashboard/API.md is the prose version of the
// same contract; the two change together. Times are RFC 3339 strings (UTC), ids are UUID strings, phone
// numbers E.164. A value that does not exist is `null`, never an omitted field.

export type Uuid = string;
export type Timestamp = string;

// --- Enumerations (the schema's CHECK lists and the `shared` crate's domain enums) -----------------

export const ROLES = ['superadmin', 'admin', 'member'] as const;
export type Role = (typeof ROLES)[number];

export const CALL_MODES = ['screening', 'receptionist', 'forward'] as const;
export type CallMode = (typeof CALL_MODES)[number];

export const SCREENING_LABELS = ['legit', 'marketing', 'spam', 'unknown'] as const;
export type ScreeningLabel = (typeof SCREENING_LABELS)[number];

export const CALL_OUTCOMES = [
  'completed',
  'transferred',
  'message_taken',
  'rejected',
  'voicemail',
  'missed',
  'failed',
  'abandoned',
] as const;
export type CallOutcome = (typeof CALL_OUTCOMES)[number];

export type CallStatus =
  | 'queued'
  | 'ringing'
  | 'in_progress'
  | 'completed'
  | 'busy'
  | 'failed'
  | 'no_answer'
  | 'canceled';

export type CallDirection = 'inbound' | 'outbound';
export type Speaker = 'caller' | 'agent' | 'owner';
export type ScreeningAction = 'transfer' | 'take_message' | 'end_call';
export const SCREENING_ACTIONS: readonly ScreeningAction[] = ['transfer', 'take_message', 'end_call'];
export type Urgency = 'low' | 'normal' | 'high';
export type RecordingStatus =
  | 'in_progress'
  | 'paused'
  | 'stopped'
  | 'processing'
  | 'completed'
  | 'absent'
  | 'failed';
export type ContactKind = 'allow' | 'block';
export const PROVIDER_KINDS = ['stt', 'tts', 'llm'] as const;
export type ProviderKind = (typeof PROVIDER_KINDS)[number];
export const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

// --- Errors ------------------------------------------------------------------------------------------

export type ErrorCode =
  | 'bad_request'
  | 'tenant_required'
  | 'unauthorized'
  | 'invalid_credentials'
  | 'forbidden'
  | 'bad_origin'
  | 'not_found'
  | 'conflict'
  | 'validation_failed'
  | 'rate_limited'
  | 'internal'
  | 'unavailable'
  | 'voice_not_configured';

/** Body of every non-2xx answer. `details.fields` maps a field name to its problem (422). */
export interface ErrorEnvelope {
  error: {
    code: ErrorCode | string;
    message: string;
    details?: { fields?: Record<string, string> } & Record<string, unknown>;
  };
}

// --- Auth --------------------------------------------------------------------------------------------

export interface LoginRequest {
  email: string;
  password: string;
}

export interface Me {
  id: Uuid;
  email: string;
  display_name: string | null;
  role: Role;
  /** null only for a superadmin. */
  tenant_id: Uuid | null;
  tenant_name: string | null;
}

export interface LoginResponse {
  user: Me;
}

// --- Calls -------------------------------------------------------------------------------------------

/** Query of `GET /api/calls`; every field optional, combined with AND. */
export interface CallFilters {
  /** A label, or `none` for calls without a screening result. */
  label?: ScreeningLabel | 'none';
  mode?: CallMode;
  outcome?: CallOutcome;
  /** Exact E.164, or a prefix ending with `*`. */
  from?: string;
  /** RFC 3339, inclusive. */
  since?: Timestamp;
  /** RFC 3339, exclusive. */
  until?: Timestamp;
  /** Free text over transcripts (websearch syntax), intent and caller name. */
  q?: string;
  live?: boolean;
}

export interface CallListQuery extends CallFilters {
  cursor?: string;
  /** 1–200, default 50. */
  limit?: number;
}

export interface CallSummary {
  id: Uuid;
  call_sid: string;
  tenant_id: Uuid;
  direction: CallDirection;
  from: string;
  to: string;
  caller_name: string | null;
  started_at: Timestamp;
  ended_at: Timestamp | null;
  /** null while the call is live. */
  duration_s: number | null;
  mode: CallMode;
  status: CallStatus;
  /** null while the call is live. */
  outcome: CallOutcome | null;
  /** label / intent / confidence are null when the call was not screened (yet). */
  label: ScreeningLabel | null;
  intent: string | null;
  confidence: number | null;
  /** ended_at IS NULL */
  live: boolean;
  has_recording: boolean;
  has_lead: boolean;
}

export interface CallPage {
  items: CallSummary[];
  /** null when there are no more pages. */
  next_cursor: string | null;
}

/** Milliseconds since the call's media stream started; null where the stage did not happen. */
export interface TurnTimings {
  speech_end_ms: number | null;
  stt_final_ms: number | null;
  first_token_ms: number | null;
  first_tts_byte_ms: number | null;
  first_audio_frame_ms: number | null;
}

export interface Turn {
  seq: number;
  speaker: Speaker;
  text: string;
  /** When the utterance started. */
  at: Timestamp;
  ended_at: Timestamp | null;
  /** The caller barged in; `text` is what was actually heard. */
  interrupted: boolean;
  timings: TurnTimings;
}

export interface Screening {
  label: ScreeningLabel;
  intent: string;
  confidence: number;
  /** Internal reasoning; null for members (admins only). */
  rationale: string | null;
  action: ScreeningAction | null;
}

export interface Recording {
  /** Same-origin path `/api/calls/{id}/recording`. */
  url: string;
  duration_s: number | null;
  status: RecordingStatus;
}

export interface Lead {
  id: Uuid;
  name: string | null;
  callback_number: string | null;
  reason: string;
  urgency: Urgency;
  handled_at: Timestamp | null;
}

export interface Contact {
  id: Uuid;
  number: string;
  kind: ContactKind;
  name: string | null;
  note: string | null;
  created_at: Timestamp;
}

export interface CallDetail extends CallSummary {
  number_id: Uuid | null;
  forwarded_from: string | null;
  /** STIR/SHAKEN attestation as Twilio reports it, e.g. `TN-Validation-Passed-A`. */
  stir_verstat: string | null;
  node_id: string | null;
  region: string | null;
  answered_at: Timestamp | null;
  summary: string | null;
  screening: Screening | null;
  /** Ordered by seq. */
  transcript: Turn[];
  recording: Recording | null;
  lead: Lead | null;
  /** The caller's allow/block entry, if any. */
  contact: Pick<Contact, 'id' | 'kind' | 'name'> | null;
}

export interface ContactResponse {
  contact: Contact;
}

export interface RecordingResponse {
  recording: Recording;
}

// --- Live: WS /api/calls/live ------------------------------------------------------------------------

export type LiveMessage =
  | { type: 'call_started'; call: CallSummary }
  | { type: 'call_updated'; call: CallSummary }
  | { type: 'turn'; call_id: Uuid; turn: Turn }
  | { type: 'call_ended'; call: CallSummary };

/** WebSocket close codes the server uses. */
export const WS_CLOSE_UNAUTHORIZED = 4401;
export const WS_CLOSE_NOT_FOUND = 4404;

// --- Tenant and settings -----------------------------------------------------------------------------

export interface List<T> {
  items: T[];
}

export interface TenantRef {
  id: Uuid;
  name: string;
}

/** [open, close] in 24-hour "HH:MM"; close may be "24:00". */
export type TimeRange = [string, string];
/** A missing day is closed; `{}` means always open. */
export type BusinessHours = Partial<Record<Weekday, TimeRange[]>>;

export interface TenantSettings {
  id: Uuid;
  name: string;
  /** IANA zone name. */
  timezone: string;
  business_hours: BusinessHours;
  ai_enabled: boolean;
  /** `{business}` is replaced by the tenant's name. */
  text_back_template: string;
  retention_days: number;
  updated_at: Timestamp;
}

export type TenantPatch = Partial<
  Pick<
    TenantSettings,
    'name' | 'timezone' | 'business_hours' | 'ai_enabled' | 'text_back_template' | 'retention_days'
  >
>;

export interface PhoneNumber {
  id: Uuid;
  e164: string;
  friendly_name: string | null;
  mode: CallMode;
  owner_phone: string | null;
  region: string | null;
  updated_at: Timestamp;
}

export type PhoneNumberPatch = Partial<Pick<PhoneNumber, 'mode' | 'owner_phone' | 'friendly_name' | 'region'>>;

export interface Department {
  id: Uuid;
  name: string;
  /** E.164 or a sip:/sips: URI. */
  transfer_to: string;
  description: string;
  keywords: string[];
  enabled: boolean;
  position: number;
  updated_at: Timestamp;
}

export type DepartmentInput = Omit<Department, 'id' | 'updated_at'>;

export interface KbEntry {
  id: Uuid;
  question: string;
  answer: string;
  enabled: boolean;
  /** false until the embedding job has run for the current text. */
  embedded: boolean;
  updated_at: Timestamp;
}

export type KbInput = Pick<KbEntry, 'question' | 'answer' | 'enabled'>;

export interface ScreeningPolicy {
  label: ScreeningLabel;
  action: ScreeningAction;
  /** 0..1; below it a result is treated as `unknown`. */
  min_confidence: number;
  is_default: boolean;
}

export interface ScreeningExample {
  id: Uuid;
  text: string;
  label: ScreeningLabel;
  intent: string;
  /** Built-in examples are shared by every tenant and read-only. */
  builtin: boolean;
  created_at: Timestamp;
}

export type ScreeningExampleInput = Pick<ScreeningExample, 'text' | 'label' | 'intent'>;

export interface ProviderSetting {
  kind: ProviderKind;
  provider: string;
  base_url: string | null;
  model: string | null;
  settings: Record<string, unknown>;
  /** The key itself is never returned. */
  has_api_key: boolean;
  is_default: boolean;
  updated_at: Timestamp | null;
}

export interface ProviderInput {
  provider: string;
  base_url?: string | null;
  model?: string | null;
  settings?: Record<string, unknown>;
  /** Omitted: keep the stored key. null: erase it. */
  api_key?: string | null;
}

export const PROVIDER_CHOICES: Record<ProviderKind, readonly string[]> = {
  stt: ['offline', 'deepgram', 'openai'],
  tts: ['offline', 'elevenlabs', 'openai', 'deepgram'],
  llm: ['offline', 'openai'],
};

export interface User {
  id: Uuid;
  email: string;
  display_name: string | null;
  role: Role;
  disabled: boolean;
  last_login_at: Timestamp | null;
  created_at: Timestamp;
}

export interface UserCreate {
  email: string;
  password: string;
  role: Role;
  display_name?: string | null;
}

export interface UserPatch {
  role?: Role;
  display_name?: string | null;
  disabled?: boolean;
  password?: string;
}

// --- Dialer ------------------------------------------------------------------------------------------

export interface VoiceToken {
  /** Twilio Access Token (JWT) with a VoiceGrant. */
  token: string;
  identity: string;
  expires_at: Timestamp;
  /** The tenant's numbers the call may show as caller ID. */
  caller_ids: string[];
}
