// The typed client's retries against a local HTTP server that fails on purpose: which failures
// are retried, how often, with which key, and with what backoff.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createClient } from '@supabase/supabase-js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ApiError, createApiClient } from '../shared/client.ts';

interface Seen {
  key: string | undefined;
  body: { resource: string; action: string };
}

let server: Server;
let url: string;
let seen: Seen[] = [];
/** What the server does with the n-th request (0-based). */
let script: (n: number, res: ServerResponse, req: IncomingMessage) => void = () => {};

const envelope = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};
const unavailable = (res: ServerResponse) =>
  envelope(res, 503, { success: false, error: { code: 'SERVICE_UNAVAILABLE', message: 'try again' } });
const ok = (res: ServerResponse) => envelope(res, 201, { success: true, data: { lead: { id: 1 } } });

beforeAll(async () => {
  server = createServer((req, res) => {
    let text = '';
    req.on('data', (c) => (text += c));
    req.on('end', () => {
      const key = req.headers['idempotency-key'];
      seen.push({ key: typeof key === 'string' ? key : undefined, body: JSON.parse(text) });
      script(seen.length - 1, res, req);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

let delays: number[] = [];
beforeEach(() => {
  seen = [];
  delays = [];
});

const client = (random = () => 0.5) =>
  createApiClient(
    createClient(url, 'anon-key', { auth: { persistSession: false, autoRefreshToken: false } }),
    {
      retry: {
        sleep: (ms) => {
          delays.push(ms);
          return Promise.resolve();
        },
        random,
      },
    },
  );

describe('typed client retries', () => {
  it('retries a write twice after 503s, sending the same fresh key all three times', async () => {
    script = (n, res) => (n < 2 ? unavailable(res) : ok(res));
    const result = await client().leads.create({ agent_id: 'a' });
    expect(result).toEqual({ lead: { id: 1 } });
    expect(seen).toHaveLength(3);
    const keys = seen.map((s) => s.key);
    expect(keys[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(new Set(keys).size).toBe(1);
    // Exponential backoff: 200 then 400 ms before jitter; random() = 0.5 scales each by 0.75.
    expect(delays).toEqual([150, 300]);
  });

  it('every logical write gets its own key', async () => {
    script = (_n, res) => ok(res);
    const c = client();
    await c.leads.create({ agent_id: 'a' });
    await c.leads.create({ agent_id: 'a' });
    expect(seen[0].key).not.toBe(seen[1].key);
  });

  it('uses the caller’s own key when given', async () => {
    script = (_n, res) => ok(res);
    await client().workingLeads.remove({ leadId: 1 }, { idempotencyKey: 'my-key-1' });
    expect(seen[0].key).toBe('my-key-1');
  });

  it('gives up after three tries and rejects with the last 503', async () => {
    script = (_n, res) => unavailable(res);
    const err = await client().leads.update(1, { name: 'x' }).catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.code).toBe('SERVICE_UNAVAILABLE');
    expect(seen).toHaveLength(3);
    expect(delays).toHaveLength(2);
  });

  it('jitter varies each delay within half to the full exponential step', async () => {
    script = (n, res) => (n < 2 ? unavailable(res) : ok(res));
    await client(() => 0).leads.create({ agent_id: 'a' });
    seen = [];
    await client(() => 0.999999).leads.create({ agent_id: 'a' });
    expect(delays).toEqual([100, 200, 200, 400]);
  });

  it('retries a network failure (FETCH_ERROR) with the same key', async () => {
    script = (n, res) => (n === 0 ? res.socket?.destroy() : ok(res));
    await client().leads.delete(5);
    expect(seen).toHaveLength(2);
    expect(seen[0].key).toBe(seen[1].key);
  });

  it('never retries a 4xx', async () => {
    for (
      const [status, code] of [[400, 'VALIDATION_ERROR'], [409, 'QUOTA_EXCEEDED'], [422, 'IDEMPOTENCY_KEY_REUSED']]
    ) {
      seen = [];
      script = (_n, res) => envelope(res, status as number, { success: false, error: { code, message: 'no' } });
      const err = await client().leads.create({ agent_id: 'a' }).catch((e) => e);
      expect(err.code).toBe(code);
      expect(seen).toHaveLength(1);
    }
    expect(delays).toEqual([]);
  });

  it('never retries a 500 (a bug, not a transient failure)', async () => {
    script = (_n, res) => envelope(res, 500, { success: false, error: { code: 'INTERNAL_ERROR', message: 'bug' } });
    await client().leads.create({ agent_id: 'a' }).catch(() => {});
    expect(seen).toHaveLength(1);
  });

  it('retries reads too, but sends no key with them', async () => {
    script = (n, res) => (n === 0 ? unavailable(res) : envelope(res, 200, { success: true, data: { leads: [] } }));
    await client().leads.list();
    expect(seen).toHaveLength(2);
    expect(seen.map((s) => s.key)).toEqual([undefined, undefined]);
  });
});

describe('429 RATE_LIMITED', () => {
  it('waits the Retry-After the answer names, tells onRetry, keeps the key, then succeeds', async () => {
    seen = [];
    script = (n, res) =>
      n === 0
        ? envelope(res, 429, {
          success: false,
          error: { code: 'RATE_LIMITED', message: 'slow down', details: { retryAfter: 7, budget: 'writes', limit: 1 } },
        })
        : ok(res);
    const waits: number[] = [];
    const told: number[] = [];
    const api = createApiClient(createClient(url, 'key', { accessToken: async () => 'token' }), {
      retry: { sleep: async (ms) => void waits.push(ms), onRetry: ({ delayMs }) => told.push(delayMs) },
    });
    await api.leads.create({ agent_id: 'a', name: 'x' });
    expect(waits).toEqual([7000]);
    expect(told).toEqual([7000]);
    expect(seen).toHaveLength(2);
    expect(seen[1].key).toBe(seen[0].key);
  });

  it('throws a 429 that asks to wait longer than maxRetryAfterMs', async () => {
    seen = [];
    script = (_n, res) =>
      envelope(res, 429, {
        success: false,
        error: { code: 'RATE_LIMITED', message: 'slow', details: { retryAfter: 600 } },
      });
    const api = createApiClient(createClient(url, 'key', { accessToken: async () => 'token' }), {
      retry: { sleep: async () => {} },
    });
    const err = await api.leads.list().catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect([err.status, err.code]).toEqual([429, 'RATE_LIMITED']);
    expect(seen).toHaveLength(1);
  });
});
