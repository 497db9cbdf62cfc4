/*
 * Progressive rollouts (issue 20): the gate arithmetic over HAProxy's counters, the profile's and the
 * command line's refusals (exit 2, naming file, field and service), and the plan's rollout phase with
 * its failure path (weight 0 first, then the old backend).
 */
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadProfile } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { parseShowStat } from '../../src/lb/stat.js';
import { countersOf, judge, sumWindows, windowMeanMs, windowOf, type BackendCounters } from '../../src/rollout/gates.js';
import { DEFAULT_GATES, parseSteps, rolloutOf } from '../../src/rollout/profile.js';
import { rolloutPhase } from '../../src/plan/rollout.js';
import { failurePathOf, failurePaths } from '../../src/plan/failure.js';
import { renderPlan } from '../../src/plan/render.js';
import type { Plan, ServicePlan } from '../../src/plan/plan.js';
import { spawnCli } from '../lab/spawn-cli.js';
import { betaProfileDir } from './fixtures.js';

const w = (responses: number, http5xx = 0, errors = 0, rtimeMs = 2): BackendCounters => ({ responses, http5xx, errors, rtimeMs });

test('a clean window passes; its share is the new slot\'s part of all requests', () => {
  const v = judge(DEFAULT_GATES, w(1900), w(100), false);
  assert.equal(v.result, 'pass');
  assert.equal(v.figures.share, 0.05);
});

test('5% of 500s on the new slot fails max5xxRate with both slots\' figures', () => {
  const v = judge(DEFAULT_GATES, w(1900, 0), w(200, 10), false);
  assert.equal(v.result, 'fail');
  assert.ok(v.result === 'fail' && v.gate === 'max5xxRate');
  assert.match(v.result === 'fail' ? v.message : '', /5xx answers on the new slot 5\.00% \(10 of 200\) > max5xxRate 1\.00%; old slot 0\.00% \(0 of 1900\)/);
});

test('errors count in the whole and fail maxErrorRate', () => {
  const v = judge(DEFAULT_GATES, w(1000), w(190, 0, 10), false);
  assert.ok(v.result === 'fail' && v.gate === 'maxErrorRate', JSON.stringify(v));
  assert.equal(v.figures.errorRate.new, 0.05);
});

test('latency: 200 ms slower fails the ratio; 1 ms against 3 ms does not (floor)', () => {
  const slow = judge(DEFAULT_GATES, w(1000, 0, 0, 2), w(200, 0, 0, 205), false);
  assert.ok(slow.result === 'fail' && slow.gate === 'maxLatencyRatio', JSON.stringify(slow));
  assert.match(slow.result === 'fail' ? slow.message : '', /205 ms vs 2 ms on the old slot: ratio 20\.50 > maxLatencyRatio 1\.5/);
  assert.equal(judge(DEFAULT_GATES, w(1000, 0, 0, 1), w(200, 0, 0, 3), false).result, 'pass');
});

test('too few requests: wait until the deadline, then judged as onTooFew says', () => {
  assert.equal(judge(DEFAULT_GATES, w(1000), w(20, 20), false).result, 'too-few');
  const failed = judge(DEFAULT_GATES, w(1000), w(20), true);
  assert.ok(failed.result === 'fail' && failed.gate === 'minRequests');
  const none = judge(DEFAULT_GATES, w(1000), w(0), true);
  assert.match(none.result === 'fail' ? none.message : '', /only 0 request\(s\).*the old slot answered 1000: does every frontend .* have the rollout lines/);
  assert.equal(judge({ ...DEFAULT_GATES, onTooFew: 'pass' }, w(1000), w(20), true).result, 'pass');
});

test('counters: a reload restarts them (counted from zero); load balancers add up, rtime weighted by requests', () => {
  const a = windowOf(w(100, 5, 1, 3), w(160, 6, 1, 4));
  assert.deepEqual({ ...a, rtimeMs: Math.round(a.rtimeMs), rtimeErrMs: Math.round(a.rtimeErrMs!) }, { ...w(60, 1, 0, 12), rtimeErrMs: 17 });
  const reloaded = windowOf(w(100, 5, 1, 3), w(30, 0, 0, 4));
  assert.equal(reloaded.responses, 30);
  assert.equal(Math.round(reloaded.rtimeMs), 70);
  assert.deepEqual(sumWindows([w(100, 1, 0, 10), w(300, 0, 2, 20)]), { ...w(400, 1, 2, 17.5), rtimeErrMs: 0 });
});

test('the window\'s own mean response time is recovered from HAProxy\'s sliding average at both ends', () => {
  // A slot that served 5000 fast requests (2 ms) earlier, then 40 requests of 200 ms: rtime alone says ~17 ms.
  let avg = 2;
  for (let i = 0; i < 40; i++) avg += (200 - avg) / 512;
  assert.ok(avg < 20, String(avg));
  assert.ok(Math.abs(windowMeanMs(2, avg, 40) - 200) < 0.001);
  // HAProxy prints whole milliseconds: the estimate stays near.
  assert.ok(Math.abs(windowMeanMs(2, Math.round(avg), 40) - 200) < 10);
});

test('countersOf reads a backend\'s BACKEND row of show stat', () => {
  const text = '# pxname,svname,qcur,scur,status,weight,econ,eresp,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,rtime,type,\n'
    + 'web_b,beta1,0,0,UP,1,0,0,0,90,0,0,5,0,7,2,\n'
    + 'web_b,BACKEND,0,0,UP,1,1,2,0,180,0,3,10,0,9,1,\n';
  assert.deepEqual(countersOf(parseShowStat(text), 'web_b'), { responses: 193, http5xx: 10, errors: 3, rtimeMs: 9 });
  assert.deepEqual(countersOf(parseShowStat(text), 'web_a'), w(0, 0, 0, 0));
});

const profileDir = (service: string[]): string => betaProfileDir(service, 'updateserver-rollout-');

async function loadError(service: string[]): Promise<ConfigError> {
  const dir = profileDir(service);
  try {
    await loadProfile({ dir, stateDir: join(dir, '.s') }, 'beta');
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    assert.equal(err.exitCode, 2);
    return err;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  throw new Error('the profile loaded');
}

test('profile: a rollout with database strategy copy or copy-self is refused, naming the file, the field and the service', async () => {
  for (const strategy of ['copy', 'copy-self']) {
    const err = await loadError([`    database: { engine: postgres, strategy: ${strategy} }`, '    rollout: { steps: [{ weight: 5 }] }']);
    assert.match(err.message, /beta\.yaml/);
    assert.match(err.message, /services\.web\.rollout/);
    assert.match(err.message, new RegExp(`service web: .*strategy ${strategy}.*writes would split between two databases`));
  }
});

test('profile: bad steps and gates are refused with their field', async () => {
  assert.match((await loadError(['    rollout: { steps: [{ weight: 100 }] }'])).message, /services\.web\.rollout\.steps\.0\.weight.*between 1 and 99/s);
  assert.match((await loadError(['    rollout: { steps: [] }'])).message, /services\.web\.rollout\.steps.*at least one step/s);
  assert.match((await loadError(['    rollout: { steps: [{ weight: 5 }], gates: { max5xxRate: 2 } }'])).message, /gates\.max5xxRate.*between 0 and 1/s);
  assert.match((await loadError(['    rollout: { steps: [{ weight: 5, pause: maybe }] }'])).message, /steps\.0\.pause.*true or false/s);
});

test('profile: shared and none are allowed and resolved with defaults', async () => {
  const dir = profileDir(['    database: { engine: postgres, strategy: shared }', '    rollout: { steps: [{ weight: 5, holdMs: 3000 }, { weight: 50 }], gates: { minRequests: 20 } }']);
  try {
    const stage = await loadProfile({ dir, stateDir: join(dir, '.s') }, 'beta');
    const r = stage.services.web!.rollout!;
    assert.deepEqual(r.steps, [{ weight: 5, holdMs: 3000 }, { weight: 50, holdMs: 60000 }]);
    assert.equal(r.gates.minRequests, 20);
    assert.equal(r.gates.max5xxRate, 0.01);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--steps: parsed, refused when not increasing percentages, refused for a copy database', () => {
  assert.deepEqual(parseSteps('5,25,50'), [5, 25, 50]);
  assert.equal(parseSteps(undefined), undefined);
  for (const bad of ['5,x', '0,5', '5,100', '25,5', '']) assert.throws(() => parseSteps(bad), (e: unknown) => e instanceof ConfigError && /--steps/.test(e.message));
  assert.throws(() => rolloutOf({ name: 'api', database: { strategy: 'copy' } }, [5]), /service api: .*strategy copy/);
  assert.deepEqual(rolloutOf({ name: 'web', database: undefined }, [5, 50])?.steps, [{ weight: 5, holdMs: 60000 }, { weight: 50, holdMs: 60000 }]);
});

test('plan: every step sets the share and persists it, then a gate; the failure path puts weight 0 first', async () => {
  const dir = profileDir(['    rollout: { steps: [{ weight: 5, holdMs: 3000 }, { weight: 25, holdMs: 3000 }] }']);
  try {
    const stage = await loadProfile({ dir, stateDir: join(dir, '.s') }, 'beta');
    const sp: ServicePlan = { service: 'web', live: 'a', target: 'b', release: 'r2', liveRelease: 'r1', source: 'dev', hosts: ['h1'], rollout: stage.services.web!.rollout! };
    const phase = rolloutPhase(stage, [sp]);
    assert.equal(phase.policy, 'rollback');
    assert.deepEqual(phase.items[0]!.actions.map((a) => a.kind), ['server-health', 'set-map', 'persist-map', 'gate', 'set-map', 'persist-map', 'gate']);
    const set = phase.items[0]!.actions[1]!;
    assert.ok(set.kind === 'set-map');
    assert.deepEqual(set.entries, { 'web.rollout': 'web_b', 'web.weight': '5' });
    const switchPhase = { name: 'switch' as const, title: 'Switch', items: [{ target: 'lb', actions: [] }] };
    const paths = failurePaths(stage, { phases: [phase, switchPhase], services: [sp] });
    const revert = failurePathOf(paths, 'rollout')!.phases.find((p) => p.name === 'revert')!.items[0]!.actions[0]!;
    assert.ok(revert.kind === 'revert-map');
    assert.deepEqual(Object.entries(revert.entries), [['web.weight', '0'], ['web', 'web_a']]);
    const plan: Plan = { version: 1, action: 'promote', stage: 'beta', from: 'dev', createdAt: '', services: [sp], phases: [phase], liveAfter: { web: 'b' }, onFailure: paths };
    const text = renderPlan(plan);
    assert.match(text, /rollout: 5% for 3000 ms, then 25% for 3000 ms, then the switch \(100%\); gates 5xx <= 1%/);
    assert.match(text, /haproxy> set map \/etc\/haproxy\/live\.map web\.weight 25/);
    assert.match(text, /step 2: hold 25% for 3000 ms, then judge web_b against web_a/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the command line: a rollout on a copy database and bad --steps exit 2 before any connection, naming file, field and service', async () => {
  // dev is the first stage; beta (from dev) has a copy database and a rollout. Host addresses are unroutable: a connection attempt would hang or fail differently.
  const dir = profileDir(['    database: { engine: postgres, strategy: copy }', '    rollout: { steps: [{ weight: 5 }] }']);
  try {
    writeFileSync(join(dir, 'profiles', 'dev.yaml'), ['source: { path: app }', 'hosts:', '  d1: { address: 10.0.0.2 }', 'loadBalancers:', '  lb: { socket: /run/haproxy/dev.sock, mapFile: /etc/haproxy/dev.map, address: 10.0.0.9 }',
      'services:', '  web:', '    hosts: [d1]', '    root: /srv/web', '    listen: 8080', '    slots: { a: { port: 8001 }, b: { port: 8002 } }', '    start: node server.mjs --port {port}', '    database: { engine: postgres, strategy: copy }', ''].join('\n'));
    const refused = await spawnCli(dir, ['beta', '--dry-run'], { timeoutMs: 20_000 });
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /beta\.yaml/);
    assert.match(refused.stderr, /services\.web\.rollout/);
    assert.match(refused.stderr, /service web: .*strategy copy/);
    const badSteps = await spawnCli(dir, ['dev', '--dry-run', '--steps', '5,x'], { timeoutMs: 20_000 });
    assert.equal(badSteps.code, 2, badSteps.stderr);
    assert.match(badSteps.stderr, /command line.*--steps.*expected whole percentages/s);
    const copySteps = await spawnCli(dir, ['dev', '--dry-run', '--steps', '5,50'], { timeoutMs: 20_000 });
    assert.equal(copySteps.code, 2, copySteps.stderr);
    assert.match(copySteps.stderr, /--steps.*service web: .*strategy copy/s);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
