/*
 * The web console driven by a real headless browser (Debian's Chromium through puppeteer-core), on the
 * lab (net 6): sign in through the form, see the pipeline, start a push of beta's service and watch it
 * finish live on the run page (server-sent events in the browser), then sign in as a user who may only
 * view beta: no action is offered, and the action sent anyway from the page is refused by the server.
 * Screenshots of the pipeline and of the finished run go to docs/screenshots/ (linked from the README).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Server } from 'node:http';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { startLoad } from '../lab/load.js';
import { updateserver, explain } from './cli.js';
import { Console } from '../../src/serve/server.js';
import { hashPassword } from '../../src/serve/passwords.js';
import type { User } from '../../src/serve/users.js';
import { PACKAGE_DIR } from '../../src/package-dir.js';

const NET = 6;
const SHOTS = join(PACKAGE_DIR, 'docs', 'screenshots');
let p: Pipeline;
let server: Server;
let browser: Browser;
let base: string;

async function signIn(page: Page, user: string, password: string): Promise<void> {
  await page.goto(`${base}/`);
  assert.match(page.url(), /\/login$/, 'anonymous visitors are sent to sign in');
  await page.type('#user', user);
  await page.type('#password', password);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
}

before(async () => {
  p = await startPipeline({ net: NET, devHealthPath: '/' });
  for (const stage of ['dev', 'beta']) {
    const r = await updateserver(p.project.dir, stage);
    assert.equal(r.code, 0, explain(r));
  }
  await writeFile(join(p.appDir, 'VERSION'), '2.0.0\n');
  const dev = await updateserver(p.project.dir, 'dev');
  assert.equal(dev.code, 0, explain(dev));
  const users = new Map<string, User>([
    ['alice', { name: 'alice', passwordHash: await hashPassword('alice-browser-password'), stages: { '*': 'release' } }],
    ['bob', { name: 'bob', passwordHash: await hashPassword('bob-browser-password'), stages: { beta: 'view', dev: 'view' } }],
  ]);
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
});

test('in a browser: sign in, see the pipeline, push beta and watch the run finish live, under load with 0 failed requests', async () => {
  const page = await browser.newPage();
  await page.setViewport({ width: 1100, height: 800 });
  await signIn(page, 'alice', 'alice-browser-password');
  assert.equal(page.url(), `${base}/`);
  const captions = await page.$$eval('caption', (cs) => cs.map((c) => c.textContent));
  assert.deepEqual(captions, ['dev', 'beta (from dev)']);
  assert.match(await page.$eval('#st-beta', (c) => c.closest('table')!.textContent ?? ''), /a promotion would bring 2\.0\.0|a promotion would bring .*2\.0\.0/);
  await page.screenshot({ path: join(SHOTS, 'pipeline.png'), fullPage: true });

  const load = startLoad(p.url.beta, { connections: 8 });
  try {
    await new Promise((r) => setTimeout(r, 300));
    await Promise.all([page.waitForNavigation(), page.click('form[action="/stages/beta/promote"] button:not([name])')]);
    assert.match(page.url(), /\/runs\/[A-Za-z0-9-]+$/);
    // The page's own script fills the step list and the state as the events arrive.
    await page.waitForFunction(() => /^(done|failed|nothing)/.test(document.getElementById('state')?.textContent ?? ''), { timeout: 120_000 });
  } finally {
    const result = await load.stop();
    assert.ok(result.requests > 100, `only ${result.requests} requests`);
    assert.equal(result.errors + result.timeouts + result.non2xx, 0, JSON.stringify(result));
  }
  const state = await page.$eval('#state', (e) => e.textContent ?? '');
  assert.match(state, /^done in \d+ ms: web serves .*2\.0\.0.* from slot [ab]$/);
  const steps = await page.$$eval('#steps li', (ls) => ls.map((l) => l.textContent ?? ''));
  assert.ok(steps.some((s) => /^switch \[lb\] .*: end$/.test(s)), steps.join('\n'));
  await page.screenshot({ path: join(SHOTS, 'run.png'), fullPage: true });
  await page.close();
});

test('in a browser: a user who may only view beta is offered no action, and the server refuses one sent anyway', async () => {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  await signIn(page, 'bob', 'bob-browser-password');
  assert.equal(await page.$('form[action="/stages/beta/promote"]'), null);
  assert.match(await page.content(), /You may view this stage, not release to it/);
  // The form is not there, but its request can still be made from the page, with bob's own CSRF token.
  const status = await page.evaluate(async () => {
    const csrf = (document.querySelector('input[name=csrf]') as HTMLInputElement).value;
    const r = await fetch('/stages/beta/promote', { method: 'POST', body: new URLSearchParams({ csrf }), redirect: 'manual' });
    return r.status;
  });
  assert.equal(status, 403);
  await context.close();
});
