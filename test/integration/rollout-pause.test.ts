/*
 * Holding a rollout for a person (issue 20, part 4) on the real lab, under load (test/lab/load.ts, every
 * outcome counted; 0 failed requests in each case):
 *   - pause -> continue: the dry run shows the pause and its deadline; the run stops at step 1 (10%)
 *     holding the lock; `status` (text and --json) shows the paused step, the shares and live gate
 *     figures from show stat; `updateserver continue beta` from another process lets it go on to the switch;
 *   - pause -> abort: `updateserver abort beta` puts all traffic back on the old slot at once, the new slot
 *     is stopped, the release marked bad with who aborted;
 *   - pause deadline: with nobody answering, the run aborts by itself when the deadline passes.
 * Holds are 2 s; one pipeline for the file (net 86).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseShowMap } from '../../src/lb/map.js';
import { haproxyCommand } from '../lab/lab-haproxy.js';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { startLoad, type LoadResult } from '../lab/load.js';
import { updateserver, explain, type CliResult } from './cli.js';
import type { StageStatus } from '../../src/status/status.js';

let p: Pipeline;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const ROLLOUT = [
  '    rollout:',
  '      steps: [{ weight: 10, holdMs: 2000, pause: true, pauseDeadlineMs: 120000 }, { weight: 50, holdMs: 2000 }]',
  '      gates: { minRequests: 30, tooFewWaitMs: 4000, latencyFloorMs: 20 }',
].join('\n');

before(async () => {
  p = await startPipeline({ net: 86, betaServiceExtra: ROLLOUT });
  const dev = await updateserver(p.project.dir, 'dev');
  assert.equal(dev.code, 0, explain(dev));
  const beta = await updateserver(p.project.dir, 'beta');
  assert.equal(beta.code, 0, explain(beta));
});

after(async () => {
  await p?.stop();
});

async function map(): Promise<{ weight: number; web: string }> {
  const entries = new Map(parseShowMap(await haproxyCommand(p.lbs.beta.socket, `show map ${p.lbs.beta.mapFile}`)).map((e) => [e.key, e.value]));
  return { weight: Number(entries.get('web.weight') ?? 0), web: entries.get('web') ?? 'web_a' };
}

async function release(version: string): Promise<void> {
  await writeFile(join(p.appDir, 'VERSION'), `${version}\n`);
  const dev = await updateserver(p.project.dir, 'dev');
  assert.equal(dev.code, 0, explain(dev));
}

async function setDeadline(ms: number): Promise<void> {
  const file = join(p.project.dir, 'profiles', 'beta.yaml');
  await writeFile(file, (await readFile(file, 'utf8')).replace(/pauseDeadlineMs: \d+/, `pauseDeadlineMs: ${ms}`));
}

/** Polls status --json until the rollout shows paused; returns that status. */
async function waitPaused(run: Promise<CliResult>, notPid?: number): Promise<StageStatus> {
  let done = false;
  void run.then(() => { done = true; });
  for (let i = 0; i < 120 && !done; i++) {
    const st = await updateserver(p.project.dir, 'status', 'beta', '--json');
    const status = JSON.parse(st.stdout) as StageStatus;
    const step = status.services[0]?.rolloutStep;
    if (step?.state === 'paused' && step.running && step.pid !== notPid) return status;
    await sleep(250);
  }
  throw new Error(`the rollout never paused: ${explain(await run)}`);
}

/** Starts the promotion of beta under load; `during` runs once it is paused. */
async function pausedRun(during: (status: StageStatus) => Promise<void>): Promise<{ cli: CliResult; load: LoadResult; before: { weight: number; web: string } }> {
  const before = await map();
  const load = startLoad(p.url.beta, { connections: 8 });
  await sleep(300);
  const run = updateserver(p.project.dir, 'beta');
  const status = await waitPaused(run);
  await during(status);
  const cli = await run;
  await sleep(300);
  return { cli, load: await load.stop(), before };
}

test('pause -> continue: the run waits at 10% holding the lock, status shows the step, shares and live gate figures; continue from another process goes on to the switch; 0 failed requests', async () => {
  await release('2.1.0');
  const dry = await updateserver(p.project.dir, 'beta', '--dry-run');
  assert.equal(dry.code, 0, explain(dry));
  assert.match(dry.stdout, /rollout: 10% for 2000 ms then a pause \(deadline 120000 ms\), then 50% for 2000 ms, then the switch \(100%\)/);
  assert.match(dry.stdout, /step 1: pause at 10% until updateserver continue beta \(or abort beta\), at most 120000 ms/);
  assert.match(dry.stdout, /deadline 120000 ms: then the rollout aborts/);
  let newSlot = '';
  const { cli, load, before } = await pausedRun(async (status) => {
    const step = status.services[0]!.rolloutStep!;
    newSlot = step.newBackend;
    assert.equal(step.step, 1);
    assert.equal(step.steps, 2);
    assert.equal(step.weight, 10);
    assert.deepEqual(step.shares, { lb: 10 });
    assert.ok(step.deadline && Date.parse(step.deadline) > Date.now());
    // Held: the map keeps the share while nobody answers.
    await sleep(1500);
    assert.deepEqual(await map(), { weight: 10, web: step.oldBackend });
    const text = await updateserver(p.project.dir, 'status', 'beta');
    assert.match(text.stdout, /rollout PAUSED at step 1 of 2 \(10%\) since \S+, run pid \d+; aborts at \S+: updateserver continue beta \| updateserver abort beta/);
    assert.match(text.stdout, new RegExp(`shares: lb 10% to ${newSlot}`));
    const figures = /gates since then: new slot (\d+) request\(s\) \((\d+\.\d+)% of the window\), 5xx 0\.00% vs 0\.00%, errors 0\.00% vs 0\.00%, response time \d+ ms vs \d+ ms/.exec(text.stdout);
    assert.ok(figures, text.stdout);
    assert.ok(Number(figures[1]) > 0, 'the live figures count the requests of the pause');
    assert.ok(Math.abs(Number(figures[2]) - 10) < 8, `share ${figures[2]}% at 10%`);
    // The paused run holds the stage's lock: another run would wait or be refused.
    const other = await updateserver(p.project.dir, 'beta', '--dry-run');
    assert.match(other.stderr, /stage beta is locked by .*: a real run would wait or be refused/);
    const answer = await updateserver(p.project.dir, 'continue', 'beta');
    assert.equal(answer.code, 0, explain(answer));
    assert.match(answer.stdout, /took "continue" at step 1 of web \(10%\)/);
  });
  console.log(`pause -> continue: ${cli.ms} ms; load ${JSON.stringify(load)}`);
  assert.equal(cli.code, 0, explain(cli));
  assert.match(cli.stderr, /rollout of web paused at step 1 \(10%\): continued by \S+ \(cli\)/);
  assert.match(cli.stderr, /step 2 \(50%\) passed/);
  assert.equal(load.errors + load.timeouts + load.non2xx, 0, JSON.stringify(load));
  assert.notEqual(before.web, newSlot);
  assert.deepEqual(await map(), { weight: 0, web: newSlot });
  // Nothing is paused any more: continue is refused, naming why.
  const late = await updateserver(p.project.dir, 'continue', 'beta');
  assert.equal(late.code, 1, explain(late));
  assert.match(late.stderr, /no rollout of beta is paused/);
});

test('pause -> abort: all traffic back on the old slot at once, the new slot stopped, the release marked bad naming who aborted; 0 failed requests', async () => {
  await release('2.2.0');
  let newSlot = '';
  const { cli, load, before } = await pausedRun(async (status) => {
    newSlot = status.services[0]!.rolloutStep!.newBackend;
    const answer = await updateserver(p.project.dir, 'abort', 'beta', '--json');
    assert.equal(answer.code, 0, explain(answer));
    assert.equal((JSON.parse(answer.stdout) as { action: string }).action, 'abort');
  });
  console.log(`pause -> abort: ${cli.ms} ms; load ${JSON.stringify(load)}`);
  assert.notEqual(cli.code, 0, explain(cli));
  assert.match(cli.stderr, /rollout of web stopped at step 1 \(10%\): aborted by \S+ \(updateserver abort beta\) during the pause; during the pause: new slot \d+ request/);
  assert.match(cli.stderr, /lb: switched back to the previous slots/);
  assert.deepEqual(await map(), before);
  assert.match(await readFile(p.lbs.beta.mapFile, 'utf8'), /^web\.weight 0$/m);
  assert.equal(load.errors + load.timeouts + load.non2xx, 0, JSON.stringify(load));
  const status = JSON.parse((await updateserver(p.project.dir, 'status', 'beta', '--json')).stdout) as StageStatus;
  const slot = newSlot.endsWith('_a') ? 'a' : 'b';
  for (const h of p.betaHosts) assert.equal((status.services[0]!.hosts[h] as { running: Record<string, boolean> }).running[slot], false, `${h}: the new slot was stopped`);
  const again = await updateserver(p.project.dir, 'beta', '--dry-run');
  assert.notEqual(again.code, 0);
  assert.match(again.stderr, /marked bad in beta: .*aborted by/);
});

test('pause deadline: nobody answers, the run aborts by itself when the deadline passes, traffic back on the old slot; 0 failed requests', async () => {
  await setDeadline(3000);
  await release('2.3.0');
  const t0 = Date.now();
  const { cli, load, before } = await pausedRun(async () => {});
  console.log(`pause deadline: ${cli.ms} ms (test ${Date.now() - t0} ms); load ${JSON.stringify(load)}`);
  assert.notEqual(cli.code, 0, explain(cli));
  assert.match(cli.stderr, /rollout of web stopped at step 1 \(10%\): the pause deadline passed \(3000 ms, pauseDeadlineMs\) with no continue/);
  assert.deepEqual(await map(), before);
  assert.equal(load.errors + load.timeouts + load.non2xx, 0, JSON.stringify(load));
  const again = await updateserver(p.project.dir, 'beta', '--dry-run');
  assert.match(again.stderr, /marked bad in beta: .*pause deadline passed/);
  await setDeadline(120000);
});

test('killed while paused: status says the run is gone, continue is refused at once; --resume goes on from the paused step, pauses again, and continue finishes it; 0 failed requests', async () => {
  await release('2.4.0');
  const before = await map();
  const load = startLoad(p.url.beta, { connections: 8 });
  await sleep(300);
  const run = updateserver(p.project.dir, 'beta');
  const paused = await waitPaused(run);
  const step = paused.services[0]!.rolloutStep!;
  // The run this test started, by its pid.
  process.kill(step.pid, 'SIGKILL');
  const killed = await run;
  assert.equal(killed.code, null, explain(killed));
  assert.deepEqual(await map(), { weight: 10, web: before.web }, 'the split stays where the run left it');
  const shown = await updateserver(p.project.dir, 'status', 'beta');
  assert.match(shown.stdout, new RegExp(`rollout stopped at step 1 of 2 \\(10%\\): its run \\(pid ${step.pid}\\) is gone; updateserver beta --resume goes on from this step`));
  const t0 = Date.now();
  const refused = await updateserver(p.project.dir, 'continue', 'beta');
  assert.equal(refused.code, 1, explain(refused));
  assert.match(refused.stderr, /no longer holds the stage's lock/);
  assert.ok(Date.now() - t0 < 5000, 'refused without waiting for an answer');
  const resumed = updateserver(p.project.dir, 'beta', '--resume');
  const again = await waitPaused(resumed, step.pid);
  assert.equal(again.services[0]!.rolloutStep!.step, 1);
  assert.notEqual(again.services[0]!.rolloutStep!.pid, step.pid);
  const answer = await updateserver(p.project.dir, 'continue', 'beta');
  assert.equal(answer.code, 0, explain(answer));
  const cli = await resumed;
  await sleep(300);
  const counted = await load.stop();
  console.log(`killed while paused, --resume: ${cli.ms} ms; load ${JSON.stringify(counted)}`);
  assert.equal(cli.code, 0, explain(cli));
  assert.match(cli.stderr, /going on with the interrupted rollout from step 1 of web/);
  assert.equal(counted.errors + counted.timeouts + counted.non2xx, 0, JSON.stringify(counted));
  assert.deepEqual(await map(), { weight: 0, web: step.newBackend });
});
