/*
 * Hooks in the plan (issue 19): each point's phase sits where the run reaches it, carries the exact line
 * with the run's facts, and says what its failure does; after-rollback closes the automatic rollback and
 * the rollback command's plan; failed and finished are the plan's `finally`; the dry run prints them all.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { execFileSync } from 'node:child_process';
import { loadProfile } from '../../src/config/load.js';
import type { Project, SlotName, Stage } from '../../src/config/model.js';
import { buildPlan, type HostSlots, type PlanInput } from '../../src/plan/build.js';
import { renderPlan } from '../../src/plan/render.js';
import { hookLine, hookLineAtRun } from '../../src/plan/hooks.js';
import type { Action, Plan } from '../../src/plan/plan.js';

const R1 = '2026.11.21-120000-1.0.0-3fa9c2d1';
const R2 = '2026.11.22-223104-1.1.0-9e8d7c6b';
const ALL = ['before-copy', 'after-copy', 'before-start', 'after-start', 'before-switch', 'after-switch', 'after-drain', 'after-rollback', 'failed', 'finished'];

async function loadStage(lines: string[]): Promise<{ stage: Stage; project: Project }> {
  const dir = mkdtempSync(join(tmpdir(), 'updateserver-hooks-'));
  try {
    mkdirSync(join(dir, 'profiles'));
    writeFileSync(join(dir, 'profiles', 'staging.yaml'), ['from: dev', ...lines, ''].join('\n'));
    const project = { dir, stateDir: join(dir, '.updateserver') };
    return { stage: await loadProfile(project, 'staging'), project };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const { stage: STAGE, project } = await loadStage([
  'vars: { mail: "off", url: "https://x.example/a b" }',
  'hosts: { h1: { address: 10.0.0.11, vars: { mail: "on" } }, h2: { address: 10.0.0.12 } }',
  'loadBalancers: { lb1: { socket: /run/lb1.sock, mapFile: /etc/haproxy/live.map } }',
  'hooks:',
  ...ALL.map((p) => `  ${p}: [{ run: "echo ${p} stage", on: local${p === 'after-switch' ? ', critical: true' : ''} }]`),
  'services:',
  '  web:',
  '    hosts: [h1, h2]',
  '    root: /srv/web',
  '    currentLink: false', // the current link's own plan steps are tested in topology.test
  '    listen: 8080',
  '    slots: { a: { port: 8081 }, b: { port: 8082 } }',
  '    start: node server.mjs --port {port}',
  '    database: { engine: postgres, strategy: shared }',
  '    hooks:',
  '      before-switch: [{ run: "warm $UPDATESERVER_HOST", on: hosts, timeoutMs: 1500 }]',
  '      after-drain: [{ run: "purge-cache", on: one-host }]',
]);

const slots = (a: string | undefined, b: string | undefined): HostSlots => ({ releases: { a, b }, running: { a: a !== undefined, b: false }, complete: [R1], partial: [], freeBytes: 2 ** 34 });
function input(live: SlotName = 'a'): PlanInput {
  return {
    project, stage: STAGE, from: 'dev', now: new Date('2026-11-22T22:31:04Z'), services: ['web'],
    facts: { web: { live, release: R2, cacheDir: `/cache/${R2}`, source: 'dev', hosts: { h1: slots(R1, undefined), h2: slots(R1, undefined) } } },
  };
}
const hooksOf = (phases: Plan['phases']) => phases.flatMap((p) => p.items.flatMap((i) => i.actions.filter((a): a is Extract<Action, { kind: 'hook' }> => a.kind === 'hook').map((a) => ({ phase: p.name, target: i.target, a }))));

describe('buildPlan: hooks', () => {
  const plan = buildPlan(input());

  test('each point is a phase at its place in the run', () => {
    assert.deepEqual(plan.phases.filter((p) => p.items.length > 0).map((p) => p.name), [
      'before-copy', 'copy', 'after-copy', 'before-start', 'start', 'after-start', 'check', 'before-switch', 'switch', 'after-switch', 'post', 'drain', 'after-drain', 'stop-old',
    ]);
    assert.equal(plan.phases.some((p) => p.name === 'after-rollback'), false, 'a promotion has no after-rollback phase of its own');
    assert.deepEqual(plan.finally?.map((p) => p.name), ['failed', 'finished']);
  });

  test('on: local runs once on this machine, hosts on every host, one-host on the first; a service\'s hooks follow the stage\'s', () => {
    const at = (phase: string) => hooksOf(plan.phases).filter((h) => h.phase === phase).map((h) => [h.target, h.a.run]);
    assert.deepEqual(at('before-switch'), [['local', 'echo before-switch stage'], ['h1', 'warm $UPDATESERVER_HOST'], ['h2', 'warm $UPDATESERVER_HOST']]);
    assert.deepEqual(at('after-drain'), [['local', 'echo after-drain stage'], ['h1', 'purge-cache']]);
  });

  test('the environment carries the run\'s facts, the database and the host\'s vars over the stage\'s', () => {
    const h1 = hooksOf(plan.phases).find((h) => h.phase === 'before-switch' && h.target === 'h1')!.a;
    assert.deepEqual(h1.env, {
      UPDATESERVER_HOOK: 'before-switch', UPDATESERVER_ACTION: 'promote', UPDATESERVER_STAGE: 'staging', UPDATESERVER_SERVICE: 'web',
      UPDATESERVER_RELEASE: R2, UPDATESERVER_PREVIOUS_RELEASE: R1, UPDATESERVER_OLD_SLOT: 'a', UPDATESERVER_NEW_SLOT: 'b',
      UPDATESERVER_SLOT_DIR: '/srv/web/b', UPDATESERVER_OLD_SLOT_DIR: '/srv/web/a', UPDATESERVER_DATABASE: 'web_staging_a', UPDATESERVER_OLD_DATABASE: 'web_staging_a',
      UPDATESERVER_HOST: 'h1', UPDATESERVER_USER: h1.env.UPDATESERVER_USER!, UPDATESERVER_DRY_RUN: '0',
      UPDATESERVER_VAR_mail: 'on', UPDATESERVER_VAR_url: 'https://x.example/a b',
    });
    const local = hooksOf(plan.phases).find((h) => h.phase === 'before-switch' && h.target === 'local')!.a;
    assert.equal(local.env.UPDATESERVER_VAR_mail, 'off');
    assert.equal(local.host, undefined);
    assert.deepEqual(h1.runtime, ['UPDATESERVER_RUN_ID']);
    assert.deepEqual(plan.finally![0]!.items[0]!.actions[0]!.kind === 'hook' && plan.finally![0]!.items[0]!.actions[0]!.runtime, ['UPDATESERVER_RUN_ID', 'UPDATESERVER_RESULT', 'UPDATESERVER_ERROR']);
  });

  test('the line is the environment, a timeout and bash -c with the command, and runs as planned', () => {
    const h1 = hooksOf(plan.phases).find((h) => h.phase === 'before-switch' && h.target === 'h1')!.a;
    assert.match(h1.line, /^env UPDATESERVER_RUN_ID='<run id>' UPDATESERVER_HOOK=before-switch .* UPDATESERVER_VAR_url='https:\/\/x\.example\/a b' timeout -k 5 1\.500 bash -c 'warm \$UPDATESERVER_HOST'$/);
    const atRun = hookLineAtRun({ ...h1, run: 'echo "$UPDATESERVER_RUN_ID $UPDATESERVER_VAR_url $UPDATESERVER_HOST"' }, { UPDATESERVER_RUN_ID: "run 'x'" });
    assert.equal(execFileSync('bash', ['-c', atRun], { encoding: 'utf8' }), "run 'x' https://x.example/a b h1\n");
    assert.match(execFileSync('bash', ['-c', `${hookLine({}, 'sleep 5', 200)}; echo "exit $?"`], { encoding: 'utf8' }), /^exit 124$/m);
  });

  test('what a failure does: stop before the switch, roll back for a critical after-switch, else a warning', () => {
    const failure = Object.fromEntries([...hooksOf(plan.phases), ...hooksOf(plan.finally!)].filter((h) => h.target === 'local').map((h) => [h.phase, h.a.failure]));
    assert.deepEqual(failure, {
      'before-copy': 'stop', 'after-copy': 'stop', 'before-start': 'stop', 'after-start': 'stop', 'before-switch': 'stop',
      'after-switch': 'rollback', 'after-drain': 'warn', failed: 'warn', finished: 'warn',
    });
  });

  test('failure paths: a hook point fails like its neighbours; the rollback paths end with the after-rollback hooks', () => {
    const path = (p: string) => plan.onFailure!.find((f) => (f.on as string[]).includes(p));
    assert.deepEqual(path('before-copy')?.phases.map((p) => p.name), []);
    assert.deepEqual(path('before-switch')?.phases.map((p) => p.name), ['stop-new']);
    for (const p of ['switch', 'after-switch', 'post']) assert.deepEqual(path(p)?.phases.map((x) => x.name), ['revert', 'drain-new', 'stop-new', 'after-rollback'], p);
    assert.equal(path('after-drain'), undefined);
    const rollbackHook = hooksOf(path('post')!.phases)[0]!.a;
    assert.equal(rollbackHook.failure, 'warn');
    assert.equal(rollbackHook.env.UPDATESERVER_HOOK, 'after-rollback');
  });

  test('the rollback command\'s plan runs after-rollback after its checks, and a flip copies nothing so has no copy hooks', () => {
    const f = { ...input('b').facts.web!, release: R1, hosts: { h1: slots(R2, R1), h2: slots(R2, R1) } };
    const rollback = buildPlan({ ...input('b'), mode: 'flip', action: 'rollback', facts: { web: f } });
    const names = rollback.phases.filter((p) => p.items.length > 0).map((p) => p.name);
    assert.ok(names.indexOf('after-rollback') > names.indexOf('switch'), names.join(', '));
    assert.equal(names.includes('before-copy') || names.includes('after-copy'), false);
    assert.equal(rollback.onFailure!.some((p) => p.phases.some((x) => x.name === 'after-rollback')), false, 'going back from a rollback is not a rollback');
    const flip = buildPlan({ ...input('b'), mode: 'flip', facts: { web: f } });
    assert.equal(flip.phases.some((p) => p.name === 'after-rollback'), false);
  });

  test('the dry run prints every hook with its line and what its failure does, and the finally part', () => {
    const text = renderPlan(plan);
    for (const p of ['before-copy', 'after-copy', 'before-start', 'after-start', 'before-switch', 'after-switch', 'after-drain']) assert.match(text, new RegExp(`\\d+\\. Run the ${p} hooks`));
    assert.match(text, /on h1: \$ env UPDATESERVER_RUN_ID='<run id>' .*bash -c 'warm \$UPDATESERVER_HOST'\n\s+\(timeout 1500 ms; a failure stops the run, live traffic untouched\)/);
    assert.match(text, /a failure switches traffic back \(critical\)/);
    assert.match(text, /If the run fails, at its end:\n {3}\[local\]\n {5}- failed hook of staging for web on this machine: echo failed stage\n {9}\(local\): \$ env UPDATESERVER_RUN_ID='<run id>' UPDATESERVER_RESULT='<result>' UPDATESERVER_ERROR='<error>' /);
    assert.match(text, /When the run ends, whatever the result:/);
  });

  test('a stage without hooks gets the plan it had before: no hook phase, no finally', async () => {
    const { stage } = await loadStage(['hosts: { h1: { address: 10.0.0.11 } }', 'loadBalancers: { lb1: { socket: /run/lb1.sock, mapFile: /m.map } }', 'services:', '  web: { hosts: [h1], root: /srv/web, listen: 8080, slots: { a: { port: 8081 }, b: { port: 8082 } }, start: run }']);
    const plain = buildPlan({ ...input(), stage, facts: { web: { ...input().facts.web!, hosts: { h1: slots(R1, undefined) } } } });
    assert.equal(plain.finally, undefined);
    assert.equal(hooksOf(plain.phases).length, 0);
    assert.equal(JSON.stringify(plain).includes('hook'), false);
  });
});
