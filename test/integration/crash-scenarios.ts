/*
 * What a crash or a concurrent run looks like from the command line, on a dev -> beta lab pipeline,
 * whichever state store the profiles name: crash.test.ts runs these on the local directory,
 * state-postgres.test.ts on PostgreSQL.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Pipeline } from '../lab/pipeline.js';
import { explain, updateserver, type CliResult } from './cli.js';

export { explain };

/** The slot that serves beta now, on a new connection. */
export async function servedSlot(p: Pipeline): Promise<string> {
  const res = await fetch(`${p.url.beta}/`, { headers: { connection: 'close' } });
  assert.equal(res.status, 200);
  return res.headers.get('x-slot') ?? '';
}

/**
 * After a promotion of beta was killed: a plain run refuses naming the interrupted run (and is not
 * blocked by the dead run's lock), --abandon cleans up leaving live where it was, and a second
 * --abandon finds nothing. Returns the refusal, for store-specific checks.
 */
export async function refuseThenAbandon(p: Pipeline, liveBefore: string): Promise<CliResult> {
  const refused = await updateserver(p.project.dir, 'beta');
  assert.equal(refused.code, 1, explain(refused));
  assert.match(refused.stderr, /an earlier promote of beta .* did not finish: it stopped during ".*" \(phase \w+/);
  assert.match(refused.stderr, /--abandon/);
  assert.doesNotMatch(refused.stderr, /is locked by/, 'the dead run\'s lock does not block');
  assert.equal(await servedSlot(p), liveBefore, 'live untouched');

  const abandon = await updateserver(p.project.dir, 'beta', '--abandon');
  assert.equal(abandon.code, 0, explain(abandon));
  assert.match(abandon.stdout, /abandoned the interrupted run: traffic had not moved; the new slot was stopped/);
  assert.equal(await servedSlot(p), liveBefore);

  const status = JSON.parse((await updateserver(p.project.dir, 'status', 'beta', '--json')).stdout) as { services: Array<{ hosts: Record<string, { running: Record<string, boolean> }> }>; problems: string[] };
  assert.deepEqual(status.problems, []);
  for (const h of p.betaHosts) {
    assert.equal(status.services[0]!.hosts[h]!.running[liveBefore === 'a' ? 'b' : 'a'], false, `${h}: the new slot was stopped`);
  }
  // --abandon with nothing to abandon says so and changes nothing.
  const nothing = await updateserver(p.project.dir, 'beta', '--abandon');
  assert.equal(nothing.code, 1, explain(nothing));
  assert.match(nothing.stderr, /no interrupted run of beta/);
  return refused;
}

/**
 * Two promotions of beta at once: exactly one runs, the other is refused naming the holder (the
 * other process: user@machine, its pid). Then a lock taken by hand blocks a flip, and --wait queues
 * behind it until it is released. Returns the two runs.
 */
export async function concurrentRuns(p: Pipeline, version: string): Promise<{ ran: CliResult; refused: CliResult }> {
  await writeFile(join(p.appDir, 'VERSION'), `${version}\n`);
  assert.equal((await updateserver(p.project.dir, 'dev')).code, 0);
  const [a, b] = await Promise.all([updateserver(p.project.dir, 'beta'), updateserver(p.project.dir, 'beta')]);
  const codes = [a.code, b.code].sort();
  assert.deepEqual(codes, [0, 1], `${explain(a)}\n----\n${explain(b)}`);
  const [ran, refused] = a.code === 0 ? [a, b] : [b, a];
  assert.match(refused.stderr, new RegExp(`stage beta is locked by \\S+@\\S+ \\(pid ${ran.pid}\\) since .*: "updateserver beta`));
  // A manual lock blocks too, and --wait queues behind it.
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
  return { ran, refused };
}
