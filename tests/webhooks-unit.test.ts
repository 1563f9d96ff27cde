// The parts of webhook delivery that need no receiver: the published retry schedule, Retry-After,
// signatures against the reference implementation, the SQL event list against the TypeScript one,
// and SSRF refusals, which must happen before any connection: every send here goes through a stub
// that fails the test if it is asked to connect anywhere but 127.0.0.1, and names resolve through
// a stub resolver (no real DNS, no packet to any address outside 127.0.0.0/8).
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { LEAD_EVENT_KINDS, WEBHOOK_EVENT_TYPES } from '../shared/rules.ts';
import { WEBHOOK_LIMITS } from '../shared/schemas.ts';
import { checkUrl, forbiddenReason, RefusedUrl, type Target } from '../shared/webhook-address.ts';
import { createWebhooks } from '../shared/webhook-dispatcher.ts';
import { JITTER, RETRY_DELAYS_S, retryAfterMs, retryDelayMs } from '../shared/webhook-schedule.ts';
import { send as realSend } from '../shared/webhook-send.ts';
import { generateSecret, sign, webhookHeaders } from '../shared/webhook-signing.ts';
import { adminSql, createUser } from './helpers.ts';
import { startReceiver, stubResolver } from './webhook-receiver.ts';

describe('retry schedule', () => {
  it('12 retries over about three days, never shorter as it goes, jitter within ±20%', () => {
    const total = RETRY_DELAYS_S.reduce((a, b) => a + b, 0);
    expect(RETRY_DELAYS_S).toHaveLength(12);
    expect(total / 86_400).toBeGreaterThan(2.5);
    expect(total / 86_400).toBeLessThan(3.5);
    for (let i = 1; i < RETRY_DELAYS_S.length; i++) {
      expect(RETRY_DELAYS_S[i]).toBeGreaterThanOrEqual(RETRY_DELAYS_S[i - 1]);
    }
    for (const [i, d] of RETRY_DELAYS_S.entries()) {
      expect(retryDelayMs(i + 1, RETRY_DELAYS_S, () => 0)).toBe(Math.round(d * 1000 * (1 - JITTER)));
      expect(retryDelayMs(i + 1, RETRY_DELAYS_S, () => 0.999999)).toBeLessThanOrEqual(d * 1000 * (1 + JITTER));
      expect(retryDelayMs(i + 1, RETRY_DELAYS_S, () => 0.5)).toBe(d * 1000);
    }
    expect(retryDelayMs(13)).toBeNull(); // the 13th attempt was the last
    expect(retryDelayMs(0)).toBeNull();
  });

  it('Retry-After in seconds or as a date, bounded to a day; garbage is ignored', () => {
    const now = Date.parse('2026-12-01T00:00:00Z');
    expect(retryAfterMs('7', now)).toBe(7000);
    expect(retryAfterMs('Tue, 01 Dec 2026 00:01:00 GMT', now)).toBe(60_000);
    expect(retryAfterMs('Mon, 30 Nov 2026 00:00:00 GMT', now)).toBe(0);
    expect(retryAfterMs('99999999', now)).toBe(86_400_000);
    expect(retryAfterMs('soon', now)).toBeNull();
    expect(retryAfterMs(null, now)).toBeNull();
  });
});

describe('signatures', () => {
  it('match the reference implementation, and every signature of a rotation verifies', async () => {
    const [a, b] = [generateSecret(), generateSecret()];
    expect(a).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(atob(a.slice(6))).toHaveLength(32);
    const body = JSON.stringify({ type: 'lead.created', data: { leadId: 1, name: 'Zoë' } });
    const ts = Math.floor(Date.now() / 1000);
    expect(await sign(a, 'msg_1', ts, body)).toBe(new Webhook(a).sign('msg_1', new Date(ts * 1000), body));
    const headers = await webhookHeaders([b, a], 'msg_1', ts, body);
    expect(headers['webhook-signature'].split(' ')).toHaveLength(2);
    expect(new Webhook(a).verify(body, headers)).toEqual(JSON.parse(body));
    expect(new Webhook(b).verify(body, headers)).toEqual(JSON.parse(body));
    expect(() => new Webhook(generateSecret()).verify(body, headers)).toThrow();
    expect(() => new Webhook(a).verify(body + ' ', headers)).toThrow();
  });
});

describe('event types', () => {
  it('the SQL list is the TypeScript list, and every history kind maps onto one of them', async () => {
    const [row] = await adminSql`select private.webhook_event_types() as types,
      (select array_agg(private.webhook_event_type(k) order by o) from unnest(${LEAD_EVENT_KINDS}::text[])
       with ordinality u(k, o)) as mapped`;
    expect(row.types).toEqual([...WEBHOOK_EVENT_TYPES]);
    expect([...row.mapped].sort()).toEqual([...WEBHOOK_EVENT_TYPES].sort());
  });

  it('the per-user endpoint cap is one number in SQL and TypeScript', async () => {
    const [row] = await adminSql`select private.webhook_max_endpoints() as n`;
    expect(row.n).toBe(WEBHOOK_LIMITS.endpointsPerUser);
  });
});

describe('SSRF', () => {
  const names = stubResolver({
    'inside.example': ['10.1.2.3'],
    'metadata.example': ['169.254.169.254'],
    'mixed.example': ['93.184.215.14', '192.168.1.1'],
    'v6.example': ['fd00:ec2::254'],
    'mapped.example': ['::ffff:127.0.0.1'],
    'public.example': ['93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c'],
  });

  it.each([
    ['127.0.0.1', true],
    ['127.8.9.1', true],
    ['10.0.0.1', true],
    ['172.16.0.1', true],
    ['172.31.255.255', true],
    ['192.168.0.1', true],
    ['169.254.169.254', true],
    ['100.64.0.1', true],
    ['0.0.0.0', true],
    ['224.0.0.1', true],
    ['255.255.255.255', true],
    ['::1', true],
    ['::', true],
    ['::ffff:10.0.0.1', true],
    ['::ffff:8.8.8.8', true],
    ['64:ff9b::a00:1', true],
    ['2002:a00:1::', true],
    ['fc00::1', true],
    ['fd00:ec2::254', true],
    ['fe80::1', true],
    ['ff02::1', true],
    ['8.8.8.8', false],
    ['93.184.215.14', false],
    ['172.32.0.1', false],
    ['2606:4700:4700::1111', false],
  ])('%s refused: %s', (address, refused) => {
    expect(forbiddenReason(address) !== null).toBe(refused);
  });

  it('at create and at delivery: no https, private addresses, names resolving to them', async () => {
    const strict = { resolve: names, allowPrivate: false };
    const refusals: [string, RegExp][] = [
      ['http://127.0.0.1:9/hooks', /https/],
      ['https://127.0.0.1/hooks', /not a public address/],
      ['https://10.0.0.7/hooks', /not a public address/],
      ['https://169.254.169.254/latest/meta-data', /not a public address/],
      ['https://[::1]/hooks', /not a public address/],
      ['https://[::ffff:169.254.169.254]/', /not a public address/],
      ['https://2130706433/', /not a public address/], // 127.0.0.1 in decimal
      ['https://inside.example/hooks', /resolves to 10\.1\.2\.3/],
      ['https://metadata.example/', /resolves to 169\.254\.169\.254/],
      ['https://mixed.example/', /192\.168\.1\.1/],
      ['https://v6.example/', /fd00:ec2::254/],
      ['https://mapped.example/', /::ffff:127\.0\.0\.1/],
      ['https://nowhere.example/', /does not resolve/],
      ['https://user:pw@public.example/', /user name/],
    ];
    for (const [url, why] of refusals) {
      await expect(checkUrl(url, strict), url).rejects.toThrow(why);
    }
    const ok = await checkUrl('https://public.example/hooks?x=1', strict);
    expect(ok).toMatchObject({ address: '93.184.215.14', port: 443, tls: true, host: 'public.example' });
    // The operator's flag: private addresses and http, for local development and tests.
    expect((await checkUrl('http://127.0.0.1:8080/h', { resolve: names, allowPrivate: true })).address).toBe(
      '127.0.0.1',
    );
  });

  it('a delivery to a name that now resolves to a private address is refused before any connection', async () => {
    const user = await createUser();
    let rebound = ['93.184.215.14'];
    const sent: Target[] = [];
    const w = createWebhooks({
      sql: adminSql,
      resolve: async () => rebound,
      allowPrivate: false,
      send: (target) => {
        sent.push(target);
        throw new Error(`the test must not connect anywhere (asked for ${target.address})`);
      },
      log: () => {},
    });
    // Checked at create, when the name was public; then it rebinds to the metadata address.
    await w.check('https://rebind.example/hooks');
    const [e] = await adminSql`insert into public.webhook_endpoints (user_id, url, events, secret)
      values (${user.id}, 'https://rebind.example/hooks', '{lead.created}', ${generateSecret()}) returning id`;
    for (const address of ['169.254.169.254', '10.0.0.1', '127.0.0.1', '::ffff:169.254.169.254']) {
      rebound = [address];
      const r = await w.ping(e.id);
      expect(r, address).toMatchObject({ delivered: false, status: null });
      expect(r.error).toMatch(/^refused: rebind\.example resolves to/);
    }
    expect(sent).toEqual([]);
    const log = await adminSql`select status, last_error from private.webhook_deliveries where endpoint_id = ${e.id}`;
    expect(log.map((l) => l.status)).toEqual(['failed', 'failed', 'failed', 'failed']);
    await adminSql`delete from public.webhook_endpoints where id = ${e.id}`;
  });

  it('a redirect is an answer, never followed', async () => {
    const user = await createUser();
    const rec = await startReceiver();
    rec.respond = () => ({ status: 302, headers: { location: 'http://169.254.169.254/latest/meta-data/' } });
    const sent: string[] = [];
    const w = createWebhooks({
      sql: adminSql,
      resolve: stubResolver(),
      allowPrivate: true, // the receiver is on 127.0.0.1
      send: (target, ...rest) => {
        sent.push(target.address);
        if (target.address !== '127.0.0.1') throw new Error(`the test must not connect to ${target.address}`);
        return realSend(target, ...rest);
      },
      log: () => {},
    });
    const [e] = await adminSql`insert into public.webhook_endpoints (user_id, url, events, secret)
      values (${user.id}, ${rec.url}, '{lead.created}', ${generateSecret()}) returning id`;
    const r = await w.ping(e.id);
    expect(r).toMatchObject({ delivered: false, status: 302 });
    expect(sent).toEqual(['127.0.0.1']);
    expect(rec.received).toHaveLength(1);
    await adminSql`delete from public.webhook_endpoints where id = ${e.id}`;
    await rec.close();
  });

  it('reads at most 64 KiB of an answer and keeps a short excerpt', async () => {
    const user = await createUser();
    const rec = await startReceiver();
    rec.respond = () => ({ status: 200, body: 'x'.repeat(1024 * 1024) });
    const w = createWebhooks({ sql: adminSql, resolve: stubResolver(), allowPrivate: true, log: () => {} });
    const [e] = await adminSql`insert into public.webhook_endpoints (user_id, url, events, secret)
      values (${user.id}, ${rec.url}, '{lead.created}', ${generateSecret()}) returning id`;
    const target = await checkUrl(rec.url, { resolve: stubResolver(), allowPrivate: true });
    const answer = await realSend(target, {}, '{}', { timeoutMs: 5000, maxBodyBytes: 64 * 1024 });
    expect(answer.body).toHaveLength(64 * 1024);
    const r = await w.ping(e.id);
    expect(r.delivered).toBe(true);
    expect(r.response).toHaveLength(500);
    await adminSql`delete from public.webhook_endpoints where id = ${e.id}`;
    await rec.close();
  });

  it('keeps the connection to a checked address for the next delivery, and reconnects when the receiver closed it', async () => {
    const rec = await startReceiver();
    const target = await checkUrl(rec.url, { resolve: stubResolver(), allowPrivate: true });
    for (let i = 0; i < 5; i++) expect((await realSend(target, {}, '{}')).status).toBe(204);
    expect(rec.received).toHaveLength(5);
    expect(rec.connections).toBe(1);
    rec.closeIdle();
    await new Promise((r) => setTimeout(r, 100));
    expect((await realSend(target, {}, '{}')).status).toBe(204);
    expect(rec.connections).toBe(2);
    // An answer that says close is not kept: each next send opens a new connection.
    rec.respond = () => ({ status: 200, headers: { connection: 'close' }, body: 'bye' });
    await realSend(target, {}, '{}'); // on the kept connection 2, which then closes
    await realSend(target, {}, '{}');
    expect(rec.connections).toBe(3);
    await realSend(target, {}, '{}');
    expect(rec.connections).toBe(4);
    await rec.close();
  });

  it('a receiver that never answers times out', async () => {
    const rec = await startReceiver();
    rec.respond = () => ({ status: 200, delayMs: 3000 });
    const target = await checkUrl(rec.url, { resolve: stubResolver(), allowPrivate: true });
    const t0 = Date.now();
    await expect(realSend(target, {}, '{}', { timeoutMs: 500, maxBodyBytes: 1024 })).rejects.toThrow(
      /no answer within/,
    );
    expect(Date.now() - t0).toBeLessThan(2000);
    await rec.close();
  });

  it('RefusedUrl is the error of a refusal', () => {
    expect(new RefusedUrl('x')).toBeInstanceOf(Error);
  });
});
