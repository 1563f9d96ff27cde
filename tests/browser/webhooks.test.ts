// The dashboard's Webhooks page in chromium: create an endpoint (the secret shown once), send a
// test ping to a receiver on 127.0.0.1 (verified with standardwebhooks), see the delivery log,
// replay, disable and enable, rotate the secret, delete. axe-clean, with a screenshot.
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDashboard, serveDashboard } from '../../scripts/dashboard.mjs';
import { root, startApi } from '../../scripts/deno.mjs';
import { LOCAL_JWT_SECRET } from '../../scripts/tokens.mjs';
import { adminSql, createAgent, createLeads, createUser, databaseUrl, type TestUser } from '../helpers.ts';
import { type Receiver, startReceiver } from '../webhook-receiver.ts';
import { expectAccessible, launchBrowser } from './harness.ts';

const shotDir = process.env.UPDATE_SCREENSHOTS ? join(root, 'docs', 'screenshots') : join(tmpdir(), 'dash-shots');
mkdirSync(shotDir, { recursive: true });

let api: { url: string; stop: () => Promise<void> };
let web: { url: string; close: () => Promise<void> };
let browser: { context: BrowserContext; close: () => Promise<void> };
let rec: Receiver;
let user: TestUser, admin: TestUser;

beforeAll(async () => {
  const [started] = await Promise.all([
    // Receivers on this machine: the local-development switch, as `npm start` sets it.
    startApi({
      port: 20000 + Math.floor(Math.random() * 12000),
      env: { DATABASE_URL: databaseUrl, JWT_SECRET: LOCAL_JWT_SECRET, WEBHOOKS_ALLOW_PRIVATE: 'true' },
      quiet: true,
    }),
    buildDashboard({ quiet: true }),
  ]);
  api = started;
  [user, admin] = await Promise.all([createUser(), createUser({ admin: true })]);
  rec = await startReceiver();
  web = await serveDashboard({ port: 0, apiUrl: api.url, tokens: { user: user.token, admin: admin.token } });
  browser = await launchBrowser();
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await web?.close();
  await api?.stop();
  await rec?.close();
  await adminSql`delete from public.webhook_endpoints where user_id = ${user.id}`;
  await adminSql`delete from public.agents where user_id = ${user.id}`;
});

const poll = <T>(fn: () => T | Promise<T>) => expect.poll(fn, { timeout: 20_000, interval: 100 });

describe('the Webhooks page', { timeout: 120_000 }, () => {
  it('creates an endpoint, shows its secret once, tests, replays, disables, rotates and deletes it', async () => {
    const page: Page = await browser.context.newPage();
    await page.goto(`${web.url}/#/webhooks`);
    await page.getByRole('button', { name: 'Sign in as demo user' }).click();
    await page.getByRole('heading', { name: 'Webhooks', level: 1 }).waitFor();
    await page.getByText('No endpoints yet.').waitFor();

    const form = page.getByRole('form', { name: 'New endpoint' });
    await form.getByLabel('Endpoint URL').fill(rec.url);
    await form.getByLabel('Description').fill('Our CRM');
    await form.getByRole('checkbox', { name: 'working_lead.added' }).check();
    await form.getByRole('button', { name: 'Create endpoint' }).click();
    const secret = (await page.getByLabel('Signing secret').textContent())!;
    expect(secret).toMatch(/^whsec_/);
    const [stored] = await adminSql`select id, events, secret from public.webhook_endpoints where user_id = ${user.id}`;
    expect(stored.secret).toBe(secret);
    expect(stored.events).toEqual(['lead.created', 'lead.updated', 'lead.deleted', 'working_lead.added']);
    await page.getByRole('button', { name: 'I have stored it' }).click();
    expect(await page.getByLabel('Signing secret').count()).toBe(0);

    const row = page.getByRole('table', { name: 'Webhook endpoints' }).getByRole('row').filter({ hasText: rec.url });
    await row.getByRole('button', { name: 'Send test' }).click();
    await page.getByText(/Test ping to .* HTTP 204 in \d+ ms/).waitFor();
    expect(rec.received).toHaveLength(1);
    expect(new Webhook(secret).verify(rec.received[0].body, rec.received[0].headers)).toMatchObject({ type: 'ping' });

    // A lead change lands in the log as a pending delivery (no dispatcher runs in this test).
    const agent = await createAgent(user);
    const [lead] = await createLeads(agent, user, [{ name: 'Hooked lead' }]);
    const log = page.getByRole('table', { name: 'Deliveries' });
    await log.getByRole('row').filter({ hasText: `lead ${lead}` }).waitFor();
    const ping = log.getByRole('row').filter({ hasText: 'ping' });
    await poll(async () => (await ping.getByRole('cell').allTextContents()).slice(2, 6)).toEqual([
      'delivered',
      '1',
      '204',
      expect.stringMatching(/^\d+ ms$/),
    ]);
    const created = log.getByRole('row').filter({ hasText: `lead ${lead}` });
    expect((await created.getByRole('cell').allTextContents())[2]).toBe('pending');
    await created.getByRole('button', { name: /^Replay msg_\d+$/ }).click();
    await poll(async () =>
      (await adminSql`select attempts, status from private.webhook_deliveries
                      where endpoint_id = ${stored.id} and lead_id = ${lead}`)[0]
    ).toMatchObject({ attempts: 0, status: 'pending' });
    await expectAccessible(page, 'webhooks');
    await page.screenshot({ path: join(shotDir, 'webhooks.png'), fullPage: true });

    await row.getByRole('button', { name: 'Disable' }).click();
    await row.getByText('disabled by its owner').waitFor();
    await row.getByRole('button', { name: 'Enable' }).click();
    await row.getByRole('button', { name: 'Disable' }).waitFor();
    expect((await adminSql`select enabled from public.webhook_endpoints where id = ${stored.id}`)[0].enabled).toBe(
      true,
    );

    await row.getByRole('button', { name: 'Rotate secret' }).click();
    const rotated = (await page.getByLabel('Signing secret').textContent())!;
    expect(rotated).toMatch(/^whsec_/);
    expect(rotated).not.toBe(secret);

    await row.getByRole('button', { name: 'Delete' }).click();
    await page.getByText('No endpoints yet.').waitFor();
    expect(await adminSql`select 1 from public.webhook_endpoints where id = ${stored.id}`).toHaveLength(0);
    await page.close();
  });
});
