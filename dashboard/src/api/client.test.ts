import { beforeEach, describe, expect, it, vi } from 'vitest';
import { apiError, json } from '../test/fixtures';
import { ApiClient, ApiError, buildQuery, isApiError } from './client';

type FetchArgs = [input: string, init: RequestInit];

function stubFetch(answer: (url: string, init: RequestInit) => Response | Promise<Response>) {
  const fn = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => answer(String(input), init ?? {}));
  vi.stubGlobal('fetch', fn);
  return fn as unknown as { mock: { calls: FetchArgs[] } };
}

describe('ApiClient', () => {
  let onUnauthorized: ReturnType<typeof vi.fn<() => void>>;
  let client: ApiClient;

  beforeEach(() => {
    onUnauthorized = vi.fn<() => void>();
    client = new ApiClient({ onUnauthorized });
  });

  it('turns the error envelope into a typed ApiError', async () => {
    stubFetch(() =>
      json(
        { error: { code: 'validation_failed', message: 'owner_phone must be E.164', details: { fields: { owner_phone: 'must be E.164' } } } },
        422,
      ),
    );
    const err = await client.patchNumber('n1', { owner_phone: '555' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    const e = err as ApiError;
    expect(e.status).toBe(422);
    expect(e.code).toBe('validation_failed');
    expect(e.message).toBe('owner_phone must be E.164');
    expect(e.fields).toEqual({ owner_phone: 'must be E.164' });
    expect(isApiError(e, 'validation_failed')).toBe(true);
    expect(isApiError(e, 'not_found')).toBe(false);
    expect(onUnauthorized).not.toHaveBeenCalled();
  });

  it('reports a 401 to onUnauthorized and still throws', async () => {
    stubFetch(() => apiError(401, 'unauthorized', 'session expired'));
    await expect(client.listCalls({})).rejects.toMatchObject({ status: 401, code: 'unauthorized' });
    expect(onUnauthorized).toHaveBeenCalledTimes(1);
  });

  it('does not redirect when the login itself answers 401', async () => {
    stubFetch(() => apiError(401, 'invalid_credentials', 'wrong e-mail or password'));
    await expect(client.login('a@b.c', 'nope')).rejects.toMatchObject({ code: 'invalid_credentials' });
    expect(onUnauthorized).not.toHaveBeenCalled();
  });

  it('does not treat a 403 as signed out', async () => {
    stubFetch(() => apiError(403, 'forbidden'));
    await expect(client.listUsers()).rejects.toMatchObject({ status: 403, code: 'forbidden' });
    expect(onUnauthorized).not.toHaveBeenCalled();
  });

  it('gives a non-JSON error (a proxy page) a code of its own', async () => {
    stubFetch(() => new Response('<html>Bad gateway</html>', { status: 502, statusText: 'Bad Gateway' }));
    await expect(client.getTenant()).rejects.toMatchObject({ status: 502, code: 'http_502' });
  });

  it('reports an unreachable server as a network error', async () => {
    stubFetch(() => {
      throw new TypeError('Failed to fetch');
    });
    await expect(client.me()).rejects.toMatchObject({ status: 0, code: 'network' });
  });

  it('sends filters as query parameters, skipping empty ones', async () => {
    const fetchFn = stubFetch(() => json({ items: [], next_cursor: null }));
    await client.listCalls({ label: 'spam', mode: 'screening', q: '', from: undefined, cursor: 'abc', limit: 50, live: false });
    const [url, init] = fetchFn.mock.calls[0]!;
    const u = new URL(url, 'http://x');
    expect(u.pathname).toBe('/api/calls');
    expect(Object.fromEntries(u.searchParams)).toEqual({ label: 'spam', mode: 'screening', cursor: 'abc', limit: '50', live: 'false' });
    expect(init.method).toBe('GET');
    expect(init.credentials).toBe('same-origin');
    expect(init.body).toBeUndefined();
  });

  it('posts JSON bodies and returns the parsed answer', async () => {
    const fetchFn = stubFetch(() => json({ user: { id: 'u1', email: 'a@b.c', role: 'admin' } }));
    const res = await client.login('a@b.c', 'secret password');
    const [url, init] = fetchFn.mock.calls[0]!;
    expect(url).toBe('/api/auth/login');
    expect(init.method).toBe('POST');
    expect((init.headers as Record<string, string>)['Content-Type']).toBe('application/json');
    expect(JSON.parse(init.body as string)).toEqual({ email: 'a@b.c', password: 'secret password' });
    expect(res.user.email).toBe('a@b.c');
  });

  it('returns undefined for 204 No Content', async () => {
    stubFetch(() => new Response(null, { status: 204 }));
    await expect(client.deleteCall('c1')).resolves.toBeUndefined();
  });

  it("adds a superadmin's tenant scope to every request except the tenant list", async () => {
    const fetchFn = stubFetch(() => json({ items: [] }));
    client.tenantId = 't-42';
    await client.listKb();
    await client.listTenants();
    expect(fetchFn.mock.calls[0]![0]).toBe('/api/kb?tenant_id=t-42');
    expect(fetchFn.mock.calls[1]![0]).toBe('/api/tenants');
  });

  it('never sends a provider key unless one was given', async () => {
    const fetchFn = stubFetch(() => json({ kind: 'llm', provider: 'openai', has_api_key: true }));
    await client.putProvider('llm', { provider: 'openai', model: 'gpt-x' });
    expect(JSON.parse(fetchFn.mock.calls[0]![1].body as string)).not.toHaveProperty('api_key');
  });
});

describe('buildQuery', () => {
  it('encodes values and drops null, undefined and empty strings', () => {
    expect(buildQuery({ q: 'refund & more', a: null, b: undefined, c: '', n: 0 })).toBe('?q=refund+%26+more&n=0');
    expect(buildQuery({})).toBe('');
  });
});
