/*
 * The plan is the whole truth for a progressive rollout too (issue 20 with issue 16; net 88): the real
 * HAProxy runtime client and ssh2 transport wrapped by recorders (test/lab/recorder.ts), a dry run and
 * then the real promotion from the same state; every change sent to the load balancer (the shares set
 * through the map, the map file rewritten, the switch) and every command sent to a host equal, in order
 * per target, the effects the dry run's plan lists. The same for a rollout aborted at its pause by
 * `updateserver abort beta` from another process: what runs after it is the plan's failure path for the
 * rollout (weight 0 first, then the old backend, the new slot stopped).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { startLoad } from '../lab/load.js';
import { updateserver, explain } from './cli.js';
import { promote, type PromoteResult } from '../../src/promote/promote.js';
import { PromotionFailed } from '../../src/apply/apply.js';
import { silentLogger } from '../../src/log.js';
import type { Plan } from '../../src/plan/plan.js';
import { FileRolloutControl } from '../../src/state/rollout-control.js';
import { Recorder, plannedEffects } from '../lab/recorder.js';

const STEPS = '      steps: [{ weight: 10, holdMs: 1500 }, { weight: 40, holdMs: 1500 }]';
const PAUSED = '      steps: [{ weight: 10, holdMs: 1500, pause: true, pauseDeadlineMs: 60000 }]';
const ROLLOUT = ['    rollout:', STEPS, '      gates: { minRequests: 20, tooFewWaitMs: 3000, latencyFloorMs: 20 }'].join('\n');
let p: Pipeline;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function newRelease(version: string): Promise<void> {
  await writeFile(join(p.appDir, 'VERSION'), `${version}\n`);
  const dev = await updateserver(p.project.dir, 'dev');
  assert.equal(dev.code, 0, explain(dev));
}

async function steps(line: string): Promise<void> {
  const file = join(p.project.dir, 'profiles', 'beta.yaml');
  await writeFile(file, (await readFile(file, 'utf8')).replace(/^ {6}steps: .*$/m, line));
}

async function recorded(dryRun: boolean): Promise<{ recorder: Recorder; result?: PromoteResult; error?: unknown }> {
  const recorder = new Recorder();
  try {
    const result = await promote({ project: p.project, stage: 'beta', logger: silentLogger, dryRun, instrument: recorder.instrument(), progress: () => { recorder.start(); return undefined; } });
    return { recorder, result };
  } catch (error) {
    return { recorder, error };
  }
}

const timeless = (plan: Plan) => ({ ...plan, createdAt: '(masked)' });

before(async () => {
  p = await startPipeline({ net: 88, betaServiceExtra: ROLLOUT });
  await newRelease('1.0.0');
  const beta = await updateserver(p.project.dir, 'beta');
  assert.equal(beta.code, 0, explain(beta));
});

after(async () => {
  await p?.stop();
});

test('a rollout executes exactly the effects its dry run listed: each step\'s share and map file, then the switch', async () => {
  await newRelease('1.1.0');
  const dry = await recorded(true);
  assert.equal(dry.error, undefined, String(dry.error));
  assert.deepEqual(dry.recorder.balancerWrites, [], 'the dry run changed a load balancer');
  const plan = dry.result!.plan;
  const load = startLoad(p.url.beta, { connections: 4 });
  const real = await recorded(false);
  const counted = await load.stop();
  assert.equal(real.error, undefined, String(real.error));
  assert.deepEqual(timeless(real.result!.plan), timeless(plan));
  const expected = plannedEffects(plan);
  assert.deepEqual(real.recorder.byTarget(), expected);
  const target = plan.services[0]!.target;
  const lb = expected.lb!.filter((e) => e.startsWith('set map'));
  assert.deepEqual(lb.filter((e) => / web\.weight /.test(e)).map((e) => e.split(' ').at(-1)), ['10', '40', '0'], 'the shares, then weight 0 with the switch');
  assert.ok(lb.some((e) => e.endsWith(` web.rollout web_${target}`)));
  assert.equal(counted.errors + counted.timeouts + counted.non2xx, 0, JSON.stringify(counted));
  console.log(`rollout: ${real.recorder.effects.length} effects recorded, equal to the dry run's plan; load ${JSON.stringify(counted)}`);
});

test('a rollout aborted at its pause runs the plan\'s failure path for the rollout: the recorded lines are the plan\'s', async () => {
  await steps(PAUSED);
  try {
    await newRelease('1.2.0');
    const dry = await recorded(true);
    assert.equal(dry.error, undefined, String(dry.error));
    const plan = dry.result!.plan;
    assert.deepEqual(plan.onFailure?.find((f) => f.on.includes('rollout'))?.phases.map((ph) => ph.name), ['revert', 'drain-new', 'stop-new']);
    // Under load: the step's gate needs its requests before the pause.
    const load = startLoad(p.url.beta, { connections: 4 });
    const running = recorded(false);
    const control = new FileRolloutControl(p.project.stateDir);
    for (let i = 0; i < 300 && (await control.readProgress('beta'))?.state !== 'paused'; i++) await sleep(100);
    const abort = await updateserver(p.project.dir, 'abort', 'beta');
    assert.equal(abort.code, 0, explain(abort));
    const real = await running;
    const counted = await load.stop();
    assert.equal(counted.errors + counted.timeouts + counted.non2xx, 0, JSON.stringify(counted));
    assert.ok(real.error instanceof PromotionFailed && real.error.rolledBack, String(real.error));
    const expected = plannedEffects(plan, 'rollout');
    assert.deepEqual(real.recorder.byTarget(), expected);
    const live = plan.services[0]!.live;
    assert.deepEqual(expected.lb!.filter((e) => e.startsWith('set map')).slice(-2), ['set map ' + p.lbs.beta.mapFile + ' web.weight 0', `set map ${p.lbs.beta.mapFile} web web_${live}`]);
    console.log(`aborted at the pause: ${real.recorder.effects.length} effects recorded, equal to the plan up to the rollout and its failure path`);
  } finally {
    await steps(STEPS);
  }
});
