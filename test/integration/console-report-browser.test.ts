/*
 * "See a rollback's report" (issue 22) in a real headless browser (Debian's Chromium through
 * puppeteer-core) on the lab (net 93, databases ustest_cb2_*): beta's web service has a PostgreSQL
 * `copy` database; a promotion started from the console, then writes through the new slot (the app's
 * inserts through HAProxy, updates and deletes by another client), then the console's Roll back
 * button. The run page shows the report as the run ends (its own script), with the exact counts per
 * table, and the rows it lists are checked against both slots' databases; the history links to the
 * report's own page, which lists every change with its rows; a flip away from the command line after
 * more writes shows its own report in the history. beta's database has a password (from passwordEnv):
 * it appears in no page. Then a rollout (beta without its database: the profile refuses a rollout with
 * copy) followed live: each step's weight, state and gate figures. Writes docs/screenshots/
 * rollback-report.png and rollout-run.png (linked from the README).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Server } from 'node:http';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { slotDatabases } from '../lab/databases.js';
import { startLoad } from '../lab/load.js';
import { sql } from '../lab/pg.js';
import { updateserver, explain, otherSlot, recordedLiveSlot } from './cli.js';
import { Console } from '../../src/serve/server.js';
import { hashPassword } from '../../src/serve/passwords.js';
import type { User } from '../../src/serve/users.js';
import { PACKAGE_DIR } from '../../src/package-dir.js';

const NET = 93;
const SHOTS = join(PACKAGE_DIR, 'docs', 'screenshots');
const DB_PASSWORD_ENV = 'USTEST_CB2_PG_PASSWORD';
const DB_PASSWORD = 'cb2-database-password-never-shown';
const N = 7;
const SEEDS = ['seed-0', 'seed-1', 'seed-2', 'seed-3', 'seed-4', 'seed-5'];
const UPDATED = ['seed-0', 'seed-1'];
const DELETED = ['seed-4'];
const dbs = slotDatabases('postgres', 'ustest_cb2');
/** The profile refuses a rollout with a database per slot (copy): the second test drops beta's database for it. */
const ROLLOUT = [
  '    rollout:',
  '      steps: [{ weight: 10, holdMs: 1500 }, { weight: 50, holdMs: 1500 }]',
  '      gates: { minRequests: 5, tooFewWaitMs: 4000, latencyFloorMs: 50 }',
].join('\n');
let p: Pipeline;
let server: Server;
let browser: Browser;
let base: string;

async function signIn(page: Page, user: string, password: string): Promise<void> {
  await page.goto(`${base}/`);
  await page.type('#user', user);
  await page.type('#password', password);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
}

async function post(url: string, key: string): Promise<number> {
  const res = await fetch(`${url}/rows`, { method: 'POST', body: key, headers: { connection: 'close' } });
  const text = await res.text();
  assert.equal(res.status, 201, text);
  return (JSON.parse(text) as { id: number }).id;
}

const idsOf = async (db: string, where: string) => (await sql<{ id: unknown }>(db, `SELECT id FROM writes WHERE ${where} ORDER BY id`)).map((r) => Number(r.id));

before(async () => {
  process.env[DB_PASSWORD_ENV] = DB_PASSWORD;
  await dbs.dropAll();
  p = await startPipeline({
    net: NET, betaHosts: 1, devHealthPath: '/', appArgs: '--db postgres://postgres@127.0.0.1:5432/{database}',
    devServiceExtra: dbs.yaml('dev', 'copy-self'), betaServiceExtra: `${dbs.yaml('beta', 'copy')}\n      passwordEnv: ${DB_PASSWORD_ENV}`,
  });
  const dir = join(p.project.dir, 'migrations', 'web');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'V0001__writes.sql'), 'CREATE TABLE writes (id serial PRIMARY KEY, k varchar(64) NOT NULL UNIQUE, n int NOT NULL DEFAULT 0);\n');
  for (const stage of ['dev', 'beta']) {
    const r = await updateserver(p.project.dir, stage);
    assert.equal(r.code, 0, explain(r));
  }
  await writeFile(join(p.appDir, 'VERSION'), '2.0.0\n');
  const dev = await updateserver(p.project.dir, 'dev');
  assert.equal(dev.code, 0, explain(dev));
  // Rows beta's next copy brings along: the ones the new slot will update and delete.
  for (const k of SEEDS) await post(p.url.dev, k);
  const users = new Map<string, User>([['alice', { name: 'alice', passwordHash: await hashPassword('alice-report-password'), stages: { '*': 'release' } }]]);
  server = await new Console({ project: p.project, users, secureCookies: false }).listen('127.0.0.1', 0);
  const address = server.address();
  base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  // Root runs the tests: Chromium's sandbox needs an unprivileged user, so it is turned off for this local page.
  browser = await puppeteer.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  await mkdir(SHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  await new Promise((r) => server?.close(r));
  await p?.stop();
  await dbs.dropAll();
  delete process.env[DB_PASSWORD_ENV];
});

test('in a browser: promote beta, write through the new slot, roll back with the console\'s button: the run page, the history and the report show exactly the rows written, and no password', async () => {
  const page = await browser.newPage();
  await page.setViewport({ width: 1200, height: 900 });
  await signIn(page, 'alice', 'alice-report-password');
  assert.equal(page.url(), `${base}/`);

  // The promotion, from the console: beta's idle slot gets a copy of dev's database (with the seeds).
  await Promise.all([page.waitForNavigation(), page.click('form[action="/stages/beta/promote"] button:not([name])')]);
  await page.waitForFunction(() => /^(done|failed|nothing)/.test(document.getElementById('state')?.textContent ?? ''), { timeout: 180_000 });
  assert.match(await page.$eval('#state', (e) => e.textContent ?? ''), /^done in \d+ ms: web serves .*2\.0\.0.* from slot [ab]$/);
  assert.equal(await page.$('#changes-report'), null, 'a promotion leaves no report');
  const live = await recordedLiveSlot(p.project.dir, 'beta');
  const newDb = dbs.names('beta')[live];
  const oldDb = dbs.names('beta')[otherSlot(live)];

  // Through the new slot: the app's inserts (through HAProxy), another client's updates and deletes.
  const inserted: number[] = [];
  for (let i = 0; i < N; i++) inserted.push(await post(p.url.beta, `new-${i}`));
  for (const k of UPDATED) await sql(newDb, `UPDATE writes SET n = n + 100 WHERE k = '${k}'`);
  const deletedIds = await idsOf(newDb, `k IN (${DELETED.map((k) => `'${k}'`).join(', ')})`);
  assert.equal(deletedIds.length, DELETED.length, 'the copy brought the rows to delete');
  for (const k of DELETED) await sql(newDb, `DELETE FROM writes WHERE k = '${k}'`);

  // The rollback, from the pipeline page's button; the run page fills the report in when the run ends.
  await page.goto(`${base}/`);
  await Promise.all([page.waitForNavigation(), page.click('form[action="/stages/beta/rollback"] button')]);
  assert.match(page.url(), /\/runs\/[A-Za-z0-9-]+$/);
  const runPath = new URL(page.url()).pathname;
  await page.waitForSelector('#changes-report', { timeout: 180_000 });
  assert.match(await page.$eval('#state', (e) => e.textContent ?? ''), /^done in \d+ ms: web serves .* from slot [ab]$/);
  assert.equal(await recordedLiveSlot(p.project.dir, 'beta'), otherSlot(live), 'traffic went back');

  // Counts at a glance: a captioned table with headers, one row per table.
  const caption = await page.$eval('#changes-report table.counts caption', (c) => c.textContent ?? '');
  assert.equal(caption, `Rows written to slot ${live} of web (database ${newDb}) since it went live`);
  assert.deepEqual(await page.$$eval('#changes-report table.counts thead th', (ths) => ths.map((t) => [t.textContent, t.getAttribute('scope')])),
    [['table', 'col'], ['inserted', 'col'], ['updated', 'col'], ['deleted', 'col']]);
  const counts = await page.$$eval('#changes-report table.counts tbody tr', (trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent)));
  assert.deepEqual(counts, [['writes', String(N), String(UPDATED.length), String(DELETED.length)]]);
  assert.equal(await page.$eval('#changes-report .service-counts', (e) => e.textContent), `${N} inserted, ${UPDATED.length} updated, ${DELETED.length} deleted in 1 table(s)`);

  // The keys listed, expanded by keyboard, against both databases.
  await page.focus('details.keys[data-table="writes"] summary');
  await page.keyboard.press('Enter');
  assert.equal(await page.$eval('details.keys[data-table="writes"]', (d) => (d as HTMLDetailsElement).open), true, 'the details open from the keyboard');
  const listed = async (op: string) => (await page.$$eval(`details.keys[data-table="writes"] tr[data-op="${op}"]`, (trs) => trs.map((tr) => tr.getAttribute('data-key') ?? '')))
    .map((k) => Number((JSON.parse(k) as { id: number }).id)).sort((a, b) => a - b);
  const newIds = await idsOf(newDb, "k LIKE 'new-%'");
  assert.deepEqual(newIds, [...inserted].sort((a, b) => a - b), 'the app acknowledged each insert with its id');
  assert.deepEqual(await listed('inserted'), newIds);
  assert.deepEqual(await idsOf(oldDb, "k LIKE 'new-%'"), [], 'the database serving now has none of them');
  assert.deepEqual(await listed('updated'), await idsOf(newDb, `k IN (${UPDATED.map((k) => `'${k}'`).join(', ')}) AND n >= 100`));
  assert.equal((await listed('updated')).length, UPDATED.length);
  assert.deepEqual(await idsOf(oldDb, 'n >= 100'), [], 'the updates are not in the database serving now');
  assert.deepEqual(await listed('deleted'), deletedIds);
  assert.deepEqual(await idsOf(newDb, `id IN (${deletedIds.join(', ')})`), [], 'gone from the slot left');
  // Every change with its rows, in log order.
  await page.$eval('details.changes[data-table="writes"]', (d) => { (d as HTMLDetailsElement).open = true; });
  const changeRows = await page.$$eval('details.changes[data-table="writes"] tbody tr', (trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent ?? '')));
  assert.equal(changeRows.length, N + UPDATED.length + DELETED.length);
  assert.ok(changeRows.some((r) => r[2] === 'updated' && /"n": 100\b/.test(r[5]!)), JSON.stringify(changeRows));
  await page.screenshot({ path: join(SHOTS, 'rollback-report.png'), fullPage: true });
  const runHtml = await page.content();

  // The history: the counts in the rollback's row and a link to the report's own page.
  await page.goto(`${base}/stages/beta/history`);
  const summary = await page.$eval('.report-summary', (e) => e.textContent ?? '');
  assert.match(summary, new RegExp(`web, slot ${live} left: ${N} inserted, ${UPDATED.length} updated, ${DELETED.length} deleted in 1 table\\(s\\)`));
  const historyHtml = await page.content();
  await Promise.all([page.waitForNavigation(), page.click('.report-summary a')]);
  assert.match(page.url(), /\/stages\/beta\/changes\/[A-Za-z0-9-]+$/);
  assert.ok(page.url().endsWith(runPath.slice('/runs/'.length)), 'the report of the console\'s run');
  assert.deepEqual(await page.$$eval('#changes-report table.counts tbody tr', (trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent))), counts);
  assert.equal(await page.$$eval('details.changes[data-table="writes"] tbody tr', (trs) => trs.length), N + UPDATED.length + DELETED.length);
  const reportHtml = await page.content();

  // beta's database password was in the console's environment all along: it is in no page.
  // A flip away from a slot that took writes, from the command line: its report is in the history too,
  // and its page reads the file the CLI's run left.
  const back = await updateserver(p.project.dir, 'flip', 'beta', '--force');
  assert.equal(back.code, 0, explain(back));
  const again = [await post(p.url.beta, 'again-0'), await post(p.url.beta, 'again-1')].sort((a, b) => a - b);
  const away = await updateserver(p.project.dir, 'flip', 'beta');
  assert.equal(away.code, 0, explain(away));
  await page.goto(`${base}/stages/beta/history`);
  // Latest runs first: the flip away, the flip back (the slot it left took nothing meanwhile), the rollback.
  const summaries = await page.$$eval('.report-summary', (es) => es.map((e) => e.textContent ?? ''));
  assert.equal(summaries.length, 3);
  assert.match(summaries[1]!, new RegExp(`web, slot ${otherSlot(live)} left: no row was written`));
  assert.match(summaries[0]!, new RegExp(`web, slot ${live} left: 2 inserted, 0 updated, 0 deleted in 1 table\\(s\\)`));
  const flipHistoryHtml = await page.content();
  await Promise.all([page.waitForNavigation(), page.click('.report-summary a')]);
  assert.match(await page.$eval('h1', (h) => h.textContent ?? ''), /^What the slot left behind took: beta, run /);
  assert.deepEqual((await page.$$eval('details.keys[data-table="writes"] tr[data-op="inserted"]', (trs) => trs.map((tr) => tr.getAttribute('data-key') ?? '')))
    .map((k) => Number((JSON.parse(k) as { id: number }).id)).sort((a, b) => a - b), again);
  assert.deepEqual(await idsOf(newDb, "k LIKE 'again-%'"), again);
  const flipReportHtml = await page.content();

  for (const html of [runHtml, historyHtml, reportHtml, flipHistoryHtml, flipReportHtml, await (await page.goto(`${base}/`))!.text()]) assert.ok(!html.includes(DB_PASSWORD), 'the database password appears in a page');
  await page.close();
});

test('in a browser: a rollout\'s traffic split, each step\'s weight and the gate figures the run records, followed live on the run page under load', async () => {
  const profile = join(p.project.dir, 'profiles', 'beta.yaml');
  const text = await readFile(profile, 'utf8');
  const withoutDb = text.replace(/^    database:\n(?:      .*\n)+/m, '');
  assert.notEqual(withoutDb, text, 'beta had a database block');
  // Without a database, the app starts without one too.
  await writeFile(profile, withoutDb.replace(' --db postgres://postgres@127.0.0.1:5432/{database}', '').replace(/^(  web:\n)/m, `$1${ROLLOUT}\n`));
  await writeFile(join(p.appDir, 'VERSION'), '3.0.0\n');
  const dev = await updateserver(p.project.dir, 'dev');
  assert.equal(dev.code, 0, explain(dev));
  const page = await browser.newPage();
  await page.setViewport({ width: 1200, height: 900 });
  await page.goto(`${base}/`);
  assert.equal(page.url(), `${base}/`, 'still signed in from the first test (the same browser)');
  const load = startLoad(p.url.beta, { connections: 4 });
  try {
    await Promise.all([page.waitForNavigation(), page.click('form[action="/stages/beta/promote"] button:not([name])')]);
    // Seen while it happens: a step holding its share.
    await page.waitForFunction(() => /holding/.test(document.querySelector('#rollout tbody')?.textContent ?? ''), { timeout: 180_000 });
    await page.waitForFunction(() => /^(done|failed|nothing)/.test(document.getElementById('state')?.textContent ?? ''), { timeout: 180_000 });
  } finally {
    const result = await load.stop();
    assert.equal(result.errors + result.timeouts + result.non2xx, 0, JSON.stringify(result));
  }
  assert.match(await page.$eval('#state', (e) => e.textContent ?? ''), /^done in \d+ ms: web serves .*3\.0\.0.* from slot [ab]$/);
  // Filled in by the page's script from the run's events: each step's weight, its end, the figures its gate judged.
  const rowsOf = () => page.$$eval('#rollout tbody tr', (trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent ?? '')));
  const split = await rowsOf();
  assert.deepEqual(split.map((r) => r.slice(0, 4)), [['web step 1', '10%', '90%', 'passed (pass)'], ['web step 2', '50%', '50%', 'passed (pass)']], JSON.stringify(split));
  for (const r of split) assert.match(r[4]!, /^new slot \d+ req \(\d+\.\d\d% of the window\), old \d+; 5xx 0\.00% vs 0\.00%; errors 0\.00% vs 0\.00%; response time \d+ ms vs \d+ ms \(ratio \d+\.\d\d\)$/);
  assert.deepEqual(await page.$$eval('#rollout thead th', (ths) => ths.map((t) => t.getAttribute('scope'))), ['col', 'col', 'col', 'col', 'col']);
  await page.screenshot({ path: join(SHOTS, 'rollout-run.png'), fullPage: true });
  // The same table, server-rendered, for a page opened after the run.
  await page.reload();
  assert.deepEqual(await rowsOf(), split);
  await page.close();
});
