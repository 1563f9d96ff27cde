// The admin dashboard end to end: the built app in Debian's chromium, the api under real Deno,
// the test database behind it. Each test drives the UI and checks the api or the database.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDashboard, serveDashboard, viteBuild } from '../../scripts/dashboard.mjs';
import { root } from '../../scripts/deno.mjs';
import { adminSql, call, createLeads, manyLeads, startTestApi, type TestUser, world } from '../helpers.ts';
import { expectAccessible, launchBrowser } from './harness.ts';

// Screenshots land in docs/screenshots with UPDATE_SCREENSHOTS=1, else in a temp dir.
const shotDir = process.env.UPDATE_SCREENSHOTS ? join(root, 'docs', 'screenshots') : join(tmpdir(), 'dash-shots');
mkdirSync(shotDir, { recursive: true });

let api: { url: string; stop: () => Promise<void> };
let web: { url: string; close: () => Promise<void> };
let browser: { context: BrowserContext; close: () => Promise<void> };
const statuses = ['new', 'contacted', 'qualified', 'converted', null];
const { dana, omar, ada } = await world({
  dana: {
    agents: [
      {
        name: 'Dana Main',
        max: 3,
        leads: [
          ...manyLeads(28, (i) => ({ status: statuses[i % 5], email: `lead${i}@dana.test` })),
          { name: 'Zebulon Quest', email: 'zq@dana.test', status: 'qualified' },
        ],
      },
      { name: 'Dana Batch', max: 2 },
    ],
  },
  omar: { agents: [{ name: 'Omar Solo', leads: [{ name: 'Omar Private Lead', status: 'new' }] }] },
  ada: { admin: true },
});
const [mainAgent, batchAgent] = dana.agents;

beforeAll(async () => {
  // Built once per run, and only when the sources changed since the last build.
  const [started] = await Promise.all([startTestApi(), buildDashboard({ quiet: true })]);
  api = started;
  web = await serveDashboard({ port: 0, apiUrl: api.url, tokens: { user: dana.token, admin: ada.token } });
  browser = await launchBrowser();
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await web?.close();
  await api?.stop();
  await adminSql`delete from public.agents where user_id in ${adminSql([dana.id, omar.id, ada.id])}`;
});

async function signedIn(as: 'user' | 'admin', view = 'overview'): Promise<Page> {
  const page = await browser.context.newPage();
  await page.goto(`${web.url}/#/${view}`);
  await page.getByRole('button', { name: as === 'user' ? 'Sign in as demo user' : 'Sign in as demo admin' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  return page;
}

// expect.poll gives up after 1 s by default: too short for a browser on a loaded 2-core machine.
const poll = <T>(fn: () => T | Promise<T>) => expect.poll(fn, { timeout: 20_000, interval: 100 });

const shot = (page: Page, name: string) => page.screenshot({ path: join(shotDir, `${name}.png`) });

describe('dashboard in chromium', { timeout: 90_000 }, () => {
  it("signs in as the demo user and shows a Total equal to the api's own stats", async () => {
    const page = await browser.context.newPage();
    await page.goto(web.url);
    await expectAccessible(page, 'sign-in');
    await shot(page, 'sign-in');
    await page.getByRole('button', { name: 'Sign in as demo user' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    const stats = await call(dana.token, { resource: 'leads', action: 'stats' });
    expect(stats.body.data.stats.total).toBe(29);
    await poll(() => page.getByTestId('card-total').textContent()).toBe('29');
    for (const k of ['new', 'contacted', 'qualified', 'converted'] as const) {
      expect(await page.getByTestId(`card-${k}`).textContent()).toBe(String(stats.body.data.stats.by_status[k]));
    }
    await poll(() => page.locator('.recharts-bar-rectangle').count()).toBeGreaterThan(0);
    // The agent filter narrows the cards to that agent's leads.
    await page.getByLabel('Agent', { exact: true }).selectOption({ label: 'Dana Batch' });
    await poll(() => page.getByTestId('card-total').textContent()).toBe('0');
    await page.getByLabel('Agent', { exact: true }).selectOption({ label: 'Dana Main' });
    await poll(() => page.getByTestId('card-total').textContent()).toBe('29');
    await expectAccessible(page, 'overview');
    await shot(page, 'overview');
    await page.close();
  });

  it('searches, pages and filters leads on the server', async () => {
    const page = await signedIn('user', 'leads');
    const rows = page.getByRole('table', { name: 'Leads' }).locator('tbody tr');
    const names = () => rows.locator('td:nth-child(2)').allTextContents();
    await poll(() => rows.count()).toBe(25);
    await poll(() => page.getByText('Page 1 · 29 leads').count()).toBe(1);
    const first = await names();
    // Three leads arrive while page 1 is on screen: page 2 by offset would repeat three of page 1's
    // rows and never show the three oldest; page 2 by nextCursor starts right after page 1's last row.
    const late = await createLeads(mainAgent, dana, manyLeads(3, (i) => ({ name: `Arrived Late ${i}` })));
    try {
      await page.getByRole('button', { name: 'Next page' }).click();
      await poll(() => page.getByText(/^Page 2 · /).count()).toBe(1);
      await poll(() => rows.count()).toBe(4);
      const second = await names();
      const before = (await adminSql`select name from public.leads where user_id = ${dana.id}`)
        .map((r) => r.name).filter((n) => !n.startsWith('Arrived Late'));
      expect(second.filter((n) => first.includes(n))).toEqual([]); // no repeat
      expect([...first, ...second].sort()).toEqual(before.sort()); // no skip
      expect(await page.getByRole('button', { name: 'Next page' }).isDisabled()).toBe(true); // nextCursor null
      await page.getByRole('button', { name: 'Previous page' }).click();
      await poll(() => page.getByText(/^Page 1 · /).count()).toBe(1);
      // Back to the first page (no cursor): the newest 25, from the cache or read again with the late
      // arrivals on top, depending on how long the page was shown.
      await poll(() => rows.count()).toBe(25);
      const known = new Set([...first, 'Arrived Late 0', 'Arrived Late 1', 'Arrived Late 2']);
      expect((await names()).filter((n) => !known.has(n))).toEqual([]);
      expect(await page.getByRole('button', { name: 'Previous page' }).isDisabled()).toBe(true);
    } finally {
      await adminSql`delete from public.leads where id in ${adminSql(late)}`;
    }
    await page.getByLabel('Search', { exact: true }).fill('zebulon');
    await poll(() => rows.count()).toBe(1);
    expect(await rows.first().textContent()).toContain('Zebulon Quest');
    await page.getByLabel('Search', { exact: true }).fill('no such lead anywhere');
    await page.getByText('No leads match.').waitFor();
    await page.getByLabel('Search', { exact: true }).fill('');
    await page.getByLabel('Status', { exact: true }).selectOption('converted');
    await poll(() => rows.count()).toBe(5);
    await page.getByLabel('Status', { exact: true }).selectOption('');
    await poll(() => rows.count()).toBe(25);
    await expectAccessible(page, 'leads');
    await shot(page, 'leads');
    await page.close();
  });

  it('creates, edits and deletes a lead in the side panel', async () => {
    const page = await signedIn('user', 'leads');
    await page.getByRole('button', { name: 'New lead' }).click();
    const panel = page.getByRole('complementary');
    await panel.getByLabel('Name').fill('Created In Browser');
    await panel.getByLabel('Email').fill('cib@dana.test');
    await panel.getByLabel('Lead agent').selectOption({ label: 'Dana Main' });
    await panel.getByRole('button', { name: 'Create lead' }).click();
    await panel.getByRole('heading', { name: /^Lead \d+$/ }).waitFor();
    const id = Number((await panel.getByRole('heading', { name: /^Lead \d+$/ }).textContent())!.slice(5));
    const [created] = await adminSql`select name, email, agent_id, user_id, status from public.leads where id = ${id}`;
    expect(created).toEqual({
      name: 'Created In Browser',
      email: 'cib@dana.test',
      agent_id: mainAgent,
      user_id: dana.id,
      status: 'new',
    });

    await panel.getByLabel('Name').fill('Edited In Browser');
    await panel.getByLabel('Lead status').selectOption('contacted');
    await panel.getByRole('button', { name: 'Save changes' }).click();
    await poll(async () => (await adminSql`select name, status from public.leads where id = ${id}`)[0]).toEqual({
      name: 'Edited In Browser',
      status: 'contacted',
    });
    await page.getByRole('table', { name: 'Leads' }).getByRole('button', { name: 'Edited In Browser' }).waitFor();
    await expectAccessible(page, 'lead panel');
    await shot(page, 'lead-panel');

    await panel.getByRole('button', { name: 'Delete lead' }).click();
    await panel.getByRole('button', { name: 'Confirm delete' }).click();
    await poll(async () => (await adminSql`select count(*)::int as n from public.leads where id = ${id}`)[0].n)
      .toBe(0);
    await poll(() => page.getByRole('complementary').count()).toBe(0);
    await page.close();
  });

  it('shows an api error with its code, message and request id', async () => {
    const [ghost] = await createLeads(mainAgent, dana, [{ name: 'Soon Gone' }]);
    const page = await signedIn('user', 'leads');
    await page.getByLabel('Search', { exact: true }).fill('Soon Gone');
    const link = page.getByRole('table', { name: 'Leads' }).getByRole('button', { name: 'Soon Gone' });
    await link.waitFor();
    await adminSql`delete from public.leads where id = ${ghost}`;
    await link.click();
    const alert = page.getByRole('complementary').getByRole('alert');
    await alert.waitFor();
    expect(await alert.locator('.error-code').textContent()).toBe('NOT_FOUND');
    expect(await alert.locator('.error-message').textContent()).toBe('Lead not found');
    expect(await alert.locator('.error-request code').textContent()).toMatch(/^[0-9a-f-]{36}$/);
    await page.close();
  });

  it('adds by search, mutes, unmutes and removes a working lead while the quota gauge moves', async () => {
    const page = await signedIn('user', 'working');
    await page.getByLabel('Agent', { exact: true }).selectOption({ label: 'Dana Main' });
    const gauge = page.getByTestId('quota-text');
    await poll(() => gauge.textContent()).toBe('0 / 3');
    await page.getByLabel('Find a lead to add').fill('zebulon');
    await page.getByRole('button', { name: 'Add Zebulon Quest' }).click();
    await poll(() => gauge.textContent()).toBe('1 / 3');
    expect(Number(await page.locator('#quota-meter').getAttribute('value'))).toBe(1);
    const table = page.getByRole('table', { name: 'Working leads' });
    await table.getByRole('cell', { name: 'Zebulon Quest', exact: true }).waitFor();

    await page.getByRole('button', { name: 'Mute Zebulon Quest', exact: true }).click();
    await page.getByRole('button', { name: 'Unmute Zebulon Quest', exact: true }).waitFor();
    const muted = async () =>
      (await adminSql`select muted from public.working_leads where agent_id = ${mainAgent}`).map((r) => r.muted);
    expect(await muted()).toEqual([true]);
    await expectAccessible(page, 'working set');
    await shot(page, 'working-set');
    await page.getByRole('button', { name: 'Unmute Zebulon Quest', exact: true }).click();
    await page.getByRole('button', { name: 'Mute Zebulon Quest', exact: true }).waitFor();
    expect(await muted()).toEqual([false]);

    await page.getByRole('button', { name: 'Remove Zebulon Quest' }).click();
    await poll(() => gauge.textContent()).toBe('0 / 3');
    await page.getByText('This agent is working no leads.').waitFor();
    expect(await muted()).toEqual([]);
    await page.close();
  });

  it('batch-adds the selected rows and shows the one that failed', async () => {
    const page = await signedIn('user', 'leads');
    const table = page.getByRole('table', { name: 'Leads' });
    await table.locator('tbody tr').first().waitFor();
    const boxes = table.locator('tbody input[type=checkbox]');
    for (let i = 0; i < 3; i++) await boxes.nth(i).check();
    await page.getByText('3 selected').waitFor();
    await page.getByLabel('Working set of').selectOption({ label: 'Dana Batch' });
    await page.getByRole('button', { name: 'Add selected to working set' }).click();
    const result = page.locator('.batch-result');
    await result.waitFor();
    // Dana Batch's quota is 2: two get in, the third is refused on its own.
    expect(await result.textContent()).toContain('Added 2, already working 0, failed 1');
    const failed = page.getByRole('list', { name: 'Failed leads' }).getByRole('listitem');
    expect(await failed.count()).toBe(1);
    expect(await failed.first().textContent()).toContain('QUOTA_EXCEEDED');
    const [{ n }] = await adminSql`select count(*)::int as n from public.working_leads where agent_id = ${batchAgent}`;
    expect(n).toBe(2);
    await page.close();
  });

  it("lets an admin switch to admin mode and see another user's data", async () => {
    const page = await signedIn('admin', 'leads');
    const rows = page.getByRole('table', { name: 'Leads' }).locator('tbody tr');
    // Without admin mode an admin is an ordinary user who owns nothing.
    await page.getByText('No leads match.').waitFor();
    await page.getByRole('switch', { name: 'Admin mode' }).check();
    await pickUser(page, omar);
    await poll(() => rows.count()).toBe(1);
    expect(await rows.first().textContent()).toContain('Omar Private Lead');
    await pickUser(page, dana);
    await poll(() => page.getByText('Page 1 · 29 leads').count()).toBe(1);
    await expectAccessible(page, 'leads in admin mode');
    await shot(page, 'admin-mode');
    await page.getByRole('switch', { name: 'Admin mode' }).uncheck();
    await page.getByText('No leads match.').waitFor();
    await page.close();
  });

  it('shows a version conflict from a second tab, and reloads the current lead', async () => {
    const [id] = await createLeads(mainAgent, dana, [{ name: 'Twice Open' }]);
    const open = async () => {
      const tab = await signedIn('user', 'leads');
      await tab.getByLabel('Search', { exact: true }).fill('Twice Open');
      await tab.getByRole('table', { name: 'Leads' }).getByRole('button', { name: 'Twice Open' }).click();
      await poll(() => tab.getByRole('complementary').getByLabel('Name').inputValue()).toBe('Twice Open');
      return tab;
    };
    const [one, two] = [await open(), await open()];
    const nameOf = async () => (await adminSql`select name, version from public.leads where id = ${id}`)[0];

    await two.getByRole('complementary').getByLabel('Name').fill('Changed In Tab Two');
    await two.getByRole('complementary').getByRole('button', { name: 'Save changes' }).click();
    await poll(async () => (await nameOf())?.name).toBe('Changed In Tab Two');

    const panel = one.getByRole('complementary');
    await panel.getByLabel('Name').fill('Changed In Tab One');
    await panel.getByRole('button', { name: 'Save changes' }).click();
    const alert = panel.getByRole('alert');
    await alert.getByText('Someone else changed this lead').waitFor();
    expect(await alert.textContent()).toContain('Changed In Tab Two');
    expect(await alert.locator('.error-request code').textContent()).toMatch(/^[0-9a-f-]{36}$/);
    expect((await nameOf()).name).toBe('Changed In Tab Two'); // the stale save changed nothing
    await expectAccessible(one, 'version conflict');
    await alert.scrollIntoViewIfNeeded(); // the screenshot shows the conflict, not only the form
    await shot(one, 'version-conflict');

    await panel.getByRole('button', { name: 'Reload the current lead' }).click();
    expect(await panel.getByLabel('Name').inputValue()).toBe('Changed In Tab Two');
    await panel.getByLabel('Name').fill('Tab One After Reload');
    await panel.getByRole('button', { name: 'Save changes' }).click();
    await poll(async () => (await nameOf())?.name).toBe('Tab One After Reload');
    // The history timeline: newest first, both saves and the creation, the names as they changed.
    const kinds = panel.getByRole('region', { name: 'History' }).locator('.timeline > li > strong');
    await poll(() => kinds.allTextContents()).toEqual(['updated', 'updated', 'created']);
    expect(await panel.getByRole('region', { name: 'History' }).textContent()).toContain(
      'name: Changed In Tab Two → Tab One After Reload',
    );
    await one.close();
    await two.close();
  });

  it('shows the admin audit log with the entry an admin-mode action just left', async () => {
    const [{ id }] = await adminSql`select id from public.leads where user_id = ${omar.id}`;
    const omarLead = String(id);
    const page = await signedIn('admin', 'leads');
    await page.getByRole('switch', { name: 'Admin mode' }).check();
    await pickUser(page, omar);
    await page.getByRole('table', { name: 'Leads' }).getByRole('button', { name: 'Omar Private Lead' }).click();
    await poll(() => page.getByRole('complementary').getByLabel('Name').inputValue()).toBe('Omar Private Lead');
    // The entry is written after the answer, in a transaction of its own: wait for it in the table.
    const logged = () =>
      adminSql`select action, outcome, request_id from private.admin_audit
               where actor_id = ${ada.id} and resource = 'leads' and action = 'get' and target_id = ${omarLead}
               order by id desc`;
    await poll(async () => (await logged()).length).toBeGreaterThan(0);
    const [entry] = await logged();
    expect(entry.outcome).toBe('OK');
    expect(entry.request_id).toMatch(/^[0-9a-f-]{36}$/);

    await page.getByRole('navigation', { name: 'Views' }).getByRole('link', { name: 'Audit log' }).click();
    const table = page.getByRole('table', { name: 'Audit entries' });
    const row = table.getByRole('row').filter({ hasText: entry.request_id });
    await row.waitFor();
    const cells = await row.getByRole('cell').allTextContents();
    // When, actor, action, target, user, outcome, request id.
    expect(cells.slice(1)).toEqual([ada.id, 'leads/get', omarLead, '—', 'OK', entry.request_id]);
    await expectAccessible(page, 'audit log');
    await shot(page, 'audit-log');

    // Without admin mode the log is not shown, and a user has no link to it at all.
    await page.getByRole('switch', { name: 'Admin mode' }).uncheck();
    await page.getByText('Turn on Admin mode to read the audit log.').waitFor();
    expect(await table.count()).toBe(0);
    await page.close();
    const user = await signedIn('user');
    expect(await user.getByRole('navigation', { name: 'Views' }).getByRole('link', { name: 'Audit log' }).count())
      .toBe(0);
    await user.close();
  });
});

describe('agents in chromium', { timeout: 90_000 }, () => {
  it('creates and renames an agent; only an admin in admin mode sets a quota', async () => {
    const page = await signedIn('user', 'agents');
    const table = page.getByRole('table', { name: 'Agents' });
    await table.getByRole('cell', { name: 'Dana Main', exact: true }).waitFor();
    // A user sees quotas but gets no control to change them.
    expect(await page.getByLabel(/^Quota of/).count()).toBe(0);
    await page.getByLabel('Agent name').fill('Dana Third');
    await page.getByLabel('Agent email').fill('third@dana.test');
    await page.getByRole('button', { name: 'Create agent' }).click();
    await table.getByRole('cell', { name: 'Dana Third', exact: true }).waitFor();
    const [made] = await adminSql`select id, user_id, email, max_working_leads from public.agents
                                  where user_id = ${dana.id} and name = 'Dana Third'`;
    expect(made).toMatchObject({ user_id: dana.id, email: 'third@dana.test', max_working_leads: 50 });

    await page.getByRole('button', { name: 'Rename Dana Third' }).click();
    await page.getByLabel('New name for Dana Third').fill('Dana Renamed');
    await page.getByRole('button', { name: 'Save name' }).click();
    await table.getByRole('cell', { name: 'Dana Renamed', exact: true }).waitFor();
    expect((await adminSql`select name from public.agents where id = ${made.id}`)[0].name).toBe('Dana Renamed');
    await expectAccessible(page, 'agents');
    await shot(page, 'agents');
    await page.close();

    const admin = await signedIn('admin', 'agents');
    await admin.getByRole('switch', { name: 'Admin mode' }).check();
    await admin.getByText('Pick a user (next to Admin mode) to list their agents.').waitFor();
    await pickUser(admin, dana);
    await admin.getByLabel('Quota of Dana Renamed').fill('7');
    await admin.getByRole('row').filter({ hasText: 'Dana Renamed' }).getByRole('button', { name: 'Set quota' })
      .click();
    await poll(async () =>
      (await adminSql`select max_working_leads from public.agents where id = ${made.id}`)[0].max_working_leads
    ).toBe(7);
    await expectAccessible(admin, 'agents in admin mode');
    await admin.close();
  });
});

describe('a deployed build', { timeout: 300_000 }, () => {
  it('signs in with Supabase Auth only: no demo buttons, no tokens in the bundle', async () => {
    const outDir = mkdtempSync(join(tmpdir(), 'dash-deployed-'));
    await viteBuild({
      outDir,
      env: {
        PATH: process.env.PATH,
        VITE_SUPABASE_URL: 'https://project-ref.supabase.co',
        VITE_SUPABASE_PUBLISHABLE_KEY: 'sb_publishable_not_a_real_key',
      },
      quiet: true,
    });
    const bundle = readdirSync(join(outDir, 'assets')).map((f) => readFileSync(join(outDir, 'assets', f), 'utf8'))
      .join();
    expect(bundle).toContain('https://project-ref.supabase.co');
    expect(bundle).not.toMatch(/eyJ[\w-]{10,}\.eyJ/); // no JWT of any kind
    const deployed = await serveDashboard({ port: 0, dir: outDir });
    try {
      const page = await browser.context.newPage();
      await page.goto(deployed.url);
      await page.getByRole('button', { name: 'Email me a magic link' }).waitFor();
      await page.getByLabel('Password').waitFor();
      expect(await page.getByRole('button', { name: /demo/i }).count()).toBe(0);
      await expectAccessible(page, 'deployed sign-in');
      await shot(page, 'sign-in-deployed');
      await page.close();
    } finally {
      await deployed.close();
      rmSync(outDir, { recursive: true, force: true });
    }
  });
});

describe('the accessibility check itself', () => {
  it('fails on a page with a critical violation', async () => {
    const page = await browser.context.newPage();
    await page.goto(web.url);
    // A control: an unnamed button is a critical axe violation, so the check must reject it.
    await page.evaluate(() => document.body.append(document.createElement('button')));
    await expect(expectAccessible(page, 'control')).rejects.toThrow(/button-name/);
    await page.close();
  });
});

/** Admin mode's user picker: users/list searched by email (test emails start with the id). */
async function pickUser(page: Page, user: TestUser) {
  await page.getByLabel('Find user').fill(user.id.slice(0, 13));
  const select = page.getByLabel('User', { exact: true });
  await poll(() => select.locator(`option[value="${user.id}"]`).count()).toBe(1);
  await select.selectOption(user.id);
}
