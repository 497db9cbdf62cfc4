/*
 * The health-check file format (healthchecks/<name>.yaml): valid files load with every default
 * filled in; broken ones are refused naming the file, the line and the path of the problem; a
 * profile that references a missing file, or an sql check without a database, is refused too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkKind, defaultChecks, loadHealthchecks, type HealthChecks } from '../../src/config/healthchecks.js';
import { loadProfile } from '../../src/config/load.js';
import type { Project } from '../../src/config/model.js';
import { ConfigError, HealthCheckFailed } from '../../src/errors.js';
import { retryOf, runCheck, type CheckReport } from '../../src/health/checks.js';

const REF = { file: 'profiles/beta.yaml', path: 'services.web.checks', line: 30 };

async function withProject<T>(files: Record<string, string>, body: (project: Project) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'updateserver-healthchecks-'));
  try {
    await mkdir(join(dir, 'healthchecks'));
    await mkdir(join(dir, 'profiles'));
    for (const [file, text] of Object.entries(files)) await writeFile(join(dir, file), text);
    return await body({ dir, stateDir: join(dir, '.updateserver') });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const load = (text: string, name = 'web'): Promise<HealthChecks> =>
  withProject({ [`healthchecks/${name}.yaml`]: text }, (project) => loadHealthchecks(project, name, REF));

/** Loads a broken file and returns its ConfigError (the test fails if the file is accepted). */
async function refused(text: string, name = 'web'): Promise<ConfigError> {
  try {
    await load(text, name);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail(`healthchecks/${name}.yaml was accepted:\n${text}`);
}

test('a minimal file loads with every default: GET /health expecting 200, empty post, no watch window', async () => {
  const checks = await load('pre:\n  - name: up\n    http: {}\n');
  assert.deepEqual(checks, {
    pre: [{ name: 'up', http: { path: '/health', method: 'GET', headers: {}, status: [200], expectHeaders: {} } }],
    post: [],
    watch: { windowMs: 0, intervalMs: 250, checks: [] },
  });
  // Retry settings left out of the file come from the phase: pre waits up to 15 s for a slow start.
  assert.deepEqual(retryOf(checks.pre[0]!, 'pre'), { attempts: 1_000_000, intervalMs: 100, backoff: 1.3, deadlineMs: 15_000, attemptTimeoutMs: 1000 });
  assert.deepEqual(retryOf(checks.pre[0]!, 'post'), { attempts: 1_000_000, intervalMs: 100, backoff: 1.3, deadlineMs: 1500, attemptTimeoutMs: 1000 });
  // While watching, a single failed answer fails the check.
  assert.equal(retryOf(checks.pre[0]!, 'watch').attempts, 1);
});

test('an empty map and an empty watch section are valid: nothing is checked beyond the defaults', async () => {
  assert.deepEqual(await load('{}\n'), { pre: [], post: [], watch: { windowMs: 0, intervalMs: 250, checks: [] } });
  assert.deepEqual((await load('watch: { windowMs: 6000 }\n')).watch, { windowMs: 6000, intervalMs: 250, checks: [] });
});

test('a complete file with every kind and phase loads as written', async () => {
  const checks = await load([
    'pre:',
    '  - name: health',
    '    http:',
    '      path: /health?deep=1',
    '      method: POST',
    '      headers: { X-Probe: updateserver }',
    '      body: "{}"',
    '      status: [200, 204]',
    '      bodyContains: ok',
    '      bodyMatches: "^o+k$"',
    '      expectHeaders: { X-Slot: "{slot}", X-Release: "{release}" }',
    '      maxLatencyMs: 250',
    '    deadlineMs: 8000',
    '    intervalMs: 50',
    '    backoff: 1',
    '    attemptTimeoutMs: 500',
    '  - name: version',
    '    http: { path: /, json: { path: build.version, equals: "1.2.0" } }',
    '  - name: port',
    '    tcp: {}',
    '    attempts: 3',
    '  - name: files',
    '    command: { run: "test -f {dir}/server.mjs" }',
    'post:',
    '  - name: via-lb',
    '    http: { expectHeaders: { X-Slot: "{slot}" } }',
    'watch:',
    '  windowMs: 6000',
    '  intervalMs: 100',
    '  checks:',
    '    - name: still-healthy',
    '      http: { path: /health }',
    '',
  ].join('\n'));
  const [health, version, port, files] = checks.pre;
  assert.deepEqual(health, {
    name: 'health',
    http: {
      path: '/health?deep=1', method: 'POST', headers: { 'X-Probe': 'updateserver' }, body: '{}', status: [200, 204],
      bodyContains: 'ok', bodyMatches: '^o+k$', expectHeaders: { 'X-Slot': '{slot}', 'X-Release': '{release}' }, maxLatencyMs: 250,
    },
    deadlineMs: 8000, intervalMs: 50, backoff: 1, attemptTimeoutMs: 500,
  });
  assert.deepEqual(retryOf(health!, 'pre'), { attempts: 1_000_000, intervalMs: 50, backoff: 1, deadlineMs: 8000, attemptTimeoutMs: 500 });
  assert.deepEqual(version?.http?.json, { path: 'build.version', equals: '1.2.0' });
  assert.deepEqual(checks.pre.map(checkKind), ['http', 'http', 'tcp', 'command']);
  assert.equal(port?.attempts, 3);
  assert.equal(files?.command?.run, 'test -f {dir}/server.mjs');
  assert.deepEqual(checks.post.map((c) => c.name), ['via-lb']);
  assert.equal(checks.watch.windowMs, 6000);
  assert.equal(checks.watch.intervalMs, 100);
  assert.deepEqual(checks.watch.checks.map((c) => [c.name, checkKind(c)]), [['still-healthy', 'http']]);
});

test('json equals accepts a string, a number, a boolean or null; sql parses (it is checked against the profile later)', async () => {
  const checks = await load([
    'pre:',
    '  - { name: s, http: { json: { path: a, equals: "x" } } }',
    '  - { name: n, http: { json: { path: a, equals: 3 } } }',
    '  - { name: b, http: { json: { path: a, equals: true } } }',
    '  - { name: z, http: { json: { path: a, equals: null } } }',
    '  - { name: rows, sql: { query: "select count(*) from users", expect: "1" } }',
    '',
  ].join('\n'));
  assert.deepEqual(checks.pre.slice(0, 4).map((c) => c.http?.json?.equals), ['x', 3, true, null]);
  assert.equal(checkKind(checks.pre[4]!), 'sql');
});

test('without a health-check file, the profile\'s health: becomes one pre check and one post check', () => {
  const checks = defaultChecks({ path: '/healthz', expectStatus: [200, 204], attemptTimeoutMs: 700, intervalMs: 50, deadlineMs: 9000 });
  assert.deepEqual(checks.pre, [{ name: 'health', http: { path: '/healthz', method: 'GET', headers: {}, status: [200, 204], expectHeaders: {} }, intervalMs: 50, deadlineMs: 9000, attemptTimeoutMs: 700 }]);
  assert.deepEqual(checks.post.map((c) => [c.name, c.http?.path]), [['health', '/healthz']]);
  assert.equal(checks.watch.windowMs, 0);
});

// Broken files: each is refused as "healthchecks/<name>.yaml:<line>: <path>: <message>".

test('a check without a kind is refused with file, line and path', async () => {
  const err = await refused('pre:\n  - name: up\n    deadlineMs: 1000\n');
  assert.equal(err.exitCode, 2);
  assert.deepEqual(err.issues, [{ file: 'healthchecks/web.yaml', path: 'pre.0', line: 2, message: 'expected exactly one of http, tcp, command or sql' }]);
  assert.equal(err.message, 'healthchecks/web.yaml:2: pre.0: expected exactly one of http, tcp, command or sql');
});

test('a check with two kinds is refused, in whichever phase it is', async () => {
  const pre = await refused('pre:\n  - name: ok\n    tcp: {}\n  - name: both\n    http: {}\n    tcp: {}\n');
  assert.deepEqual(pre.issues, [{ file: 'healthchecks/web.yaml', path: 'pre.1', line: 4, message: 'expected exactly one of http, tcp, command or sql' }]);
  const watch = await refused('watch:\n  windowMs: 1000\n  checks:\n    - name: both\n      tcp: {}\n      command: { run: "true" }\n');
  assert.match(watch.message, /^healthchecks\/web\.yaml:4: watch\.checks\.0: expected exactly one of http, tcp, command or sql$/);
});

test('an unknown key is refused, listing the keys allowed at that place', async () => {
  const err = await refused('pre:\n  - name: up\n    tcp: {}\n    timeout: 5\n');
  assert.equal(err.message, 'healthchecks/web.yaml:4: pre.0.timeout: unknown key (allowed here: name, http, tcp, command, sql, attempts, intervalMs, backoff, deadlineMs, attemptTimeoutMs)');
  const inHttp = await refused('post:\n  - name: up\n    http:\n      expectStatus: [200]\n');
  assert.match(inHttp.message, /^healthchecks\/web\.yaml:4: post\.0\.http\.expectStatus: unknown key \(allowed here: path, method, headers, body, status, bodyContains, bodyMatches, json, expectHeaders, maxLatencyMs\)$/);
  const inWatch = await refused('watch:\n  windowMs: 10\n  interval: 5\n');
  assert.equal(inWatch.message, 'healthchecks/web.yaml:3: watch.interval: unknown key (allowed here: windowMs, intervalMs, checks)');
  const top = await refused('pre: []\nchecks: []\n');
  assert.equal(top.message, 'healthchecks/web.yaml:2: checks: unknown key (allowed here: pre, post, watch)');
  // A tcp or command check has no http settings of its own.
  const tcp = await refused('pre:\n  - name: port\n    tcp: { port: 8001 }\n');
  assert.equal(tcp.message, 'healthchecks/web.yaml:3: pre.0.tcp.port: unknown key (allowed here: )');
});

test('a bodyMatches that is not a regular expression is refused', async () => {
  const err = await refused('post:\n  - name: body\n    http:\n      bodyMatches: "(unclosed"\n');
  assert.deepEqual(err.issues, [{ file: 'healthchecks/web.yaml', path: 'post.0.http.bodyMatches', line: 4, message: 'expected a regular expression' }]);
});

test('a bad status is refused: out of 100-599, not a list, or an empty list', async () => {
  const tooBig = await refused('pre:\n  - name: up\n    http: { status: [200, 700] }\n');
  assert.equal(tooBig.issues.length, 1);
  assert.deepEqual({ ...tooBig.issues[0], message: undefined }, { file: 'healthchecks/web.yaml', path: 'pre.0.http.status.1', line: 3, message: undefined });
  assert.match(tooBig.issues[0]!.message, /599/);
  const tooSmall = await refused('pre:\n  - name: up\n    http: { status: [99] }\n');
  assert.match(tooSmall.message, /^healthchecks\/web\.yaml:3: pre\.0\.http\.status\.0: .*100/);
  const notList = await refused('pre:\n  - name: up\n    http: { status: 200 }\n');
  assert.match(notList.message, /^healthchecks\/web\.yaml:3: pre\.0\.http\.status: expected a list, found the integer 200$/);
  const notInt = await refused('pre:\n  - name: up\n    http: { status: [200.5] }\n');
  assert.match(notInt.message, /^healthchecks\/web\.yaml:3: pre\.0\.http\.status\.0: /);
  const empty = await refused('pre:\n  - name: up\n    http: { status: [] }\n');
  assert.match(empty.message, /^healthchecks\/web\.yaml:3: pre\.0\.http\.status: /);
});

test('other broken values are refused with their path: name, path, method, header name, durations, command', async () => {
  const cases: Array<[string, RegExp]> = [
    ['pre:\n  - name: Up!\n    tcp: {}\n', /^healthchecks\/web\.yaml:2: pre\.0\.name: expected a name of lowercase letters/],
    ['pre:\n  - tcp: {}\n', /^healthchecks\/web\.yaml:2: pre\.0\.name: /],
    ['pre:\n  - name: up\n    http: { path: health }\n', /^healthchecks\/web\.yaml:3: pre\.0\.http\.path: expected a URL path starting with "\/"$/],
    ['pre:\n  - name: up\n    http: { method: FETCH }\n', /^healthchecks\/web\.yaml:3: pre\.0\.http\.method: /],
    ['pre:\n  - name: up\n    http: { expectHeaders: { "X Slot": a } }\n', /^healthchecks\/web\.yaml:3: pre\.0\.http\.expectHeaders(\.X Slot)?: .*header name/],
    ['pre:\n  - name: up\n    tcp: {}\n    deadlineMs: -1\n', /^healthchecks\/web\.yaml:4: pre\.0\.deadlineMs: expected a duration in milliseconds/],
    ['pre:\n  - name: up\n    tcp: {}\n    intervalMs: 1.5\n', /^healthchecks\/web\.yaml:4: pre\.0\.intervalMs: expected a duration in milliseconds/],
    ['watch:\n  windowMs: 99999999\n', /^healthchecks\/web\.yaml:2: watch\.windowMs: expected a duration in milliseconds \(integer 0-3600000\)$/],
    ['pre:\n  - name: up\n    command: { run: "a\\nb" }\n', /^healthchecks\/web\.yaml:3: pre\.0\.command\.run: the value holds a line break; only one line is allowed here$/],
    ['pre:\n  - name: up\n    http: { json: { path: a } }\n', /^healthchecks\/web\.yaml:3: pre\.0\.http\.json\.equals: /],
    ['pre: {}\n', /^healthchecks\/web\.yaml:1: pre: expected a list, found a map$/],
  ];
  for (const [text, expected] of cases) {
    const err = await refused(text);
    assert.match(err.message, expected, `for:\n${text}`);
  }
});

test('a file that is not a map of settings, or not YAML, is refused', async () => {
  assert.equal((await refused('')).message, 'healthchecks/web.yaml: expected a map of settings (pre, post, watch); the file is empty');
  assert.equal((await refused('- name: up\n')).message, 'healthchecks/web.yaml:1: expected a map of settings (pre, post, watch); found a list');
  assert.equal((await refused('pre: []\npre: []\n')).message, 'healthchecks/web.yaml:2: pre: the key "pre" is given twice in this map (first on line 1); keep one');
  assert.match((await refused('pre: [\n')).message, /^healthchecks\/web\.yaml:\d+: invalid YAML: /);
});

test('every problem of a file is reported at once', async () => {
  const err = await refused('pre:\n  - name: a\n  - name: b\n    tcp: {}\n    extra: 1\npost:\n  - name: c\n    http: { status: [1] }\n');
  assert.deepEqual(err.issues.map((i) => `${i.line}: ${i.path}`), ['2: pre.0', '5: pre.1.extra', '8: post.0.http.status.0']);
});

test('a missing health-check file is refused at the reference in the profile', async () => {
  await withProject({}, async (project) => {
    await assert.rejects(loadHealthchecks(project, 'nope', REF), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.message, 'profiles/beta.yaml:30: services.web.checks: no such health-check file: healthchecks/nope.yaml');
      assert.match(err.hint ?? '', /create healthchecks\/nope\.yaml/);
      return true;
    });
  });
});

const PROFILE = (extra = '') => `source: { path: app }
hosts:
  web1: { address: 127.0.0.9 }
loadBalancers:
  lb: { socket: run/admin.sock, mapFile: run/slots.map }
services:
  web:
    hosts: [web1]
    root: /srv/web
    listen: 8080
    slots:
      a: { port: 8001 }
      b: { port: 8002 }
    start: ./server --port {port}
    checks: web
${extra}`;

test('a profile takes its checks from the file it names; a broken file fails the profile with the file\'s own path', async () => {
  const stage = await withProject({
    'profiles/dev.yaml': PROFILE(),
    'healthchecks/web.yaml': 'pre:\n  - { name: port, tcp: {} }\nwatch: { windowMs: 3000, checks: [{ name: up, http: {} }] }\n',
  }, (project) => loadProfile(project, 'dev'));
  assert.deepEqual(stage.services.web!.checks.pre.map((c) => c.name), ['port']);
  assert.equal(stage.services.web!.checks.watch.windowMs, 3000);

  await withProject({ 'profiles/dev.yaml': PROFILE(), 'healthchecks/web.yaml': 'pre:\n  - { name: port }\n' }, async (project) => {
    await assert.rejects(loadProfile(project, 'dev'), /^ConfigError: healthchecks\/web\.yaml:2: pre\.0: expected exactly one of http, tcp, command or sql$/);
  });
  await withProject({ 'profiles/dev.yaml': PROFILE().replace('checks: web', 'checks: Web') }, async (project) => {
    await assert.rejects(loadProfile(project, 'dev'), /profiles\/dev\.yaml:15: services\.web\.checks: expected a name/);
  });
});

test('sql checks: refused for a service without a database; with one, a target without its database fails the check at once', async () => {
  const sqlFile = 'pre:\n  - { name: port, tcp: {} }\n  - { name: users, sql: { query: "select count(*) from users", expect: "1" } }\n';
  await withProject({ 'profiles/dev.yaml': PROFILE(), 'healthchecks/web.yaml': sqlFile }, async (project) => {
    await assert.rejects(loadProfile(project, 'dev'), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.exitCode, 2);
      assert.equal(err.message, 'profiles/dev.yaml:15: services.web.checks: check "users" in healthchecks/web.yaml is an sql check, but service web has no database');
      return true;
    });
  });
  // With a database the profile loads...
  const stage = await withProject({
    'profiles/dev.yaml': PROFILE('    database: { engine: postgres, strategy: none }\n'),
    'healthchecks/web.yaml': sqlFile,
  }, (project) => loadProfile(project, 'dev'));
  const sql = stage.services.web!.checks.pre[1]!;
  assert.equal(checkKind(sql), 'sql');
  // ...and a check whose target carries no database (the plan adds the slot's) fails at its first attempt.
  const target = { label: 'web1 slot a', host: 'web1', address: '127.0.0.9', port: 8001, slot: 'a', release: 'r1' };
  const err = await runCheck(sql, 'pre', target).then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof HealthCheckFailed);
  const report = (err as unknown as { report: CheckReport }).report;
  assert.equal(report.ok, false);
  assert.equal(report.attempts, 1);
  assert.equal(report.lastError, 'an sql check needs the slot\'s database; this service has none');
  assert.match(err.message, /^web1: health check users \(pre, sql\) on web1 slot a failed: an sql check needs the slot's database/);
});

test('an http attempt that times out names the request in its error', async () => {
  const { createServer } = await import('node:http');
  const server = createServer((_req, res) => { setTimeout(() => res.end('late'), 400).unref(); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const port = (server.address() as { port: number }).port;
    const checks = await load('pre:\n  - name: slow\n    http: { path: /health }\n    attempts: 1\n    attemptTimeoutMs: 100\n');
    const err = await runCheck(checks.pre[0]!, 'pre', { label: 'local', host: 'local', address: '127.0.0.1', port, slot: 'a', release: 'r1' }).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof HealthCheckFailed);
    const report = (err as unknown as { report: CheckReport }).report;
    assert.equal(report.attempts, 1);
    assert.equal(report.lastError, `GET http://127.0.0.1:${port}/health: no answer within 100 ms`);
  } finally {
    server.closeAllConnections();
    server.close();
  }
});
