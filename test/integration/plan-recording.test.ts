/*
 * The plan is the whole truth (issue 16), proven on the lab: the real ssh2 transport and the real
 * HAProxy runtime client are wrapped by recorders (test/lab/recorder.ts: every call still goes to the
 * real connection), a dry run and then the real promotion run from the same state, and every command
 * sent to a host and every change sent to a load balancer while the plan is applied is compared, per
 * host and load balancer in order, with the effects the dry run's plan lists. The same for a promotion
 * whose post check fails: what it runs after the failure is the plan's failure path for `post`.
 * Reads (probes, map read-backs, session counts, HTTP checks) are not effects and are not compared;
 * the plans are compared whole but for the time they were made.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { updateserver, explain } from './cli.js';
import { promote, type PromoteResult } from '../../src/promote/promote.js';
import { PromotionFailed } from '../../src/apply/apply.js';
import { silentLogger } from '../../src/log.js';
import type { Plan } from '../../src/plan/plan.js';
import { Recorder, plannedEffects } from '../lab/recorder.js';

const NET = 200;
const PRE = 'pre:\n  - name: health\n    http: { path: /health }\n    deadlineMs: 8000\n';
// Passes on the idle slot before the switch (pre), fails through the load balancer after it (post).
const FAILING_POST = `${PRE}post:\n  - name: never\n    http: { path: /health, bodyContains: "no answer says this" }\n    deadlineMs: 600\n`;

// Hooks (issue 19) on the hosts at points of the good path, the rollback path and the plan's finally.
const HOOKS = [
  'hooks:',
  "  before-switch: [{ run: 'echo before-switch', on: hosts }]",
  "  after-switch: [{ run: 'echo after-switch', on: one-host }]",
  "  after-drain: [{ run: 'true', on: local }]",
  "  after-rollback: [{ run: 'echo after-rollback', on: hosts }]",
  "  failed: [{ run: 'echo failed', on: one-host }]",
  "  finished: [{ run: 'echo $UPDATESERVER_RESULT', on: hosts }]",
].join('\n');

let p: Pipeline;

async function newRelease(version: string): Promise<void> {
  await writeFile(join(p.appDir, 'VERSION'), `${version}\n`);
  const dev = await updateserver(p.project.dir, 'dev');
  assert.equal(dev.code, 0, explain(dev));
}

/** Runs promote in this process with recorders around its connections; recording starts when the plan is applied. */
async function recorded(dryRun: boolean): Promise<{ recorder: Recorder; result?: PromoteResult; error?: unknown }> {
  const recorder = new Recorder();
  try {
    const result = await promote({
      project: p.project, stage: 'beta', logger: silentLogger, dryRun, instrument: recorder.instrument(),
      progress: () => { recorder.start(); return undefined; },
    });
    return { recorder, result };
  } catch (error) {
    return { recorder, error };
  }
}

/** A plan but for the moment it was made. */
const timeless = (plan: Plan) => ({ ...plan, createdAt: '(masked)' });

before(async () => {
  p = await startPipeline({ net: NET, devHealthPath: '/', betaServiceExtra: '    checks: web', projectFiles: { 'healthchecks/web.yaml': PRE }, betaTopExtra: HOOKS });
  await newRelease('1.0.0');
  const beta = await updateserver(p.project.dir, 'beta');
  assert.equal(beta.code, 0, explain(beta));
});

after(async () => {
  await p?.stop();
});

test('a promotion executes exactly the effects its dry run listed, host by host and load balancer by load balancer', async () => {
  await newRelease('1.1.0');
  const dry = await recorded(true);
  assert.equal(dry.error, undefined, String(dry.error));
  assert.deepEqual(dry.recorder.balancerWrites, [], 'the dry run changed a load balancer');
  assert.deepEqual(dry.recorder.effects, [], 'the dry run applied something');
  const plan = dry.result!.plan;

  const real = await recorded(false);
  assert.equal(real.error, undefined, String(real.error));
  assert.equal(real.result?.applied, true);
  assert.deepEqual(timeless(real.result!.plan), timeless(plan), 'the real run applied the plan the dry run printed');
  const expected = plannedEffects(plan);
  assert.deepEqual(real.recorder.byTarget(), expected);
  // Worth comparing: the copy, the start, the switch and the stop are all among them.
  const all = Object.values(expected).flat();
  for (const kind of [/^rsync /, /^exec .*setsid/, /^set server /, /^set map /, /^persist /, /^exec env UPDATESERVER_RUN_ID='<run id>' UPDATESERVER_HOOK=before-switch /, /^exec env .*UPDATESERVER_RESULT='<result>' .*UPDATESERVER_HOOK=finished /]) assert.ok(all.some((e) => kind.test(e)), `no ${kind} effect`);
  console.log(`promotion: ${real.recorder.effects.length} effects recorded on ${Object.keys(expected).length} targets, equal to the dry run's plan`);
});

test('a promotion whose post check fails runs the plan\'s failure path: the recorded revert is the plan\'s', async () => {
  await writeFile(join(p.project.dir, 'healthchecks', 'web.yaml'), FAILING_POST);
  try {
    await newRelease('1.2.0');
    const dry = await recorded(true);
    assert.equal(dry.error, undefined, String(dry.error));
    assert.deepEqual(dry.recorder.balancerWrites, []);
    const plan = dry.result!.plan;
    const path = plan.onFailure?.find((f) => f.on.includes('post'));
    assert.deepEqual(path?.phases.map((ph) => ph.name), ['revert', 'current-back', 'drain-new', 'stop-new', 'after-rollback']);
    assert.deepEqual(plan.finally?.map((ph) => ph.name), ['failed', 'finished']);

    const real = await recorded(false);
    assert.ok(real.error instanceof PromotionFailed && real.error.rolledBack && real.error.liveUntouched, String(real.error));
    const expected = plannedEffects(plan, 'post');
    assert.deepEqual(real.recorder.byTarget(), expected);
    // The load balancer went to the new slot and back to the old one, as the plan said.
    const live = plan.services[0]!.live;
    const target = plan.services[0]!.target;
    assert.deepEqual(expected.lb!.filter((e) => e.startsWith('set map')).map((e) => e.split(' ').at(-1)), [`web_${target}`, `web_${live}`]);
    console.log(`failed post check: ${real.recorder.effects.length} effects recorded, the last ${Object.values(plannedEffects({ ...plan, phases: [] }, 'post')).flat().length} of them the plan's failure path`);
  } finally {
    await writeFile(join(p.project.dir, 'healthchecks', 'web.yaml'), PRE);
  }
});
