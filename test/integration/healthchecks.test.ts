/*
 * Health checks on the real lab (issue 6): healthchecks/web.yaml with pre, post and watch checks of
 * every kind, each shown passing and failing, the CLI exactly as a user runs it, and load through
 * beta's HAProxy during every promotion. A failure before the switch never reaches users; a failure
 * after it (post, watch) switches traffic straight back to the old slot, which still runs.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { get, type ClientRequest } from 'node:http';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { startLoad, type LoadResult } from '../lab/load.js';
import { updateserver, type CliResult } from './cli.js';
import { WATCH_CHECKS, measureRollback } from '../../bench/rollback.js';

const NET = 82;
let p: Pipeline;

interface Report { check: string; kind: string; phase: string; target: string; ok: boolean; attempts: number; ms: number; latencyMs: number; lastError?: string }
interface JsonOk { ok: true; applied: boolean; checks: Report[]; plan: { services: Array<{ live: string; target: string; release: string }> } }
interface JsonFailed { ok: false; error: { message: string; hint?: string; exitCode: number }; checks: Report[] }
interface Status { services: Array<{ loadBalancers: Record<string, string>; recorded?: string; hosts: Record<string, { releases: Record<string, string>; running: Record<string, boolean> }> }>; problems: string[] }

function explain(r: CliResult): string {
  return `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}

/** What beta serves now, on a new connection (no keep-alive connection left idle between tests). */
function served(): Promise<{ release: string; slot: string; version: string }> {
  return new Promise((resolve, reject) => {
    get(`${p.url.beta}/`, { agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(`GET ${p.url.beta}/: status ${res.statusCode}: ${body}`));
        else resolve(JSON.parse(body) as { release: string; slot: string; version: string });
      });
    }).on('timeout', function (this: ClientRequest) { this.destroy(new Error(`GET ${p.url.beta}/: no answer within 5 s`)); })
      .on('error', (err) => reject(new Error(`GET ${p.url.beta}/: ${err.message}`)));
  });
}

async function status(): Promise<Status> {
  const r = await updateserver(p.project.dir, 'status', 'beta', '--json');
  assert.equal(r.code, 0, explain(r));
  return JSON.parse(r.stdout) as Status;
}

async function setChecks(yaml: string): Promise<void> {
  await writeFile(join(p.project.dir, 'healthchecks', 'web.yaml'), yaml);
}

/** A new release of the app (the version, and knob files travelling with it) promoted into dev. */
async function newRelease(version: string, knobs: Record<string, string> = {}): Promise<void> {
  for (const knob of ['health-status', 'startup-delay-ms']) await rm(join(p.appDir, knob), { force: true });
  for (const [knob, value] of Object.entries(knobs)) await writeFile(join(p.appDir, knob), `${value}\n`);
  await writeFile(join(p.appDir, 'VERSION'), `${version}\n`);
  const dev = await updateserver(p.project.dir, 'dev');
  assert.equal(dev.code, 0, explain(dev));
}

/** `updateserver beta --json` with these checks, under load through beta's HAProxy. */
async function promoteUnderLoad(checks: string, ...args: string[]): Promise<{ r: CliResult; load: LoadResult; before: { release: string; slot: string } }> {
  await setChecks(checks);
  const before = await served();
  const load = startLoad(p.url.beta, { connections: 4 });
  try {
    await new Promise((r) => setTimeout(r, 300));
    const r = await updateserver(p.project.dir, 'beta', '--json', ...args);
    await new Promise((r2) => setTimeout(r2, 300));
    return { r, load: await load.stop(), before };
  } finally {
    await load.stop();
  }
}

function assertNoFailures(load: LoadResult): void {
  assert.ok(load.requests > 100, `load generator sent only ${load.requests} requests`);
  assert.equal(load.non2xx, 0, `non-2xx answers: ${JSON.stringify(load)}`);
  assert.equal(load.errors, 0, `socket errors: ${JSON.stringify(load)}`);
  assert.equal(load.timeouts, 0, `timeouts: ${JSON.stringify(load)}`);
}

/**
 * A promotion whose pre checks fail: exit 1, the JSON names the failing check and carries its
 * report, only the live release answered, and the new slot was stopped again on every host.
 */
async function expectPreFailure(checks: string, ...args: string[]): Promise<{ json: JsonFailed; load: LoadResult; r: CliResult }> {
  const { r, load, before } = await promoteUnderLoad(checks, ...args);
  assert.equal(r.code, 1, explain(r));
  assertNoFailures(load);
  const json = JSON.parse(r.stdout) as JsonFailed;
  assert.equal(json.ok, false);
  assert.equal(json.error.exitCode, 1);
  assert.match(json.error.message, /^health-check the idle slot on every host failed: /, explain(r));
  assert.match(json.error.hint ?? '', /live traffic was not touched/);
  assert.deepEqual(Object.keys(load.byRelease), [before.release], 'only the live release answered');
  const now = await served();
  assert.deepEqual({ slot: now.slot, release: now.release }, { slot: before.slot, release: before.release });
  const st = await status();
  for (const h of p.betaHosts) {
    assert.equal(st.services[0]!.hosts[h]!.running[before.slot], true);
    assert.equal(st.services[0]!.hosts[h]!.running[before.slot === 'a' ? 'b' : 'a'], false, `the new slot was stopped again on ${h}`);
  }
  return { json, load, r };
}

const BASIC = 'pre:\n  - name: health\n    http: { path: /health }\n    deadlineMs: 8000\n';

before(async () => {
  p = await startPipeline({
    net: NET, devHealthPath: '/', devHealthDeadlineMs: 10_000,
    betaServiceExtra: '    checks: web', projectFiles: { 'healthchecks/web.yaml': BASIC },
  });
  await newRelease('1.0.0');
  // The first promotion of an empty stage: nothing served before it, so no load yet.
  const beta = await updateserver(p.project.dir, 'beta');
  assert.equal(beta.code, 0, explain(beta));
});

after(async () => {
  await p?.stop();
});

test('a release whose /health answers 500 never receives traffic: exit 1, 0 failed requests, the message names the first failing check and host, --json has its report', async () => {
  await newRelease('1.1.0-broken', { 'health-status': '500' });
  const { json, load, r } = await expectPreFailure([
    'pre:',
    '  - name: port',
    '    tcp: {}',
    '  - name: health',
    '    http: { path: /health }',
    '    deadlineMs: 1500',
    '  - name: never-reached',
    '    command: { run: "true" }',
    '',
  ].join('\n'));
  // Both hosts fail; the first one of the service is named, with the check, its phase and kind.
  assert.match(json.error.message, new RegExp(`beta1: health check health \\(pre, http\\) on beta1 slot [ab] \\(127\\.0\\.${NET}\\.12:800[12]\\) failed: GET http://127\\.0\\.${NET}\\.12:800[12]/health: status 500, expected 200 after \\d+ attempt\\(s\\) in \\d+ ms`));
  const [report] = json.checks;
  assert.equal(json.checks.length, 1);
  assert.deepEqual({ check: report!.check, kind: report!.kind, phase: report!.phase, ok: report!.ok }, { check: 'health', kind: 'http', phase: 'pre', ok: false });
  assert.match(report!.target, /^beta1 slot [ab] /);
  assert.ok(report!.attempts > 1, `retried until the deadline: ${report!.attempts} attempt(s)`);
  assert.ok(report!.ms >= 1500, `failed only at the deadline: ${report!.ms} ms`);
  assert.match(report!.lastError ?? '', /status 500, expected 200/);
  // The console shows every host's failure; the check after the failing one never ran.
  assert.match(r.stderr, /\[beta2\] pre check health on beta2 slot [ab] .*FAILED: .*status 500/);
  assert.doesNotMatch(r.stderr, /never-reached/);
  console.log(`500 on /health: exit 1 after ${r.ms} ms; ${report!.attempts} attempts in ${report!.ms} ms; ${load.requests} requests through HAProxy, 0 failed, all from the live release`);
});

const ALL_KINDS = (version: string) => `pre:
  - name: status
    http: { path: /health, status: [200, 204] }
  - name: body
    http: { path: /health, bodyContains: ok, bodyMatches: "^ok$" }
  - name: version
    http: { path: /, json: { path: version, equals: "${version}" } }
  - name: headers
    http: { path: /, expectHeaders: { X-Slot: "{slot}", X-Release: "{release}" } }
  - name: fast
    http: { path: /slow?ms=20, maxLatencyMs: 500 }
  - name: port
    tcp: {}
  - name: files
    command: { run: "test -f {dir}/server.mjs" }
post:
  - name: via-lb
    http: { path: /, expectHeaders: { X-Slot: "{slot}" } }
  - name: lb-port
    tcp: {}
  - name: files-after
    command: { run: "test -L {dir} && test -f {dir}/VERSION" }
`;

test('every kind passes on a good release: http (status, bodyContains, json, expectHeaders with {slot}, maxLatencyMs), tcp, command, and a post-switch check through the load balancer', async () => {
  await newRelease('1.2.0');
  const { r, load, before } = await promoteUnderLoad(ALL_KINDS('1.2.0'));
  assert.equal(r.code, 0, explain(r));
  assertNoFailures(load);
  const json = JSON.parse(r.stdout) as JsonOk;
  assert.equal(json.ok, true);
  const target = before.slot === 'a' ? 'b' : 'a';
  assert.equal((await served()).slot, target);
  assert.ok(json.checks.every((c) => c.ok), JSON.stringify(json.checks.filter((c) => !c.ok)));
  const seen = json.checks.map((c) => `${c.phase} ${c.check} ${c.kind} ${c.target.split(' ')[0]}`).sort();
  assert.deepEqual(seen, [
    ...['beta1', 'beta2'].flatMap((h) => ['body http', 'files command', 'headers http', 'fast http', 'port tcp', 'status http', 'version http'].map((c) => `pre ${c.split(' ')[0]} ${c.split(' ')[1]} ${h}`)),
    'post files-after command beta1', 'post files-after command beta2', 'post lb-port tcp lb', 'post via-lb http lb',
  ].sort());
  // Post-switch http and tcp checks go through the load balancer's frontend.
  assert.match(json.checks.find((c) => c.check === 'via-lb')!.target, new RegExp(`^lb \\(127\\.0\\.${NET}\\.2:8080\\)$`));
  console.log(`all kinds pass: ${json.checks.length} checks ok, exit 0 in ${r.ms} ms; ${load.requests} requests, 0 failed`);
});

/**
 * One failing check of one kind, in pre. All use release 1.3.0, which the first failure marks bad:
 * the next attempts need --force.
 */
const failing: Array<{ name: string; checks: string; message: RegExp }> = [
  {
    name: 'http status: 200 when only 204 is accepted',
    checks: 'pre:\n  - name: status\n    http: { path: /health, status: [204] }\n    deadlineMs: 800\n',
    message: /status \(pre, http\) on beta1 slot [ab] .* failed: GET http:\/\/\S+\/health: status 200, expected 204 after \d+ attempt/,
  },
  {
    name: 'http bodyContains: the body lacks the text',
    checks: 'pre:\n  - name: body\n    http: { path: /health, bodyContains: all-systems-go }\n    deadlineMs: 800\n',
    message: /body \(pre, http\) .* failed: http:\/\/\S+\/health: body does not contain "all-systems-go"/,
  },
  {
    name: 'http json equals: another version',
    checks: 'pre:\n  - name: version\n    http: { path: /, json: { path: version, equals: "9.9.9" } }\n    deadlineMs: 800\n',
    message: /version \(pre, http\) .* failed: http:\/\/\S+\/: version is "1\.3\.0", expected "9\.9\.9"/,
  },
  {
    name: 'http expectHeaders: X-Slot is not the one expected',
    checks: 'pre:\n  - name: headers\n    http: { path: /, expectHeaders: { X-Slot: "z{slot}" } }\n    deadlineMs: 800\n',
    message: /headers \(pre, http\) .* failed: http:\/\/\S+\/: header X-Slot is "([ab])", expected "z\1"/,
  },
  {
    name: 'http maxLatencyMs: a 300 ms answer with 100 ms allowed',
    // The port check waits for the start; then one attempt (with retries, the deadline would cut the last one short: a timeout).
    checks: 'pre:\n  - name: port\n    tcp: {}\n  - name: fast\n    http: { path: /slow?ms=300, maxLatencyMs: 100 }\n    attempts: 1\n',
    message: /fast \(pre, http\) .* failed: http:\/\/\S+\/slow\?ms=300: answered in \d+ ms, more than 100 ms/,
  },
  {
    name: 'command: a file the release does not have, with the command in the message',
    checks: 'pre:\n  - name: files\n    command: { run: "test -f {dir}/nope" }\n    deadlineMs: 800\n',
    message: /files \(pre, command\) on beta1 slot [ab] .* failed: `test -f \/srv\/web\/[ab]\/nope` exited 1 after \d+ attempt/,
  },
];

for (const [i, f] of failing.entries()) {
  test(`fails before the switch, never reaching users: ${f.name}`, async () => {
    if (i === 0) await newRelease('1.3.0');
    const { json, load } = await expectPreFailure(f.checks, ...(i === 0 ? [] : ['--force']));
    assert.match(json.error.message, f.message);
    assert.equal(json.checks.length, 1);
    assert.equal(json.checks[0]!.ok, false);
    console.log(`${f.name}: exit 1; ${json.checks[0]!.attempts} attempt(s) in ${json.checks[0]!.ms} ms; last error: ${json.checks[0]!.lastError}; ${load.requests} requests, 0 failed`);
  });
}

test('a release marked bad by a failed check is not promoted again without --force', async () => {
  await setChecks(BASIC);
  const r = await updateserver(p.project.dir, 'beta');
  assert.equal(r.code, 1, explain(r));
  assert.match(r.stderr, /web \S+-1\.3\.0-\S+ is marked bad in beta: health-check the idle slot on every host failed: beta1: health check \S+ \(pre, /);
  assert.match(r.stderr, /--force to try this one again/);
  assert.doesNotMatch(r.stderr, /Start the idle slot/);
});

test('a post-switch check through the load balancer that fails switches traffic straight back (automatic rollback), with 0 failed requests', async () => {
  const { r, load, before } = await promoteUnderLoad([
    BASIC,
    'post:',
    '  - name: via-lb',
    '    http: { path: /, expectHeaders: { X-Slot: "wrong" } }',
    '    deadlineMs: 1000',
    '',
  ].join('\n'), '--force');
  assert.equal(r.code, 1, explain(r));
  assertNoFailures(load);
  const json = JSON.parse(r.stdout) as JsonFailed;
  assert.match(json.error.message, /^check the new slot through every load balancer failed: lb: health check via-lb \(post, http\) on lb \(\S+\) failed: http:\/\/\S+:8080\/: header X-Slot is "[ab]", expected "wrong"/);
  assert.match(json.error.message, /traffic was switched back to the previous slot \(automatic rollback\)/);
  assert.equal(json.checks[0]?.phase, 'post');
  assert.match(r.stderr, /automatic rollback done in \d+ ms/);
  const now = await served();
  assert.deepEqual({ slot: now.slot, release: now.release }, { slot: before.slot, release: before.release });
  // The new release did answer while it was live: the post check went through the load balancer to it.
  assert.ok(Object.keys(load.byRelease).some((rel) => rel.includes('1.3.0')), `the new release answered: ${JSON.stringify(load.byRelease)}`);
  console.log(`post check via the load balancer failed: rolled back (${r.stderr.match(/automatic rollback done in \d+ ms/)?.[0]}); ${load.requests} requests, 0 failed, ${JSON.stringify(load.byRelease)}`);
});

test('a release that fails during the watch window is rolled back within 1 s of the failing check; status, history and flip agree', async () => {
  await setChecks(WATCH_CHECKS);
  const run = await measureRollback(p, '1.3.1');
  const { cli, load } = run;
  assert.equal(cli.code, 1, explain(cli));
  const json = JSON.parse(cli.stdout) as JsonFailed;
  assert.match(json.error.message, /^watch the new slot while the old one still runs failed: lb: health check live-health \(watch, http\) on lb \(\S+\) failed: GET http:\/\/\S+:8080\/health: status 500, expected 200 after 1 attempt/, explain(cli));
  assert.match(json.error.message, /automatic rollback/);
  assert.equal(json.checks[0]?.phase, 'watch');
  assert.equal(json.checks[0]?.attempts, 1);
  // Timing: the failing check as logged by the CLI, then the first answer of the old slot.
  assert.ok(run.at.checkFailed !== undefined, `no failing watch check in:\n${cli.stderr}`);
  assert.ok(run.checkToOldSlotMs !== undefined, 'the old slot never answered again');
  assert.ok(run.checkToOldSlotMs <= 1000, `traffic was back on the old slot ${run.checkToOldSlotMs} ms after the failing check`);
  assert.equal(run.newSlotAfterBack, 0, 'once back, traffic stays on the old slot');
  // Load: nothing failed; the new release answered while it was live (its / still answers 200, only /health fails).
  assert.equal(load.errors, 0, JSON.stringify(load));
  assert.equal(load.timeouts, 0, JSON.stringify(load));
  assert.ok(load.non2xx <= (load.byRelease[run.newRelease] ?? 0), `non-2xx answers that the failing release cannot account for: ${JSON.stringify(load)}`);
  assert.equal(load.non2xx, 0, JSON.stringify(load));
  assert.ok((load.byRelease[run.newRelease] ?? 0) > 0, 'the new release took traffic before it failed');
  const oldRelease = Object.keys(load.byRelease).find((rel) => rel !== run.newRelease)!;

  // status: the old slot is live on the load balancer and in the record, running on every host; the new one stopped.
  const st = await status();
  const web = st.services[0]!;
  assert.equal(web.loadBalancers.lb, run.oldSlot);
  assert.equal(web.recorded, run.oldSlot);
  assert.deepEqual(st.problems, []);
  for (const h of p.betaHosts) {
    assert.deepEqual(web.hosts[h]!.running, { [run.oldSlot]: true, [run.newSlot]: false } as Record<string, boolean>);
    assert.equal(web.hosts[h]!.releases[run.oldSlot], oldRelease);
    assert.equal(web.hosts[h]!.releases[run.newSlot], run.newRelease);
  }
  // history: "rolled back" with the reason.
  const history = (await readFile(join(p.project.stateDir, 'history', 'beta.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { result: string; action: string; message?: string; services: Record<string, { release: string }> });
  const last = history[history.length - 1]!;
  assert.equal(last.result, 'rolled back');
  assert.equal(last.action, 'promote');
  assert.equal(last.services.web?.release, run.newRelease);
  assert.match(last.message ?? '', /live-health \(watch, http\) .*status 500/);

  // A manual flip to the idle slot, which holds the bad release, is refused without --force.
  const mapBefore = await readFile(p.lbs.beta.mapFile, 'utf8');
  const flip = await updateserver(p.project.dir, 'flip', 'beta');
  assert.equal(flip.code, 1, explain(flip));
  assert.match(flip.stderr, new RegExp(`slot ${run.newSlot} of web holds ${run.newRelease.replace(/\./g, '\\.')}, which is marked bad: watch the new slot .* failed`));
  assert.match(flip.stderr, /--force/);
  assert.equal(await readFile(p.lbs.beta.mapFile, 'utf8'), mapBefore);
  assert.equal((await served()).slot, run.oldSlot);
  console.log(`watch rollback: failing check -> old slot answers in ${run.checkToOldSlotMs} ms (updateserver: rollback done in ${run.cliRollbackMs} ms; knob -> failing check ${run.knobToCheckMs} ms); ${load.requests} requests, 0 failed, ${load.byRelease[run.newRelease]} answered by the new release`);
});

test('tcp: a pre check on the slot port fails when the app does not listen within the deadline', async () => {
  await newRelease('1.4.0-slow', { 'startup-delay-ms': '3000' });
  const { json, load } = await expectPreFailure('pre:\n  - name: port\n    tcp: {}\n    deadlineMs: 1000\n');
  assert.match(json.error.message, new RegExp(`port \\(pre, tcp\\) on beta1 slot [ab] \\(127\\.0\\.${NET}\\.12:800[12]\\) failed: tcp 127\\.0\\.${NET}\\.12:800[12]: connect ECONNREFUSED`));
  assert.ok(json.checks[0]!.attempts > 1);
  console.log(`tcp before listening: exit 1; ${json.checks[0]!.attempts} attempts in ${json.checks[0]!.ms} ms; ${load.requests} requests, 0 failed`);
});

test('a release that starts slowly (3 s) passes: the pre checks wait within their deadline (8 s), retrying', async () => {
  const { r, load, before } = await promoteUnderLoad([
    'pre:',
    '  - name: port',
    '    tcp: {}',
    '    deadlineMs: 8000',
    '  - name: health',
    '    http: { path: /health }',
    '    deadlineMs: 8000',
    '',
  ].join('\n'), '--force'); // the failed tcp check above marked this release bad
  assert.equal(r.code, 0, explain(r));
  assertNoFailures(load);
  const json = JSON.parse(r.stdout) as JsonOk;
  const ports = json.checks.filter((c) => c.check === 'port');
  assert.equal(ports.length, 2);
  for (const c of ports) {
    assert.equal(c.ok, true);
    assert.ok(c.attempts >= 3, `several attempts: ${c.attempts}`);
    assert.ok(c.ms >= 2500 && c.ms < 8000, `waited for the start: ${c.ms} ms`);
  }
  // Once the port is open, /health answers at once.
  for (const c of json.checks.filter((x) => x.check === 'health')) assert.equal(c.ok, true);
  const now = await served();
  assert.notEqual(now.slot, before.slot);
  assert.equal(now.version, '1.4.0-slow');
  console.log(`slow start (3000 ms): exit 0; tcp waited ${ports.map((c) => `${c.attempts} attempts/${c.ms} ms`).join(', ')}; ${load.requests} requests, 0 failed`);
});

test('sql checks: refused before any connection while the service has no database (exit 2, naming the file and the check)', async () => {
  await setChecks('pre:\n  - name: users\n    sql: { query: "select count(*) from users", expect: "1" }\n');
  try {
    const r = await updateserver(p.project.dir, 'beta', '--json');
    assert.equal(r.code, 2, explain(r));
    const json = JSON.parse(r.stdout) as JsonFailed;
    assert.match(json.error.message, /^profiles\/beta\.yaml:\d+: services\.web\.checks: check "users" in healthchecks\/web\.yaml is an sql check, but service web has no database$/);
    assert.doesNotMatch(r.stderr, /connecting to/);
    const dry = await updateserver(p.project.dir, 'beta', '--dry-run');
    assert.equal(dry.code, 2, explain(dry));
  } finally {
    await setChecks(BASIC);
  }
});
