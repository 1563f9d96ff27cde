// The dashboard's bulk paths end to end: the import wizard, Export, and bulk actions on selected
// rows or on every matching lead, in Debian's chromium against the api under real Deno. Its own
// users, so these writes never move the counts dashboard.test.ts checks.
import { mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDashboard, serveDashboard } from '../../scripts/dashboard.mjs';
import { root } from '../../scripts/deno.mjs';
import { EXPORT_COLUMNS } from '../../shared/schemas.ts';
import { adminSql, createLeads, manyLeads, startTestApi, world } from '../helpers.ts';
import { expectAccessible, launchBrowser } from './harness.ts';

const shotDir = process.env.UPDATE_SCREENSHOTS ? join(root, 'docs', 'screenshots') : join(tmpdir(), 'dash-shots');
mkdirSync(shotDir, { recursive: true });

let api: { url: string; stop: () => Promise<void> };
let web: { url: string; close: () => Promise<void> };
let browser: { context: BrowserContext; close: () => Promise<void> };
const statuses = ['new', 'contacted', 'qualified'];
const { bea, cal } = await world({
  bea: {
    agents: [
      {
        name: 'Bea Main',
        leads: [
          ...manyLeads(12, (i) => ({ name: `Bea Lead ${i}`, status: statuses[i % 3], email: `l${i}@bea.test` })),
          { name: 'Known Person', email: 'known@bea.test', status: 'new' },
        ],
      },
      { name: 'Bea Spare', leads: manyLeads(4, (i) => ({ name: `Spare Lead ${i}`, status: 'converted' })) },
    ],
  },
  // Someone else's qualified lead: an export of "qualified" must not have it.
  cal: { agents: [{ name: 'Cal Solo', leads: [{ name: 'Cal Qualified', status: 'qualified' }] }] },
});
const [mainAgent, spareAgent] = bea.agents;

beforeAll(async () => {
  const [started] = await Promise.all([startTestApi(), buildDashboard({ quiet: true })]);
  api = started;
  web = await serveDashboard({ port: 0, apiUrl: api.url, tokens: { user: bea.token, admin: bea.token } });
  browser = await launchBrowser();
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await web?.close();
  await api?.stop();
  await adminSql`delete from public.agents where user_id in ${adminSql([bea.id, cal.id])}`;
});

async function signedIn(view: string): Promise<Page> {
  const page = await browser.context.newPage();
  await page.goto(`${web.url}/#/${view}`);
  await page.getByRole('button', { name: 'Sign in as demo user' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  return page;
}

const poll = <T>(fn: () => T | Promise<T>) => expect.poll(fn, { timeout: 20_000, interval: 100 });
const shot = (page: Page, name: string) => page.screenshot({ path: join(shotDir, `${name}.png`), fullPage: true });
const leadsOf = (agent: string) =>
  adminSql`select id, name, email, phone, status from public.leads where agent_id = ${agent} order by id`;

describe('bulk paths in chromium', { timeout: 120_000 }, () => {
  it('imports a CSV: mapped columns, a dry run listing the failing rows, then the import and its summary', async () => {
    // Line 1 header; line 3's record spans two lines (a quoted newline), so the bad status on the
    // next record is on line 5, as an editor shows it; "Known Person" is already a lead (skipped).
    const csv = [
      'Full Name;E-mail;phone;status;Company',
      'Imported One;one@import.test;+1 555 0101;new;Acme',
      '"Imported\nTwo";two@import.test;;contacted;"Acme; Inc"',
      'Imported Bad;bad@import.test;;hot;Acme',
      'Known Again;KNOWN@bea.test;;;Acme',
      'Imported Three;three@import.test;;qualified;',
    ].join('\r\n') + '\r\n';
    const before = (await leadsOf(mainAgent)).length;
    const page = await signedIn('import');
    await page.getByLabel('CSV file', { exact: true }).setInputFiles({
      name: 'trade-show.csv',
      mimeType: 'text/csv',
      buffer: Buffer.from(csv, 'utf8'),
    });
    await page.getByText('trade-show.csv: 5 columns, 5 rows.').waitFor();
    // Columns named like a field map themselves; the others are the person's to map.
    expect(await page.getByLabel('Field for column phone').inputValue()).toBe('phone');
    expect(await page.getByLabel('Field for column Company').inputValue()).toBe('');
    await page.getByLabel('Field for column Full Name').selectOption('name');
    await page.getByLabel('Field for column E-mail').selectOption('email');
    await page.getByLabel('Agent for rows without one').selectOption({ label: 'Bea Main' });

    await page.getByRole('button', { name: 'Dry run' }).click();
    const dry = page.getByTestId('dry-summary');
    await dry.waitFor();
    expect(await dry.textContent()).toBe(
      'Dry run: 3 would be created, 0 would be updated, 1 would be skipped, 1 failed.',
    );
    const failing = page.getByRole('table', { name: 'Rows that would fail' }).locator('tbody tr');
    expect(await failing.count()).toBe(1);
    const cells = await failing.first().getByRole('cell').allTextContents();
    expect(cells.slice(0, 3)).toEqual(['5', 'VALIDATION_ERROR', 'status']);
    expect(await page.getByText('Ignored columns: Company').count()).toBe(1);
    expect((await leadsOf(mainAgent)).length).toBe(before); // a dry run writes nothing
    await expectAccessible(page, 'import dry run');
    await shot(page, 'import-dry-run');

    await page.getByRole('button', { name: 'Import 5 rows' }).click();
    const summary = page.getByTestId('import-summary');
    await summary.waitFor();
    expect(await summary.textContent()).toBe('Imported: 3 created, 0 updated, 1 skipped, 1 failed.');
    expect(await page.getByRole('table', { name: 'Rows that failed' }).locator('tbody tr').count()).toBe(1);
    const made = (await leadsOf(mainAgent)).filter((l) => l.email?.endsWith('@import.test'));
    expect(made.map(({ name, email, phone, status }) => ({ name, email, phone, status }))).toEqual([
      { name: 'Imported One', email: 'one@import.test', phone: '+1 555 0101', status: 'new' },
      { name: 'Imported\nTwo', email: 'two@import.test', phone: null, status: 'contacted' },
      { name: 'Imported Three', email: 'three@import.test', phone: null, status: 'qualified' },
    ]);
    expect((await leadsOf(mainAgent)).length).toBe(before + 3);
    await expectAccessible(page, 'import summary');
    await shot(page, 'import-summary');
    await page.close();
  });

  it('shows a malformed file with the line the api would name, before anything is sent', async () => {
    const page = await signedIn('import');
    await page.getByLabel('CSV file', { exact: true }).setInputFiles({
      name: 'broken.csv',
      mimeType: 'text/csv',
      buffer: Buffer.from('name,email\r\nOk,ok@x.test\r\n"Never closed,x@x.test\r\n', 'utf8'),
    });
    const alert = page.getByRole('alert');
    await alert.waitFor();
    expect(await alert.locator('.error-code').textContent()).toBe('VALIDATION_ERROR');
    expect(await alert.locator('.error-message').textContent()).toMatch(/^Malformed CSV at line 3: /);
    expect(await page.getByRole('button', { name: 'Dry run' }).count()).toBe(0);
    await page.close();
  });

  it('exports the filtered leads as a CSV download', async () => {
    const page = await signedIn('leads');
    const rows = page.getByRole('table', { name: 'Leads' }).locator('tbody tr');
    await rows.first().waitFor();
    await page.getByLabel('Status', { exact: true }).selectOption('qualified');
    const want = await adminSql`select id from public.leads where user_id = ${bea.id} and status = 'qualified'`;
    await poll(() => rows.count()).toBe(want.length);
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Export CSV' }).click(),
    ]);
    expect(download.suggestedFilename()).toMatch(/^leads-\d{8}-\d{6}\.csv$/);
    const text = readFileSync((await download.path())!, 'utf8');
    const [header, ...records] = parse(text) as string[][];
    expect(header).toEqual([...EXPORT_COLUMNS]);
    const ids = records.map((r) => Number(r[0])).sort((a, b) => a - b);
    expect(ids).toEqual(want.map((r) => Number(r.id)).sort((a, b) => a - b));
    expect(records.every((r) => r[header.indexOf('status')] === 'qualified')).toBe(true);
    expect(records.every((r) => r[header.indexOf('user_id')] === bea.id)).toBe(true); // nothing of Cal's
    await page.getByText(`Saved ${download.suggestedFilename()}`).waitFor();
    await page.close();
  });

  it('sets the status of the selected rows', async () => {
    const page = await signedIn('leads');
    await page.getByLabel('Search', { exact: true }).fill('Bea Lead');
    const table = page.getByRole('table', { name: 'Leads' });
    await poll(() => table.locator('tbody tr').count()).toBe(12);
    const picked = ['Bea Lead 1', 'Bea Lead 4', 'Bea Lead 7'];
    for (const name of picked) await table.getByRole('checkbox', { name: `Select ${name}`, exact: true }).check();
    await page.getByText('3 selected', { exact: true }).waitFor();
    await page.getByLabel('Set status').selectOption('converted');
    await expectAccessible(page, 'bulk actions');
    await shot(page, 'bulk-actions');
    await page.getByRole('button', { name: 'Set status of 3 leads' }).click();
    await page.getByText('Updated 3 leads, failed 0.').waitFor();
    const after = await adminSql`select name, status, version from public.leads
                                 where agent_id = ${mainAgent} and name like 'Bea Lead %' order by id`;
    expect(after.filter((l) => l.status === 'converted').map((l) => l.name)).toEqual(picked);
    expect(after.filter((l) => picked.includes(l.name)).every((l) => l.version === 2)).toBe(true);
    // One history event per changed lead.
    const events = await adminSql`select count(*)::int as n from public.lead_events e
                                  join public.leads l on l.id = e.lead_id
                                  where l.name in ${adminSql(picked)} and e.kind = 'updated'`;
    expect(events[0].n).toBe(3);
    // Done: the selection is cleared and the table shows the new status.
    await page.getByText('0 selected', { exact: true }).waitFor();
    await poll(() => table.getByRole('row').filter({ hasText: 'Bea Lead 4' }).textContent()).toContain('converted');
    await page.close();
  });

  it('deletes all N matching after a confirmation naming N, and shows a stale count as a conflict', async () => {
    const page = await signedIn('leads');
    await page.getByLabel('Agent', { exact: true }).selectOption({ label: 'Bea Spare' });
    await page.getByText('Page 1 · 4 leads').waitFor();
    await page.getByRole('radio', { name: 'All 4 matching' }).check();
    await page.getByRole('button', { name: 'Delete 4 leads…' }).click();
    const confirm = page.getByRole('alertdialog', { name: 'Confirm bulk delete' });
    expect(await confirm.locator('p').textContent()).toBe(
      'Delete 4 leads matching the current filters? This cannot be undone.',
    );
    await expectAccessible(page, 'bulk delete confirmation');
    await shot(page, 'bulk-delete-confirm');

    // A fifth lead arrives while the confirmation is on screen: the 4 the person saw are stale.
    await createLeads(spareAgent, bea, [{ name: 'Spare Late', status: 'new' }]);
    await confirm.getByRole('button', { name: 'Delete 4 leads' }).click();
    const stale = page.getByTestId('stale-count');
    await stale.waitFor();
    expect(await stale.textContent()).toBe(
      'The matching leads changed: you saw 4 leads, 5 match now. Nothing was changed; check the list and try again.',
    );
    expect(await page.locator('.error .error-code').textContent()).toBe('CONFLICT');
    expect((await leadsOf(spareAgent)).length).toBe(5); // nothing deleted
    await expectAccessible(page, 'bulk stale count');
    await shot(page, 'bulk-stale-count');

    // The list is read again, and the confirmation now names the count there is.
    await page.getByText('Page 1 · 5 leads').waitFor();
    await confirm.getByRole('button', { name: 'Delete 5 leads' }).click();
    await page.getByText('Deleted 5 leads, failed 0.').waitFor();
    expect((await leadsOf(spareAgent)).length).toBe(0);
    expect((await leadsOf(mainAgent)).length).toBeGreaterThan(0); // other agents' leads untouched
    await page.getByText('No leads match.').waitFor();
    await page.close();
  });
});
