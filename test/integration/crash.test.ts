/*
 * The orchestrator killed with SIGKILL in the middle of a promotion, and two promotions at once:
 * live keeps serving with 0 failed requests, the next run says what happened and cleans up, and
 * only one of two concurrent runs goes ahead.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { startLoad } from '../lab/load.js';
import { CLI, updateserver } from './cli.js';
import { concurrentRuns, explain, refuseThenAbandon, servedSlot } from './crash-scenarios.js';

let p: Pipeline;
const slot = () => servedSlot(p);

before(async () => {
  p = await startPipeline({ net: 65, devHealthDeadlineMs: 10_000 });
  for (const stage of ['dev', 'beta']) {
    const r = await updateserver(p.project.dir, stage);
    assert.equal(r.code, 0, explain(r));
  }
});

after(async () => { await p?.stop(); });

test('a promotion killed with SIGKILL leaves live serving; the next run reports it and --abandon cleans up', async () => {
  // A slow start keeps the run in its health-check phase long enough to be killed there.
  await writeFile(join(p.appDir, 'VERSION'), '2.0.0\n');
  await writeFile(join(p.appDir, 'startup-delay-ms'), '4000\n');
  try {
    assert.equal((await updateserver(p.project.dir, 'dev')).code, 0);
  } finally {
    await rm(join(p.appDir, 'startup-delay-ms'));
  }
  const liveBefore = await slot();
  const load = startLoad(`${p.url.beta}/`, { connections: 4 });
  const child = spawn(process.execPath, [CLI, 'beta', '-C', p.project.dir], { stdio: 'ignore' });
  // Killed once the journal shows the health checks under way: the new slot has been started.
  const journal = join(p.project.stateDir, 'journal', 'beta.jsonl');
  const deadline = Date.now() + 20_000;
  while (!(existsSync(journal) && (await readFile(journal, 'utf8')).includes('"phase":"check"'))) {
    assert.ok(Date.now() < deadline, 'the promotion reached its health checks');
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  await new Promise((r) => child.once('close', r));

  await refuseThenAbandon(p, liveBefore);
  const result = await load.stop();
  assert.ok(result.requests > 100);
  assert.equal(result.non2xx + result.errors + result.timeouts, 0, JSON.stringify(result));
  // And the next promotion (of a release that starts normally) goes through.
  await writeFile(join(p.appDir, 'VERSION'), '2.0.1\n');
  assert.equal((await updateserver(p.project.dir, 'dev')).code, 0);
  const next = await updateserver(p.project.dir, 'beta');
  assert.equal(next.code, 0, explain(next));
  assert.notEqual(await slot(), liveBefore);
});

test('two promotions of one stage at once: one runs, the other is refused naming the holder', async () => {
  await concurrentRuns(p, '3.0.0');
});
