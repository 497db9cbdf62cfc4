/*
 * The web console (issue 22, first part) on the lab (net 5), over real HTTP against `Console` serving
 * the lab's project: anonymous access refused; sign-in with scrypt hashes and a HttpOnly SameSite
 * cookie; the pipeline page with what a promotion would move; a partial push of one service to beta
 * from the console, followed live over server-sent events, under load with zero failed requests, and
 * recorded in history with the console user's name; rights per stage enforced by the server (403, 404),
 * not only by the page; CSRF refused; one user's session cannot use another's token; /metrics parsed
 * by the OpenMetrics reference parser (Python's prometheus_client), with no secret in any page.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { spawnSync } from 'node:child_process';
import type { Server } from 'node:http';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { startLoad } from '../lab/load.js';
import { updateserver, explain } from './cli.js';
import { Console } from '../../src/serve/server.js';
import { hashPassword } from '../../src/serve/passwords.js';
import type { User } from '../../src/serve/users.js';
import { FileStateStore } from '../../src/state/store.js';
import { writeReport } from '../../src/data/changes/report.js';

const NET = 5;
const PASSWORDS = { alice: 'alice-secret-password', bob: 'bob-secret-password1' };
let p: Pipeline;
let server: Server;
let base: string;
let hashes: string[] = [];

interface Reply { status: number; headers: Record<string, string | string[] | undefined>; body: string }

function http(method: string, path: string, opts: { cookie?: string; form?: Record<string, string | string[]>; headers?: Record<string, string> } = {}): Promise<Reply> {
  const body = opts.form ? new URLSearchParams(Object.entries(opts.form).flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => [k, x]) : [[k, v]]))).toString() : undefined;
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, {
      method, agent: false,
      headers: { ...(opts.cookie ? { cookie: opts.cookie } : {}), ...(body ? { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(Buffer.byteLength(body)) } : {}), ...opts.headers },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function signIn(user: keyof typeof PASSWORDS): Promise<{ cookie: string; csrf: string }> {
  const r = await http('POST', '/login', { form: { user, password: PASSWORDS[user] } });
  assert.equal(r.status, 303, r.body);
  const cookie = String((r.headers['set-cookie'] as string[])[0]).split(';')[0]!;
  const home = await http('GET', '/', { cookie });
  const csrf = /name="csrf" value="([^"]+)"/.exec(home.body)?.[1];
  assert.ok(csrf, 'the page carries a CSRF token');
  return { cookie, csrf };
}

/** The run's server-sent events until its end event. */
function followRun(path: string, cookie: string): Promise<Array<Record<string, unknown>>> {
  return new Promise((resolve, reject) => {
    const events: Array<Record<string, unknown>> = [];
    const req = request(`${base}${path}/events`, { headers: { cookie }, agent: false }, (res) => {
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        buf += d;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (line.startsWith('data: ')) events.push(JSON.parse(line.slice(6)) as Record<string, unknown>);
        }
      });
      res.on('end', () => resolve(events));
    });
    req.on('error', reject);
    req.end();
  });
}

const history = (stage: string) => new FileStateStore(p.project.stateDir).history(stage, 100);

before(async () => {
  p = await startPipeline({ net: NET, devHealthPath: '/' });
  for (const stage of ['dev', 'beta']) {
    const r = await updateserver(p.project.dir, stage);
    assert.equal(r.code, 0, explain(r));
  }
  await writeFile(join(p.appDir, 'VERSION'), '2.0.0\n');
  const dev = await updateserver(p.project.dir, 'dev');
  assert.equal(dev.code, 0, explain(dev));
  hashes = [await hashPassword(PASSWORDS.alice), await hashPassword(PASSWORDS.bob)];
  const users = new Map<string, User>([
    ['alice', { name: 'alice', passwordHash: hashes[0]!, stages: { dev: 'release', beta: 'release' } }],
    ['bob', { name: 'bob', passwordHash: hashes[1]!, stages: { beta: 'view' } }],
  ]);
  server = await new Console({ project: p.project, users, secureCookies: false, metricsToken: 'scraper-token-for-the-test' }).listen('127.0.0.1', 0);
  const address = server.address();
  base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
});

after(async () => {
  await new Promise((r) => server?.close(r));
  await p?.stop();
});

test('anonymous access is refused: pages send to sign-in, /metrics answers 401, an action starts nothing', async () => {
  const runs = (await history('beta')).length;
  for (const path of ['/', '/stages/beta/history', '/runs/x', '/stages/beta/changes/x']) {
    const r = await http('GET', path);
    assert.equal(r.status, 303, path);
    assert.equal(r.headers.location, '/login');
  }
  assert.equal((await http('GET', '/metrics')).status, 401);
  assert.equal((await http('GET', '/metrics', { headers: { authorization: 'Bearer wrong' } })).status, 401);
  assert.equal((await http('POST', '/stages/beta/promote', { form: { csrf: 'x' } })).status, 303);
  const wrong = await http('POST', '/login', { form: { user: 'alice', password: 'not her password' } });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.headers['set-cookie'], undefined);
  assert.equal((await http('POST', '/login', { form: { user: 'mallory', password: 'anything at all' } })).status, 401);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal((await history('beta')).length, runs, 'nothing ran');
});

test('sign in: a HttpOnly, SameSite=Strict session cookie; the pipeline shows each stage and what a promotion would move', async () => {
  const r = await http('POST', '/login', { form: { user: 'alice', password: PASSWORDS.alice } });
  const cookie = String((r.headers['set-cookie'] as string[])[0]);
  assert.match(cookie, /HttpOnly/);
  assert.match(cookie, /SameSite=Strict/);
  const { cookie: c } = await signIn('alice');
  const home = await http('GET', '/', { cookie: c });
  assert.equal(home.status, 200);
  assert.match(home.headers['content-security-policy'] as string, /frame-ancestors 'none'/);
  assert.match(home.body, /<caption id="st-dev">dev<\/caption>/);
  assert.match(home.body, /<caption id="st-beta">beta \(from dev\)<\/caption>/);
  // dev runs 2.0.0, beta still the first release: beta's row says what its promotion would bring.
  assert.match(home.body, /a promotion would bring <strong>[^<]*2\.0\.0[^<]*<\/strong>/);
  assert.match(home.body, /action="\/stages\/beta\/promote"/);
});

test('a partial push of one service to beta from the console, watched live, under load: 0 failed requests, recorded with the user\'s name', async () => {
  const { cookie, csrf } = await signIn('alice');
  const load = startLoad(p.url.beta, { connections: 8 });
  let events: Array<Record<string, unknown>>;
  try {
    await new Promise((r) => setTimeout(r, 300));
    const r = await http('POST', '/stages/beta/promote', { cookie, form: { csrf, service: 'web' } });
    assert.equal(r.status, 303, r.body);
    const runPath = String(r.headers.location);
    assert.match(runPath, /^\/runs\/[A-Za-z0-9-]+$/);
    events = await followRun(runPath, cookie);
    const page = await http('GET', runPath, { cookie });
    assert.match(page.body, /Plan: promote dev -&gt; beta/);
  } finally {
    const result = await load.stop();
    assert.ok(result.requests > 100, `only ${result.requests} requests`);
    assert.equal(result.errors + result.timeouts + result.non2xx, 0, JSON.stringify(result));
  }
  const end = events.at(-1)!;
  assert.equal(end.type, 'end');
  assert.equal(end.ok, true, String(end.summary));
  const steps = events.filter((e) => e.type === 'step');
  assert.ok(steps.some((e) => e.phase === 'switch' && e.state === 'end'), 'the switch was seen live');
  const last = (await history('beta')).at(-1)!;
  assert.deepEqual([last.action, last.result, last.user, Object.keys(last.services)], ['promote', 'ok', 'alice', ['web']]);
  assert.match((await http('GET', '/stages/beta/history', { cookie })).body, /<td>alice<\/td>/);
});

test('rights per stage are the server\'s: a viewer sees beta read-only and is refused the action; a stage without rights does not exist for them', async () => {
  const bob = await signIn('bob');
  const home = await http('GET', '/', { cookie: bob.cookie });
  assert.match(home.body, /st-beta/);
  assert.doesNotMatch(home.body, /st-dev/, 'dev is not shown to bob');
  assert.doesNotMatch(home.body, /action="\/stages\/beta\/promote"/);
  assert.match(home.body, /You may view this stage, not release to it/);
  const runs = (await history('beta')).length;
  assert.equal((await http('POST', '/stages/beta/promote', { cookie: bob.cookie, form: { csrf: bob.csrf } })).status, 403);
  assert.equal((await http('POST', '/stages/beta/rollback', { cookie: bob.cookie, form: { csrf: bob.csrf } })).status, 403);
  assert.equal((await http('POST', '/stages/dev/promote', { cookie: bob.cookie, form: { csrf: bob.csrf } })).status, 404);
  assert.equal((await http('GET', '/stages/dev/history', { cookie: bob.cookie })).status, 404);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal((await history('beta')).length, runs, 'nothing ran');
});

test('CSRF: a POST without the token, or with another session\'s token, is refused and changes nothing', async () => {
  const alice = await signIn('alice');
  const bob = await signIn('bob');
  const runs = (await history('beta')).length;
  assert.equal((await http('POST', '/stages/beta/flip', { cookie: alice.cookie, form: {} })).status, 403);
  assert.equal((await http('POST', '/stages/beta/flip', { cookie: alice.cookie, form: { csrf: bob.csrf } })).status, 403);
  assert.equal((await http('POST', '/logout', { cookie: alice.cookie, form: { csrf: bob.csrf } })).status, 403);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal((await history('beta')).length, runs, 'nothing ran');
  // Signing out ends the session: its cookie opens nothing afterwards.
  assert.equal((await http('POST', '/logout', { cookie: alice.cookie, form: { csrf: alice.csrf } })).status, 303);
  assert.equal((await http('GET', '/', { cookie: alice.cookie })).status, 303);
});

test('/metrics is OpenMetrics (checked by the reference parser), for a user or the scraper\'s token, with no secret in it or in any page', async () => {
  const alice = await signIn('alice');
  const r = await http('GET', '/metrics', { cookie: alice.cookie });
  assert.equal(r.status, 200);
  assert.match(String(r.headers['content-type']), /^application\/openmetrics-text; version=1\.0\.0/);
  const parsed = spawnSync('/usr/bin/python3', ['-c', [
    'import sys, json',
    'from prometheus_client.openmetrics.parser import text_string_to_metric_families',
    'out = [{"name": f.name, "type": f.type, "samples": [[s.name, s.labels, s.value] for s in f.samples]} for f in text_string_to_metric_families(sys.stdin.read())]',
    'print(json.dumps(out))',
  ].join('\n')], { input: r.body, encoding: 'utf8' });
  assert.equal(parsed.status, 0, `the OpenMetrics parser refused the output: ${parsed.stderr}\n${r.body}`);
  const families = JSON.parse(parsed.stdout) as Array<{ name: string; type: string; samples: Array<[string, Record<string, string>, number]> }>;
  const fam = (name: string) => families.find((f) => f.name === name);
  assert.deepEqual(families.map((f) => f.name).sort(), ['updateserver_last_run_duration_seconds', 'updateserver_live', 'updateserver_lock_held', 'updateserver_phase_duration_seconds', 'updateserver_rollbacks',
    'updateserver_rollout_5xx_rate', 'updateserver_rollout_error_rate', 'updateserver_rollout_latency_ratio', 'updateserver_rollout_new_share', 'updateserver_rollout_paused', 'updateserver_rollout_responses', 'updateserver_rollout_step', 'updateserver_rollout_weight_percent',
    'updateserver_runs']);
  // No rollout runs here: its families are declared without a sample.
  assert.equal(fam('updateserver_rollout_step')!.samples.length, 0);
  assert.ok(fam('updateserver_runs')!.samples.some(([n, l, v]) => n === 'updateserver_runs_total' && l.stage === 'beta' && l.action === 'promote' && l.result === 'ok' && v >= 2));
  assert.ok(fam('updateserver_live')!.samples.some(([, l]) => l.stage === 'beta' && l.service === 'web' && /2\.0\.0/.test(l.release ?? '')));
  assert.ok(fam('updateserver_phase_duration_seconds')!.samples.some(([, l]) => l.stage === 'beta' && l.phase === 'switch'), 'the console\'s run left its phase times');
  assert.equal((await http('GET', '/metrics', { headers: { authorization: 'Bearer scraper-token-for-the-test' } })).status, 200);
  // A rollback report whose database could not be read, the driver's message quoting a connection string with its password.
  const dbPassword = 'db-password-a-driver-quoted';
  await writeReport(p.project.stateDir, { stage: 'beta', runId: 'sec-1', action: 'rollback', at: new Date().toISOString(), services: [{ service: 'web', engine: 'postgres', slot: 'a', database: 'app_a', servingSlot: 'b', servingDatabase: 'app_b', tables: [], untracked: [],
    unknown: `could not read what was written: connect failed for postgres://app:${dbPassword}@127.0.0.1:5432/app_a` }] });
  const report = await http('GET', '/stages/beta/changes/sec-1', { cookie: alice.cookie });
  assert.equal(report.status, 200);
  assert.match(report.body, /postgres:\/\/app:\*{8}@127\.0\.0\.1:5432\/app_a/);
  assert.equal((await http('GET', '/stages/dev/changes/sec-1', { cookie: (await signIn('bob')).cookie })).status, 404, 'a stage without rights has no reports');
  for (const page of [r.body, (await http('GET', '/', { cookie: alice.cookie })).body, (await http('GET', '/stages/beta/history', { cookie: alice.cookie })).body, report.body]) {
    for (const secret of [...hashes, ...Object.values(PASSWORDS), 'scraper-token-for-the-test', dbPassword]) assert.ok(!page.includes(secret), 'a secret appears in a page');
  }
});
