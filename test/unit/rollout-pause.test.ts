/*
 * Issue 20, holding for a person: the profile's pause and its deadline, the plan's pause action and
 * how the dry run words it, the pause itself against a state directory (continue, abort, deadline, an
 * answer for another pause ignored), the refusals of continue/abort without a paused run, --resume's
 * plan from the step reached, and the webhook and release mail of an aborted rollout naming the
 * failed gate with its figures.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadProfile } from '../../src/config/load.js';
import { rolloutPhase } from '../../src/plan/rollout.js';
import { renderPlan } from '../../src/plan/render.js';
import { failurePaths } from '../../src/plan/failure.js';
import type { Plan, ServicePlan } from '../../src/plan/plan.js';
import { runPause, PauseEnded } from '../../src/rollout/pause.js';
import { GateFailed } from '../../src/rollout/gate.js';
import { judge, type BackendCounters } from '../../src/rollout/gates.js';
import { DEFAULT_GATES } from '../../src/rollout/profile.js';
import { pausedOf } from '../../src/rollout/control.js';
import { FileRolloutControl } from '../../src/state/rollout-control.js';
import { parseShowStat } from '../../src/lb/stat.js';
import { PromotionFailed } from '../../src/apply/apply.js';
import { notificationBody } from '../../src/notify/notify.js';
import { mailBody } from '../../src/notify/email.js';
import { resumedRolloutPlan } from '../../src/promote/resume-rollout.js';
import { renderRolloutView, rolloutView } from '../../src/status/rollout-view.js';
import { interruptedFrom, stepEntry, startEntry } from '../../src/state/journal.js';
import type { ApplyContext } from '../../src/apply/context.js';
import type { Balancer } from '../../src/lb/balancer.js';
import type { Logger } from '../../src/log.js';
import { betaProfileDir } from './fixtures.js';

const profileDir = (service: string[]): string => betaProfileDir(service, 'updateserver-pause-');

async function pausedStage() {
  const dir = profileDir(['    rollout: { steps: [{ weight: 5, holdMs: 3000 }, { weight: 25, holdMs: 3000, pause: true, pauseDeadlineMs: 600000 }, { weight: 50, pause: true }] }']);
  const stage = await loadProfile({ dir, stateDir: join(dir, '.s') }, 'beta');
  return { dir, stage };
}

test('profile and plan: pause: true waits after the step\'s gate, with its deadline (default 1 hour); the dry run says how to answer it', async () => {
  const { dir, stage } = await pausedStage();
  try {
    assert.deepEqual(stage.services.web!.rollout!.steps, [{ weight: 5, holdMs: 3000 }, { weight: 25, holdMs: 3000, pause: true, pauseDeadlineMs: 600000 }, { weight: 50, holdMs: 60000, pause: true, pauseDeadlineMs: 3600000 }]);
    const sp: ServicePlan = { service: 'web', live: 'a', target: 'b', release: 'r2', liveRelease: 'r1', source: 'dev', hosts: ['h1'], rollout: stage.services.web!.rollout! };
    const phase = rolloutPhase(stage, [sp]);
    assert.deepEqual(phase.items[0]!.actions.map((a) => a.kind), ['server-health', 'set-map', 'persist-map', 'gate', 'set-map', 'persist-map', 'gate', 'pause', 'set-map', 'persist-map', 'gate', 'pause']);
    const pause = phase.items[0]!.actions[7]!;
    assert.ok(pause.kind === 'pause');
    assert.deepEqual({ stage: pause.stage, step: pause.step, steps: pause.steps, weight: pause.weight, deadlineMs: pause.deadlineMs }, { stage: 'beta', step: 2, steps: 3, weight: 25, deadlineMs: 600000 });
    const plan: Plan = { version: 1, action: 'promote', stage: 'beta', from: 'dev', createdAt: '', services: [sp], phases: [phase], liveAfter: { web: 'b' } };
    const text = renderPlan(plan);
    assert.match(text, /rollout: 5% for 3000 ms, then 25% for 3000 ms then a pause \(deadline 600000 ms\), then 50% for 60000 ms then a pause \(deadline 3600000 ms\), then the switch/);
    assert.match(text, /step 2: pause at 25% until updateserver continue beta \(or abort beta\), at most 600000 ms/);
    assert.match(text, /deadline 600000 ms: then the rollout aborts/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const STAT = (bResponses: number, b5xx = 0) => parseShowStat('# pxname,svname,qcur,scur,status,weight,econ,eresp,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,rtime,type,\n'
  + `web_a,BACKEND,0,0,UP,1,0,0,0,${bResponses * 3},0,0,0,0,2,1,\n`
  + `web_b,BACKEND,0,0,UP,1,0,0,0,${bResponses - b5xx},0,0,${b5xx},0,2,1,\n`);

function pauseContext(stateDir: string) {
  let n = 0;
  const balancer = { name: 'lb', stat: async () => STAT(100 + 10 * n++) } as unknown as Balancer;
  const logged: string[] = [];
  const log = (level: string) => (m: string) => { logged.push(`${level} ${m}`); };
  const logger = { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') } as unknown as Logger;
  const rollouts = new FileRolloutControl(stateDir);
  return { rollouts, logged, ctx: { stage: { name: 'beta', services: {} }, balancers: { lb: balancer }, logger, rollouts, warnings: [], reports: [] } as unknown as ApplyContext };
}

const pauseAction = (deadlineMs: number) => ({
  kind: 'pause' as const, stage: 'beta', service: 'web', step: 2, steps: 3, weight: 25, deadlineMs, loadBalancers: ['lb'], oldBackend: 'web_a', newBackend: 'web_b', gates: DEFAULT_GATES, title: 'step 2: pause',
});

async function waitPaused(rollouts: FileRolloutControl) {
  for (let i = 0; i < 100; i++) {
    const p = await rollouts.readProgress('beta');
    if (p?.state === 'paused') return p;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('never paused');
}

test('a pause records itself, ignores an answer meant for another pause, and goes on at continue (acknowledged)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'updateserver-pause-'));
  try {
    const { rollouts, ctx, logged } = pauseContext(dir);
    const running = runPause(ctx, pauseAction(60_000));
    const p = await waitPaused(rollouts);
    assert.equal(p.step, 2);
    assert.equal(p.weight, 25);
    assert.ok(p.deadline && Date.parse(p.deadline) - Date.parse(p.since) >= 59_000);
    assert.deepEqual(p.start.lb!.new.responses, 100);
    await rollouts.request({ stage: 'beta', id: 'another pause', action: 'abort', user: 'old', at: new Date().toISOString(), via: 'cli' });
    await new Promise((r) => setTimeout(r, 600));
    assert.equal((await rollouts.readRequest('beta'))?.answered, undefined, 'an answer for another pause is not taken');
    await rollouts.request({ stage: 'beta', id: p.id, action: 'continue', user: 'alice', at: new Date().toISOString(), via: 'cli' });
    await running;
    assert.ok((await rollouts.readRequest('beta'))?.answered, 'the run acknowledged the request');
    assert.ok(logged.some((l) => /^info rollout of web paused at step 2 \(25%\): continued by alice/.test(l)), logged.join('\n'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('abort ends a pause like a failed gate, naming who aborted and the figures; the deadline too', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'updateserver-pause-'));
  try {
    const { rollouts, ctx } = pauseContext(dir);
    const running = runPause(ctx, pauseAction(60_000));
    const p = await waitPaused(rollouts);
    await rollouts.request({ stage: 'beta', id: p.id, action: 'abort', user: 'bob', at: new Date().toISOString(), via: 'console' });
    await assert.rejects(running, (e: unknown) => e instanceof PauseEnded && e.reason === 'abort' && e.user === 'bob'
      && /rollout of web stopped at step 2 \(25%\): aborted by bob \(the console\) during the pause; during the pause: new slot \d+ request/.test(e.message));
    const t0 = Date.now();
    await assert.rejects(runPause(ctx, pauseAction(400)), (e: unknown) => e instanceof PauseEnded && e.reason === 'deadline' && /the pause deadline passed \(400 ms, pauseDeadlineMs\) with no continue/.test(e.message));
    assert.ok(Date.now() - t0 >= 400 && Date.now() - t0 < 3000);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('continue/abort are refused without a paused rollout, or when its run no longer holds the lock', () => {
  const base = { stage: 'beta', service: 'web', step: 2, steps: 3, weight: 25, id: 'x', since: '', pid: 4242, oldBackend: 'web_a', newBackend: 'web_b', loadBalancers: ['lb'], gates: DEFAULT_GATES, start: {} };
  assert.throws(() => pausedOf('beta', undefined, 4242), /no rollout of beta is paused; nothing was changed/);
  assert.throws(() => pausedOf('beta', { ...base, state: 'hold' }, 4242), /no rollout of beta is paused \(the rollout of web is at step 2, 25%, judged by its gates\)/);
  assert.throws(() => pausedOf('beta', { ...base, state: 'paused' }, undefined), (e: unknown) => e instanceof Error && /pid 4242\) no longer holds the stage's lock/.test(e.message) && /--resume/.test((e as { hint?: string }).hint ?? ''));
  assert.equal(pausedOf('beta', { ...base, state: 'paused' }, 4242).id, 'x');
});

const w = (responses: number, http5xx = 0): BackendCounters => ({ responses, http5xx, errors: 0, rtimeMs: 2 });

test('the webhook and the release mail of an aborted rollout name the failed gate, its step and its figures', () => {
  const v = judge(DEFAULT_GATES, w(1900), w(200, 10), false);
  assert.ok(v.result === 'fail');
  const gate = new GateFailed('web', 1, v.gate, `rollout of web stopped at step 1 (5%): gate ${v.gate} failed: ${v.message}`, v.figures);
  const err = new PromotionFailed('send a growing share of requests to the new slot', gate, true, true);
  const plan: Plan = { version: 1, action: 'promote', stage: 'beta', from: 'dev', createdAt: '', liveAfter: { web: 'b' }, phases: [], services: [{ service: 'web', live: 'a', target: 'b', release: 'r2', liveRelease: 'r1', source: 'dev', hosts: ['h1'] }] };
  const body = notificationBody(plan, 'rolled-back', { runId: 'r', durationMs: 5, at: new Date(), error: err, rolledBack: true });
  assert.equal(body.rollout?.gate, 'max5xxRate');
  assert.equal(body.rollout?.step, 1);
  assert.equal(body.rollout?.service, 'web');
  assert.equal(body.rollout?.figures?.rate5xx.new, 0.05);
  assert.equal(body.rollout?.figures?.new.responses, 200);
  assert.match(body.error ?? '', /gate max5xxRate failed: 5xx answers on the new slot 5\.00% \(10 of 200\) > max5xxRate 1\.00%/);
  const mail = mailBody({ plan, runId: 'r', result: 'rolled back', error: body.error!, durationMs: 5, rollout: body.rollout! });
  assert.match(mail, /Rollout of web aborted at step 1: gate max5xxRate\n {2}figures: new slot 200 request\(s\) \(9\.52% of the window\), 5xx 5\.00% vs 0\.00%/);
  const paused = notificationBody(plan, 'rolled-back', { runId: 'r', durationMs: 5, at: new Date(), rolledBack: true,
    error: new PromotionFailed('rollout', new PauseEnded('web', 2, 'deadline', 'rollout of web stopped at step 2 (25%): the pause deadline passed'), true, true) });
  assert.equal(paused.rollout?.gate, 'pauseDeadline');
  assert.match(paused.error ?? '', /the pause deadline passed/);
});

test('--resume mid-rollout: the interrupted plan goes on from the last step that began, the phases before it dropped, its failure paths kept', async () => {
  const { dir, stage } = await pausedStage();
  try {
    const sp: ServicePlan = { service: 'web', live: 'a', target: 'b', release: 'r2', liveRelease: 'r1', source: 'dev', hosts: ['h1'], rollout: stage.services.web!.rollout! };
    const start = { name: 'start' as const, title: 'Start', items: [{ target: 'h1', actions: [{ kind: 'exec' as const, host: 'h1', command: 'start b', title: 'start b', undo: { command: 'stop b', title: 'stop b' } }] }] };
    const switchPhase = { name: 'switch' as const, title: 'Switch', items: [{ target: 'lb', actions: [] }] };
    const plan: Plan = { version: 1, action: 'promote', stage: 'beta', from: 'dev', createdAt: '', services: [sp], phases: [start, rolloutPhase(stage, [sp]), switchPhase], liveAfter: { web: 'b' } };
    const actions = plan.phases[1]!.items[0]!.actions;
    const entries = [startEntry(plan), stepEntry('start', 'h1', 'start b', 'begin'), stepEntry('start', 'h1', 'start b', 'end'),
      ...actions.slice(0, 6).flatMap((a) => [stepEntry('rollout', 'web', a.title, 'begin'), stepEntry('rollout', 'web', a.title, 'end')])];
    const resumed = resumedRolloutPlan(interruptedFrom('j', entries)!, stage)!;
    assert.ok(resumed);
    assert.deepEqual(resumed.phases[0]!.items, []);
    assert.deepEqual(resumed.phases[1]!.items[0]!.actions.map((a) => `${a.kind} ${a.title.slice(0, 7)}`), ['server-health mark we', 'set-map step 2:', 'persist-map rewrite', 'gate step 2:', 'pause step 2:', 'set-map step 3:', 'persist-map rewrite', 'gate step 3:', 'pause step 3:']);
    assert.equal(resumed.phases[2], switchPhase);
    // A failure still stops the new slot the interrupted run started.
    assert.deepEqual(resumed.onFailure, failurePaths(stage, plan));
    assert.ok(resumed.onFailure!.some((p) => p.phases.some((x) => x.name === 'stop-new' && x.items.length === 1)));
    // Past the rollout, or after a failed step, the clean-up decides (undefined).
    assert.equal(resumedRolloutPlan(interruptedFrom('j', [...entries, stepEntry('switch', 'lb', 'x', 'begin')])!, stage), undefined);
    assert.equal(resumedRolloutPlan(interruptedFrom('j', [...entries, stepEntry('rollout', 'web', actions[6]!.title, 'fail', 'gate')])!, stage), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('status: the paused step, the shares and the gates\' figures since the pause from show stat now; a run gone says so; a record behind the map is not shown', () => {
  const start = { lb: { old: { responses: 300, http5xx: 0, errors: 0, rtimeMs: 2 }, new: { responses: 100, http5xx: 0, errors: 0, rtimeMs: 2 } } };
  const progress = { stage: 'beta', service: 'web', step: 2, steps: 3, weight: 25, state: 'paused' as const, id: 'x', since: '2026-12-05T03:00:00.000Z', deadline: '2026-12-05T04:00:00.000Z', pid: 4242,
    oldBackend: 'web_a', newBackend: 'web_b', loadBalancers: ['lb'], gates: DEFAULT_GATES, start };
  const v = rolloutView(progress, 'web', { lb: 25 }, { lb: STAT(200, 5) }, 4242)!;
  assert.equal(v.running, true);
  assert.equal(v.figures?.new.responses, 100);
  assert.equal(v.figures?.new.http5xx, 5);
  assert.equal(v.figures?.old.responses, 300);
  const text = renderRolloutView('beta', v).join('\n');
  assert.match(text, /rollout PAUSED at step 2 of 3 \(25%\) since 2026-12-05T03:00:00\.000Z, run pid 4242; aborts at 2026-12-05T04:00:00\.000Z: updateserver continue beta \| updateserver abort beta/);
  assert.match(text, /shares: lb 25% to web_b/);
  assert.match(text, /gates since then: new slot 100 request\(s\) \(25\.00% of the window\), 5xx 5\.00% vs 0\.00%/);
  assert.match(renderRolloutView('beta', rolloutView(progress, 'web', { lb: 25 }, { lb: STAT(200) }, undefined)!).join('\n'), /its run \(pid 4242\) is gone; updateserver beta --resume goes on from this step/);
  assert.equal(rolloutView(progress, 'web', { lb: 50 }, { lb: STAT(200) }, 4242), undefined);
  assert.equal(rolloutView(progress, 'api', { lb: 25 }, { lb: STAT(200) }, 4242), undefined);
  assert.equal(rolloutView(progress, 'web', {}, { lb: STAT(200) }, 4242), undefined);
});
