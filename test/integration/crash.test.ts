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
import { CLI, updateserver, type CliResult, explain } from './cli.js';

let p: Pipeline;

async function slot(): Promise<string> {
  const res = await fetch(`${p.url.beta}/`, { headers: { connection: 'close' } });
  assert.equal(res.status, 200);
  return res.headers.get('x-slot') ?? '';
}

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

  const refused = await updateserver(p.project.dir, 'beta');
  assert.equal(refused.code, 1, explain(refused));
  assert.match(refused.stderr, /an earlier promote of beta .* did not finish: it stopped during ".*" \(phase \w+/);
  assert.match(refused.stderr, /--abandon/);
  assert.equal(await slot(), liveBefore, 'live untouched');

  const abandon = await updateserver(p.project.dir, 'beta', '--abandon');
  assert.equal(abandon.code, 0, explain(abandon));
  assert.match(abandon.stdout, /abandoned the interrupted run: traffic had not moved; the new slot was stopped/);
  const result = await load.stop();
  assert.ok(result.requests > 100);
  assert.equal(result.non2xx + result.errors + result.timeouts, 0, JSON.stringify(result));
  assert.equal(await slot(), liveBefore);

  const status = JSON.parse((await updateserver(p.project.dir, 'status', 'beta', '--json')).stdout) as { services: Array<{ hosts: Record<string, { running: Record<string, boolean> }> }>; problems: string[] };
  assert.deepEqual(status.problems, []);
  for (const h of p.betaHosts) {
    assert.equal(status.services[0]!.hosts[h]!.running[liveBefore === 'a' ? 'b' : 'a'], false, `${h}: the new slot was stopped`);
  }
  // --abandon with nothing to abandon says so and changes nothing.
  const nothing = await updateserver(p.project.dir, 'beta', '--abandon');
  assert.equal(nothing.code, 1, explain(nothing));
  assert.match(nothing.stderr, /no interrupted run of beta/);
  // And the next promotion (of a release that starts normally) goes through.
  await writeFile(join(p.appDir, 'VERSION'), '2.0.1\n');
  assert.equal((await updateserver(p.project.dir, 'dev')).code, 0);
  const next = await updateserver(p.project.dir, 'beta');
  assert.equal(next.code, 0, explain(next));
  assert.notEqual(await slot(), liveBefore);
});

test('two promotions of one stage at once: one runs, the other is refused naming the holder', async () => {
  await writeFile(join(p.appDir, 'VERSION'), '3.0.0\n');
  assert.equal((await updateserver(p.project.dir, 'dev')).code, 0);
  const [a, b] = await Promise.all([updateserver(p.project.dir, 'beta'), updateserver(p.project.dir, 'beta')]);
  const codes = [a.code, b.code].sort();
  assert.deepEqual(codes, [0, 1], `${explain(a)}\n----\n${explain(b)}`);
  const refused = a.code === 1 ? a : b;
  assert.match(refused.stderr, /stage beta is locked by \S+@\S+ \(pid \d+\) since .*: "updateserver beta/);
  // A manual lock blocks too, and --wait queues behind a running promotion.
  const held = await updateserver(p.project.dir, 'lock', 'acquire', 'beta', '-m', 'db maintenance');
  assert.equal(held.code, 0, explain(held));
  const blocked = await updateserver(p.project.dir, 'flip', 'beta');
  assert.equal(blocked.code, 1);
  assert.match(blocked.stderr, /locked by .*"db maintenance"/);
  // --wait queues behind the holder and goes ahead once it lets go.
  const waiting = updateserver(p.project.dir, 'flip', 'beta', '--wait', '60');
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal((await updateserver(p.project.dir, 'lock', 'release', 'beta')).code, 0);
  const waited = await waiting;
  assert.equal(waited.code, 0, explain(waited));
  assert.match(waited.stderr, /waiting for the lock of beta, held by .*"db maintenance"/);
});
