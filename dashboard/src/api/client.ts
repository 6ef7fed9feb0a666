// A small typed client for the node's /api. Every non-2xx answer becomes an ApiError carrying the
// envelope's code; a 401 (other than a failed login) also calls `onUnauthorized`, which the app wires to
// "go back to the login page".
import type {
  CallDetail,
  CallListQuery,
  CallPage,
  Contact,
  ContactKind,
  ContactResponse,
  Department,
  DepartmentInput,
  ErrorEnvelope,
  KbEntry,
  KbInput,
  List,
  LoginResponse,
  Me,
  PhoneNumber,
  PhoneNumberPatch,
  ProviderInput,
  ProviderKind,
  ProviderSetting,
  RecordingResponse,
  ScreeningExample,
  ScreeningExampleInput,
  ScreeningLabel,
  ScreeningPolicy,
  TenantPatch,
  TenantRef,
  TenantSettings,
  User,
  UserCreate,
  UserPatch,
  VoiceToken,
} from './types';

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: Record<string, unknown> | undefined;

  constructor(status: number, code: string, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
  }

  /** Per-field problems of a 422 `validation_failed`. */
  get fields(): Record<string, string> {
    const f = this.details?.fields;
    return f && typeof f === 'object' ? (f as Record<string, string>) : {};
  }
}

export function isApiError(e: unknown, code?: string): e is ApiError {
  return e instanceof ApiError && (code === undefined || e.code === code);
}

type QueryValue = string | number | boolean | null | undefined;
export type Query = Record<string, QueryValue>;

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  signal?: AbortSignal;
  /** false: a 401 is only thrown, not reported to onUnauthorized (the login form itself). */
  authRedirect?: boolean;
}

export function buildQuery(query: Query | undefined): string {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === '') continue;
    params.set(key, String(value));
  }
  const s = params.toString();
  return s ? `?${s}` : '';
}

function isEnvelope(v: unknown): v is ErrorEnvelope {
  if (!v || typeof v !== 'object') return false;
  const e = (v as { error?: unknown }).error;
  return !!e && typeof e === 'object' && typeof (e as { code?: unknown }).code === 'string';
}

export interface ApiClientOptions {
  baseUrl?: string;
  onUnauthorized?: () => void;
}

export class ApiClient {
  private readonly baseUrl: string;
  /** Called on any 401 except a failed login. */
  onUnauthorized: (() => void) | undefined;
  /** A superadmin's chosen tenant, sent as `tenant_id` on every request; null for everyone else. */
  tenantId: string | null = null;

  constructor(options: ApiClientOptions = {}) {
    this.baseUrl = options.baseUrl ?? '';
    this.onUnauthorized = options.onUnauthorized;
  }

  url(path: string, query?: Query): string {
    const q: Query = { ...query };
    if (this.tenantId && q.tenant_id === undefined) q.tenant_id = this.tenantId;
    return `${this.baseUrl}${path}${buildQuery(q)}`;
  }

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    let body: string | undefined;
    if (options.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(options.body);
    }
    let res: Response;
    try {
      res = await fetch(this.url(path, options.query), {
        method,
        headers,
        body,
        credentials: 'same-origin',
        signal: options.signal,
      });
    } catch (e) {
      if (e instanceof DOMException && e.name === 'AbortError') throw e;
      throw new ApiError(0, 'network', 'The server could not be reached. Check your connection.');
    }

    if (res.status === 204) return undefined as T;
    const text = await res.text();
    let json: unknown = undefined;
    if (text) {
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
    }

    if (!res.ok) {
      const err = isEnvelope(json)
        ? new ApiError(res.status, json.error.code, json.error.message, json.error.details)
        : new ApiError(res.status, `http_${res.status}`, `The server answered ${res.status} ${res.statusText}`.trim());
      if (res.status === 401 && options.authRedirect !== false) this.onUnauthorized?.();
      throw err;
    }
    if (json === undefined) {
      throw new ApiError(res.status, 'bad_response', 'The server sent an answer that is not JSON.');
    }
    return json as T;
  }

  // --- Auth ---
  login(email: string, password: string) {
    return this.request<LoginResponse>('POST', '/api/auth/login', {
      body: { email, password },
      authRedirect: false,
    });
  }
  logout() {
    return this.request<void>('POST', '/api/auth/logout', { authRedirect: false });
  }
  /** The current user; 401 (thrown, not redirected) when signed out. */
  me(signal?: AbortSignal) {
    return this.request<Me>('GET', '/api/me', { signal, authRedirect: false });
  }

  // --- Calls ---
  listCalls(query: CallListQuery, signal?: AbortSignal) {
    return this.request<CallPage>('GET', '/api/calls', { query: { ...query }, signal });
  }
  getCall(id: string, signal?: AbortSignal) {
    return this.request<CallDetail>('GET', `/api/calls/${encodeURIComponent(id)}`, { signal });
  }
  blockCaller(id: string, note?: string) {
    return this.request<ContactResponse>('POST', `/api/calls/${encodeURIComponent(id)}/block-caller`, {
      body: note ? { note } : {},
    });
  }
  markKnown(id: string, name?: string) {
    return this.request<ContactResponse>('POST', `/api/calls/${encodeURIComponent(id)}/mark-known`, {
      body: name ? { name } : {},
    });
  }
  deleteCall(id: string) {
    return this.request<void>('DELETE', `/api/calls/${encodeURIComponent(id)}`);
  }
  setRecording(id: string, action: 'start' | 'stop') {
    return this.request<RecordingResponse>('POST', `/api/calls/${encodeURIComponent(id)}/recording/${action}`);
  }

  // --- Contacts ---
  listContacts(kind?: ContactKind) {
    return this.request<List<Contact>>('GET', '/api/contacts', { query: { kind } });
  }
  deleteContact(id: string) {
    return this.request<void>('DELETE', `/api/contacts/${encodeURIComponent(id)}`);
  }

  // --- Tenant ---
  listTenants() {
    return this.request<List<TenantRef>>('GET', '/api/tenants', { query: { tenant_id: null } });
  }
  getTenant() {
    return this.request<TenantSettings>('GET', '/api/tenant');
  }
  patchTenant(patch: TenantPatch) {
    return this.request<TenantSettings>('PATCH', '/api/tenant', { body: patch });
  }

  // --- Numbers ---
  listNumbers() {
    return this.request<List<PhoneNumber>>('GET', '/api/numbers');
  }
  patchNumber(id: string, patch: PhoneNumberPatch) {
    return this.request<PhoneNumber>('PATCH', `/api/numbers/${encodeURIComponent(id)}`, { body: patch });
  }

  // --- Departments ---
  listDepartments() {
    return this.request<List<Department>>('GET', '/api/departments');
  }
  createDepartment(input: DepartmentInput) {
    return this.request<Department>('POST', '/api/departments', { body: input });
  }
  patchDepartment(id: string, patch: Partial<DepartmentInput>) {
    return this.request<Department>('PATCH', `/api/departments/${encodeURIComponent(id)}`, { body: patch });
  }
  deleteDepartment(id: string) {
    return this.request<void>('DELETE', `/api/departments/${encodeURIComponent(id)}`);
  }

  // --- Knowledge base ---
  listKb(q?: string) {
    return this.request<List<KbEntry>>('GET', '/api/kb', { query: { q } });
  }
  createKb(input: KbInput) {
    return this.request<KbEntry>('POST', '/api/kb', { body: input });
  }
  patchKb(id: string, patch: Partial<KbInput>) {
    return this.request<KbEntry>('PATCH', `/api/kb/${encodeURIComponent(id)}`, { body: patch });
  }
  deleteKb(id: string) {
    return this.request<void>('DELETE', `/api/kb/${encodeURIComponent(id)}`);
  }

  // --- Screening ---
  listPolicies() {
    return this.request<List<ScreeningPolicy>>('GET', '/api/screening/policies');
  }
  putPolicy(label: ScreeningLabel, policy: Pick<ScreeningPolicy, 'action' | 'min_confidence'>) {
    return this.request<ScreeningPolicy>('PUT', `/api/screening/policies/${label}`, { body: policy });
  }
  resetPolicy(label: ScreeningLabel) {
    return this.request<ScreeningPolicy>('DELETE', `/api/screening/policies/${label}`);
  }
  listExamples(label?: ScreeningLabel) {
    return this.request<List<ScreeningExample>>('GET', '/api/screening/examples', { query: { label } });
  }
  createExample(input: ScreeningExampleInput) {
    return this.request<ScreeningExample>('POST', '/api/screening/examples', { body: input });
  }
  deleteExample(id: string) {
    return this.request<void>('DELETE', `/api/screening/examples/${encodeURIComponent(id)}`);
  }

  // --- Providers ---
  listProviders() {
    return this.request<List<ProviderSetting>>('GET', '/api/providers');
  }
  putProvider(kind: ProviderKind, input: ProviderInput) {
    return this.request<ProviderSetting>('PUT', `/api/providers/${kind}`, { body: input });
  }
  resetProvider(kind: ProviderKind) {
    return this.request<ProviderSetting>('DELETE', `/api/providers/${kind}`);
  }

  // --- Users ---
  listUsers() {
    return this.request<List<User>>('GET', '/api/users');
  }
  createUser(input: UserCreate) {
    return this.request<User>('POST', '/api/users', { body: input });
  }
  patchUser(id: string, patch: UserPatch) {
    return this.request<User>('PATCH', `/api/users/${encodeURIComponent(id)}`, { body: patch });
  }
  deleteUser(id: string) {
    return this.request<void>('DELETE', `/api/users/${encodeURIComponent(id)}`);
  }

  // --- Dialer ---
  voiceToken() {
    return this.request<VoiceToken>('POST', '/api/voice/token');
  }
}

/** The app's one client. */
export const api = new ApiClient();
