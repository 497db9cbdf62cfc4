/*
 * The console's pieces without a server (issue 22): password hashes, the users file's errors, sessions
 * and CSRF tokens, escaping, the OpenMetrics text and --listen. The whole console over HTTP:
 * test/integration/console.test.ts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { hashPassword, verifyPassword } from '../../src/serve/passwords.js';
import { loadUsers, rightOn } from '../../src/serve/users.js';
import { Sessions, cookieOf, csrfMatches, sessionCookie } from '../../src/serve/sessions.js';
import { esc } from '../../src/serve/html.js';
import { renderMetrics } from '../../src/serve/metrics.js';
import { pipelinePage } from '../../src/serve/pages.js';
import { parseListen } from '../../src/cli/serve.js';
import { ConfigError } from '../../src/errors.js';

describe('passwords', () => {
  test('a hash verifies its password only, and never holds the password', async () => {
    const h = await hashPassword('correct horse battery');
    assert.match(h, /^scrypt\$16384\$8\$1\$/);
    assert.ok(!h.includes('correct horse'));
    assert.equal(await verifyPassword('correct horse battery', h), true);
    assert.equal(await verifyPassword('correct horse batterY', h), false);
    assert.equal(await verifyPassword('correct horse battery', undefined), false, 'an unknown user never signs in');
    assert.notEqual(await hashPassword('correct horse battery'), h, 'salted');
  });

  test('a hostile cost in the file is refused rather than computed', async () => {
    assert.equal(await verifyPassword('x', `scrypt$${2 ** 30}$8$1$${Buffer.alloc(16).toString('base64')}$${Buffer.alloc(32).toString('base64')}`), false);
  });
});

describe('users file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'updateserver-users-'));
  const file = (name: string, text: string) => { const f = join(dir, name); writeFileSync(f, text); return f; };

  test('rights per stage, with "*" for the stages not named', async () => {
    const h = await hashPassword('a long enough password');
    const users = await loadUsers(file('ok.yaml', `users:\n  alice: { password: "${h}", stages: { prod: view, "*": release } }\n`));
    const alice = users.get('alice')!;
    assert.deepEqual([rightOn(alice, 'prod'), rightOn(alice, 'beta')], ['view', 'release']);
    const bob = (await loadUsers(file('bob.yaml', `users:\n  bob: { password: "${h}", stages: { beta: view } }\n`))).get('bob')!;
    assert.equal(rightOn(bob, 'prod'), undefined);
    assert.equal(rightOn(bob, 'constructor'), undefined, 'a prototype name is no stage');
  });

  test('a plain password, an unknown right or key is refused naming the file and the field', async () => {
    for (const [text, path] of [
      ['users:\n  alice: { password: hunter2, stages: { beta: view } }\n', 'users.alice.password'],
      ['users:\n  alice: { password: "scrypt$1$1$1$AA==$AA==", stages: { beta: admin } }\n', 'users.alice.stages.beta'],
      ['users:\n  alice: { password: "scrypt$1$1$1$AA==$AA==", stages: {}, admin: true }\n', 'users.alice.admin'],
    ] as const) {
      const f = file('bad.yaml', text);
      await assert.rejects(loadUsers(f), (err: unknown) => err instanceof ConfigError && err.issues.some((i) => i.file === f && i.path === path), text);
    }
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('sessions', () => {
  test('a session is found by its cookie, expires when idle, and its CSRF token is its own', () => {
    let now = 0;
    const sessions = new Sessions(() => now);
    const a = sessions.create('alice');
    const b = sessions.create('bob');
    const cookie = sessionCookie(a, false).split(';')[0]!;
    assert.equal(sessions.find(`other=1; ${cookie}`)?.user, 'alice');
    assert.equal(csrfMatches(a, a.csrf), true);
    assert.equal(csrfMatches(a, b.csrf), false);
    assert.equal(csrfMatches(a, undefined), false);
    now += 9 * 3600_000;
    assert.equal(sessions.find(cookie), undefined, 'idle too long');
    assert.match(sessionCookie(b, true), /HttpOnly; SameSite=Strict; Secure$/);
    assert.equal(cookieOf('a=1; b=2', 'b'), '2');
  });
});

test('esc: markup in a release name or a message is text', () => {
  assert.equal(esc('<script>"x"&\'</script>'), '&lt;script&gt;&quot;x&quot;&amp;&#39;&lt;/script&gt;');
});

test('metrics: label values escaped, an info family for the live slot, and the closing # EOF', () => {
  const text = renderMetrics([{
    view: { stage: 'beta', from: 'dev', hosts: 1, lock: undefined, lastRun: undefined, rollout: undefined, services: [{ service: 'web', live: 'b', liveRelease: 'r"1\\x', incoming: undefined, slots: [] }] },
    history: [{ at: '', stage: 'beta', action: 'promote', result: 'ok', user: 'u', services: {}, durationMs: 1500 }],
    timings: [{ phase: 'switch', ms: 3 }],
  }]);
  assert.match(text, /^updateserver_live_info\{stage="beta",service="web",slot="b",release="r\\"1\\\\x"\} 1$/m);
  assert.match(text, /^updateserver_runs_total\{stage="beta",action="promote",result="ok"\} 1$/m);
  assert.match(text, /^updateserver_last_run_duration_seconds\{stage="beta"\} 1\.5$/m);
  assert.ok(text.endsWith('# EOF\n'));
});

test('--listen: host:port, IPv6 in brackets; anything else is bad input', () => {
  assert.deepEqual(parseListen('127.0.0.1:8700'), { host: '127.0.0.1', port: 8700 });
  assert.deepEqual(parseListen('[::1]:9000'), { host: '::1', port: 9000 });
  for (const bad of ['8700', 'host:0', 'host:70000', ':80']) assert.throws(() => parseListen(bad), ConfigError, bad);
});

test('pipeline page: a paused rollout of the lock holder is shown with its step and a link to answer it (release right only)', () => {
  const view = {
    stage: 'prod', from: 'beta', hosts: 1, lock: 'ops@m (pid 7) since t', lastRun: undefined,
    rollout: { service: 'web', step: 2, steps: 3, weight: 25, state: 'paused' as const },
    services: [{ service: 'web', live: 'a' as const, liveRelease: 'r1', incoming: undefined, slots: [] }],
  };
  const releaser = pipelinePage('alice', 'tok', [{ view, right: 'release' }]);
  assert.match(releaser, /Rollout of web: <strong>paused<\/strong> at step 2 of 3 \(25% to the new slot\) · <a href="\/stages\/prod\/rollout">continue or abort it<\/a>/);
  const viewer = pipelinePage('bob', 'tok', [{ view, right: 'view' }]);
  assert.match(viewer, /<a href="\/stages\/prod\/rollout">where it stands<\/a>/);
  assert.doesNotMatch(pipelinePage('alice', 'tok', [{ view: { ...view, rollout: undefined }, right: 'release' }]), /Rollout of/);
});

test('metrics: a rollout\'s step, weight, pause and gate figures, new slot against old; none without a rollout', () => {
  const counters = (responses: number, http5xx: number) => ({ responses, http5xx, errors: 0, rtimeMs: 3 });
  const view = {
    stage: 'prod', from: 'beta', hosts: 1, lock: 'ops@m (pid 7) since t', lastRun: undefined,
    rollout: { service: 'web', step: 2, steps: 3, weight: 25, state: 'hold' as const, figures: {
      old: counters(300, 0), new: counters(100, 2), share: 0.25, rate5xx: { old: 0, new: 0.02 }, errorRate: { old: 0, new: 0 }, latencyRatio: Infinity,
    } },
    services: [{ service: 'web', live: 'a' as const, liveRelease: 'r1', incoming: undefined, slots: [] }],
  };
  const text = renderMetrics([{ view, history: [], timings: undefined }]);
  assert.match(text, /^updateserver_rollout_step\{stage="prod",service="web"\} 2$/m);
  assert.match(text, /^updateserver_rollout_weight_percent\{stage="prod",service="web"\} 25$/m);
  assert.match(text, /^updateserver_rollout_paused\{stage="prod",service="web"\} 0$/m);
  assert.match(text, /^updateserver_rollout_5xx_rate\{stage="prod",service="web",slot="new"\} 0.02$/m);
  assert.match(text, /^updateserver_rollout_responses\{stage="prod",service="web",slot="old"\} 300$/m);
  // An infinite ratio (the old slot answered in 0 ms) is no sample: OpenMetrics spells infinity +Inf, not Infinity.
  assert.doesNotMatch(text, /Infinity|updateserver_rollout_latency_ratio\{/);
  assert.doesNotMatch(renderMetrics([{ view: { ...view, rollout: undefined }, history: [], timings: undefined }]), /^updateserver_rollout_step\{/m);
  // The reference parser (Python's prometheus_client, installed by the bootstrap) takes it.
  const parsed = spawnSync('/usr/bin/python3', ['-c', 'import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families\nprint(sum(len(f.samples) for f in text_string_to_metric_families(sys.stdin.read())))'], { input: text, encoding: 'utf8' });
  assert.equal(parsed.status, 0, parsed.stderr);
  assert.equal(Number(parsed.stdout.trim()), 13);
});
