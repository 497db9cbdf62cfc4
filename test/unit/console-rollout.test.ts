/*
 * The console's continue/abort of a paused rollout (issue 20 with issue 22; src/serve/rollout-actions.ts)
 * over real HTTP against a state directory: a user with the release right sees the buttons and their
 * answer reaches the paused run with their name, marked as from the console; a view-only user sees no
 * button and is refused (403); a POST without the session's CSRF token is refused; with the run gone
 * (the lock no longer its), the answer is not taken (409) and says why.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { Console } from '../../src/serve/server.js';
import { sessionCookie } from '../../src/serve/sessions.js';
import { FileRolloutControl, type RolloutRequest } from '../../src/state/rollout-control.js';
import { FileLockStore, type HeldLock } from '../../src/state/lock.js';
import { DEFAULT_GATES } from '../../src/rollout/profile.js';

const dir = mkdtempSync(join(tmpdir(), 'updateserver-console-rollout-'));
const stateDir = join(dir, '.s');
const control = new FileRolloutControl(stateDir);
let server: Server;
let base: string;
let konsole: Console;
let lock: HeldLock;
let taken: RolloutRequest[] = [];
let answering = true;
let runner: Promise<void>;

before(async () => {
  mkdirSync(join(dir, 'profiles'));
  writeFileSync(join(dir, 'profiles', 'beta.yaml'), ['source: { path: app }', 'hosts:', '  h1: { address: 10.0.0.1 }', 'loadBalancers:', '  lb: { socket: /run/haproxy/admin.sock, mapFile: /etc/haproxy/live.map, address: 10.0.0.9 }',
    'services:', '  web:', '    hosts: [h1]', '    root: /srv/web', '    listen: 8080', '    slots: { a: { port: 8001 }, b: { port: 8002 } }', '    start: node server.mjs --port {port}',
    '    rollout: { steps: [{ weight: 10, pause: true }] }', ''].join('\n'));
  konsole = new Console({ project: { dir, stateDir }, secureCookies: false, users: new Map([
    ['alice', { name: 'alice', passwordHash: 'x', stages: { beta: 'release' } }],
    ['bob', { name: 'bob', passwordHash: 'x', stages: { beta: 'view' } }],
  ]) });
  server = await konsole.listen('127.0.0.1', 0);
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // This process plays the paused run: it holds the stage's lock, records the pause, and takes answers.
  lock = await new FileLockStore(stateDir).acquire('beta', { heartbeat: false, message: 'the paused run (test)' });
  await control.writeProgress({ stage: 'beta', service: 'web', step: 1, steps: 1, weight: 10, state: 'paused', id: 'pause-1', since: new Date().toISOString(), deadline: new Date(Date.now() + 3600_000).toISOString(),
    pid: process.pid, oldBackend: 'web_a', newBackend: 'web_b', loadBalancers: ['lb'], gates: DEFAULT_GATES, start: {} });
  runner = (async () => {
    while (answering) {
      const r = await control.readRequest('beta');
      if (r && r.id === 'pause-1' && !r.answered) { taken.push(r); await control.request({ ...r, answered: new Date().toISOString() }); }
      await new Promise((res) => setTimeout(res, 30));
    }
  })();
});

after(async () => {
  answering = false;
  await runner;
  await lock?.release().catch(() => {});
  await new Promise((r) => server?.close(r));
  rmSync(dir, { recursive: true, force: true });
});

const as = (user: string) => {
  const s = konsole.sessions.create(user);
  return { cookie: sessionCookie(s, false).split(';')[0]!, csrf: s.csrf };
};
const get = async (who: { cookie: string }, path: string) => { const r = await fetch(`${base}${path}`, { headers: { cookie: who.cookie }, redirect: 'manual' }); return { status: r.status, text: await r.text() }; };
const post = async (who: { cookie: string }, path: string, form: Record<string, string>) => {
  const r = await fetch(`${base}${path}`, { method: 'POST', headers: { cookie: who.cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form).toString(), redirect: 'manual' });
  return { status: r.status, text: await r.text() };
};

test('the rollout page: the paused step, and the continue and abort buttons with the CSRF token only for a user who may release', async () => {
  const alice = as('alice');
  const page = await get(alice, '/stages/beta/rollout');
  assert.equal(page.status, 200);
  assert.match(page.text, /<strong>paused<\/strong> at step 1 of 1 \(10% of requests to web_b\)/);
  assert.match(page.text, new RegExp(`action="/stages/beta/rollout/continue"><input type="hidden" name="csrf" value="${alice.csrf}">`));
  assert.match(page.text, /action="\/stages\/beta\/rollout\/abort"/);
  const bob = await get(as('bob'), '/stages/beta/rollout');
  assert.equal(bob.status, 200);
  assert.doesNotMatch(bob.text, /rollout\/continue|rollout\/abort/);
  assert.match(bob.text, /bob may view beta but not answer its rollout/);
});

test('a view-only user and a POST without the CSRF token are refused, and nothing reaches the run', async () => {
  taken = [];
  const bob = as('bob');
  assert.equal((await post(bob, '/stages/beta/rollout/abort', { csrf: bob.csrf })).status, 403);
  const alice = as('alice');
  assert.equal((await post(alice, '/stages/beta/rollout/abort', {})).status, 403);
  assert.equal((await post(alice, '/stages/beta/rollout/abort', { csrf: bob.csrf })).status, 403, 'another session\'s token');
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(taken, []);
  assert.equal(await control.readRequest('beta'), undefined);
});

test('continue from the console reaches the paused run with the user\'s name, as the CLI\'s does', async () => {
  taken = [];
  const alice = as('alice');
  const r = await post(alice, '/stages/beta/rollout/continue', { csrf: alice.csrf });
  assert.equal(r.status, 200, r.text);
  assert.match(r.text, /The paused run took <strong>continue<\/strong> from alice at step 1 of web \(10%\)/);
  assert.equal(taken.length, 1);
  assert.deepEqual({ action: taken[0]!.action, user: taken[0]!.user, via: taken[0]!.via, id: taken[0]!.id }, { action: 'continue', user: 'alice', via: 'console', id: 'pause-1' });
  assert.equal(await control.readRequest('beta'), undefined, 'the answered request is cleared');
});

test('with the paused run gone (the lock no longer its), the answer is not taken and says why', async () => {
  await lock.release();
  const alice = as('alice');
  const r = await post(alice, '/stages/beta/rollout/abort', { csrf: alice.csrf });
  assert.equal(r.status, 409);
  assert.match(r.text, /no longer holds the stage&#39;s lock/);
});
