/*
 * The verbs' planners (issue 16): pure functions from what was read to the plan, and what a failure in
 * each phase means (apply/policy.ts). Integration: test/integration/plan-recording-verbs.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadProfile } from '../../src/config/load.js';
import type { Stage } from '../../src/config/model.js';
import { planMaintenance } from '../../src/maintenance/maintenance.js';
import { planPurge } from '../../src/purge/purge.js';
import { planRefresh, refreshSteps } from '../../src/refresh/refresh.js';
import { policyOf } from '../../src/apply/policy.js';
import { buildPlan } from '../../src/plan/build.js';
import { renderPlan } from '../../src/plan/render.js';
import type { Phase } from '../../src/plan/plan.js';

const NOW = new Date('2026-12-04T12:00:00.000Z');

async function stages(): Promise<{ dev: Stage; beta: Stage; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'updateserver-verbs-'));
  mkdirSync(join(dir, 'profiles'));
  const profile = (name: string, extra: string[]) => writeFileSync(join(dir, 'profiles', `${name}.yaml`), [
    ...extra,
    'ssh: { user: deploy }',
    `hosts: { ${name}1: { address: 10.0.0.11 }, ${name}2: { address: 10.0.0.12 } }`,
    `loadBalancers: { lb1: { socket: /run/haproxy/${name}1.sock, mapFile: /etc/haproxy/${name}1.map }, lb2: { socket: /run/haproxy/${name}2.sock, mapFile: /etc/haproxy/${name}2.map } }`,
    'services:',
    '  web:',
    `    hosts: [${name}1, ${name}2]`,
    '    root: /srv/web',
    '    listen: 8080',
    '    slots: { a: { port: 8081 }, b: { port: 8082 } }',
    '    start: node server.mjs --port {port}',
    '    database:',
    '      engine: postgres',
    '      strategy: copy',
    `      names: { a: web_${name}_a, b: web_${name}_b }`,
    ...(name === 'dev' ? ['      refresh:', '        after: ["UPDATE users SET email = id || \'@example.invalid\'"]'] : []),
    '',
  ].join('\n'));
  profile('dev', ['source: { path: /home/ci/app }']);
  profile('beta', ['from: dev']);
  const project = { dir, stateDir: join(dir, '.updateserver') };
  return { dev: await loadProfile(project, 'dev'), beta: await loadProfile(project, 'beta'), dir };
}

const { dev, beta, dir } = await stages();
rmSync(dir, { recursive: true, force: true });

describe('policyOf', () => {
  const phase = (name: Phase['name'], policy?: Phase['policy']): Phase => ({ name, title: name, items: [], ...(policy ? { policy } : {}) });
  const promotion = ['pull', 'copy', 'freeze', 'data', 'start', 'check', 'switch', 'post', 'watch', 'unfreeze', 'drain', 'stop-old', 'purge'].map((n) => phase(n as Phase['name']));

  test('a promotion\'s phases: before the switch live is untouched, the switch reverts, post and watch roll back, the rest warn', () => {
    assert.deepEqual(promotion.map((p, i) => `${p.name}:${policyOf(p, i, promotion)}`), [
      'pull:stop', 'copy:stop', 'freeze:stop', 'data:stop', 'start:stop', 'check:stop', 'switch:switch', 'post:rollback', 'watch:rollback',
      'unfreeze:warn', 'drain:warn', 'stop-old:warn', 'purge:warn',
    ]);
  });

  test('a phase\'s own policy wins over its name', () => {
    const purge = [phase('purge', 'fail')];
    assert.equal(policyOf(purge[0]!, 0, purge), 'fail');
  });

  test('a phase a newer planner adds takes the policy of where it stands', () => {
    const added = (at: number) => {
      const phases = [...promotion];
      phases.splice(at, 0, phase('before-hook' as Phase['name']));
      return policyOf(phases[at]!, at, phases);
    };
    assert.equal(added(1), 'stop');
    assert.equal(added(promotion.findIndex((p) => p.name === 'post')), 'rollback');
    assert.equal(added(promotion.length), 'warn');
  });
});

describe('planMaintenance', () => {
  const plan = planMaintenance(beta, ['web'], 'read-only', { before: { lb1: { 'web.maintenance': 'off', 'web.readonly': 'off' }, lb2: { 'web.maintenance': 'on', 'web.readonly': 'off' } }, live: { web: 'b' } }, NOW);

  test('every load balancer, one after another: set the entries, read them back, rewrite the map file', () => {
    assert.equal(plan.action, 'maintenance');
    assert.deepEqual(plan.phases.map((p) => [p.name, p.policy]), [['switch', 'switch']]);
    assert.deepEqual(plan.phases[0]!.items.map((i) => [i.target, i.actions.map((a) => a.kind)]), [
      ['lb1', ['set-map', 'verify-map', 'persist-map']], ['lb2', ['set-map', 'verify-map', 'persist-map']],
    ]);
    const set = plan.phases[0]!.items[1]!.actions[0]!;
    assert.deepEqual(set.kind === 'set-map' ? [set.file, set.entries] : [], ['/etc/haproxy/beta2.map', { 'web.maintenance': 'off', 'web.readonly': 'on' }]);
  });

  test('the failure path puts back, per load balancer, what the read phase saw there', () => {
    const revert = plan.onFailure?.[0];
    assert.deepEqual(revert?.on, ['switch']);
    assert.deepEqual(revert?.phases[0]?.items.map((i) => i.actions[0]?.kind === 'revert-map' ? [i.target, i.actions[0].entries] : []), [
      ['lb1', { 'web.maintenance': 'off', 'web.readonly': 'off' }], ['lb2', { 'web.maintenance': 'on', 'web.readonly': 'off' }],
    ]);
  });

  test('the dry run shows the runtime lines and the undo', () => {
    const text = renderPlan(plan, { failures: 'full' });
    assert.match(text, /^Plan: set maintenance read-only on every load balancer of beta/);
    assert.match(text, /haproxy> set map \/etc\/haproxy\/beta1\.map web\.readonly on/);
    assert.match(text, /If a step fails:\n  in switch: the load balancers changed so far go back/);
  });
});

describe('planPurge', () => {
  test('one removal per host and service, failing the command when one fails; nothing to undo', () => {
    const plan = planPurge(beta, 2, { removable: [{ service: 'web', host: 'beta1', releases: ['r1', 'r2'] }], incomplete: [{ service: 'web', host: 'beta2', releases: ['r9'] }], live: { web: 'a' } }, NOW);
    assert.equal(plan.action, 'purge');
    assert.deepEqual(plan.phases.map((p) => [p.name, p.policy]), [['purge', 'fail']]);
    assert.deepEqual(plan.phases[0]!.items, [{ target: 'beta1', actions: [{ kind: 'exec', host: 'beta1', command: 'cd /srv/web/releases && rm -rf -- r1 r2', title: 'remove 2 old release(s) of web beyond the 2 kept' }] }]);
    assert.deepEqual(plan.onFailure, []);
  });
});

describe('planRefresh', () => {
  test('the copy into the idle slot (never by TEMPLATE), then refresh.after in one transaction on PostgreSQL', () => {
    const steps = refreshSteps(dev, beta, { stage: { web: 'a' }, from: { web: 'b' } }, {});
    const plan = planRefresh(dev, beta, steps, { web: 'a' }, NOW);
    assert.equal(plan.action, 'refresh');
    assert.deepEqual(plan.phases.map((p) => [p.name, p.policy]), [['data', 'fail']]);
    const [copy, after] = plan.phases[0]!.items[0]!.actions;
    assert.ok(copy?.kind === 'data-copy' && after?.kind === 'sql');
    assert.deepEqual([copy.source.database, copy.target.database, copy.live.database, copy.fastPath], ['web_beta_b', 'web_dev_b', 'web_dev_a', 'off']);
    assert.deepEqual([after.connection.database, after.statements, after.transaction], ['web_dev_b', ["UPDATE users SET email = id || '@example.invalid'"], true]);
    assert.match(renderPlan(plan), /sql> UPDATE users SET email/);
  });
});

describe('the promotion\'s pull', () => {
  const hosts = { beta1: { releases: { a: 'r1', b: undefined }, running: { a: true, b: false }, complete: ['r1'], partial: [], freeBytes: 2 ** 34 } };
  const base = { live: 'a' as const, release: 'r2', cacheDir: '/state/cache/web/r2', source: 'dev', hosts };

  test('a later stage\'s release is the plan\'s first phase: pulled as shown, or only marked used when cached', () => {
    const fetch = { host: 'dev1', route: 'tunnel' as const, argv: ['rsync', '-a', 'dev1:/srv/web/releases/r2/', '/state/cache/web/r2/'], filesFrom: '/state/cache/web/.files-r2' };
    const pulled = buildPlan({ project: { dir: '/p', stateDir: '/state' }, stage: beta, from: 'dev', now: NOW, services: ['web'], facts: { web: { ...base, fetch, pull: { from: 'dev', manifestHash: 'ab'.repeat(32) } } } });
    assert.equal(pulled.phases[0]!.name, 'pull');
    const a = pulled.phases[0]!.items[0]!.actions[0]!;
    assert.ok(a.kind === 'pull');
    assert.deepEqual([a.fetch?.argv, a.manifestHash, a.from], [fetch.argv, 'ab'.repeat(32), 'dev']);
    assert.match(renderPlan(pulled), /1\. Bring the release into the relay cache\n   \[local\]\n     - pull r2 of web from dev/);
    const cached = buildPlan({ project: { dir: '/p', stateDir: '/state' }, stage: beta, from: 'dev', now: NOW, services: ['web'], facts: { web: { ...base, pull: { from: 'dev', manifestHash: 'cd'.repeat(32) } } } });
    const c = cached.phases[0]!.items[0]!.actions[0]!;
    assert.ok(c.kind === 'pull' && c.fetch === undefined, JSON.stringify(c));
  });

  test('a first stage and a flip pull nothing', () => {
    const flip = buildPlan({ project: { dir: '/p', stateDir: '/state' }, stage: beta, from: 'beta', now: NOW, services: ['web'], mode: 'flip', facts: { web: { ...base, pull: { from: 'dev', manifestHash: 'ab'.repeat(32) } } } });
    assert.deepEqual(flip.phases.find((p) => p.name === 'pull')?.items, []);
  });
});
