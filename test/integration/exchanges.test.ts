/*
 * Sequential remote exchanges per host in a promotion (issue 17), counted on the lab at the transport
 * (test/lab/exchanges.ts: every command and every stream a host is sent, through the real connections).
 * Each exchange pays a network round trip, and without remote sessions a login shell, so a promotion
 * should need as few as it can: the previous stage's host is read once (its slots, releases and the
 * hashes of both slots' manifests) when the local cache holds the live release, and each target host
 * pays its probe, the copy (rsync's stream), finishing the release, starting the slot, moving its
 * `current` link right after the switch (issue 18; `currentLink: false` saves it) and stopping the old one. The counts are printed; docs/decisions/0012 and BENCHMARKS.md give them before and after.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { updateserver, explain } from './cli.js';
import { promote } from '../../src/promote/promote.js';
import { silentLogger } from '../../src/log.js';
import { ExchangeCounter } from '../lab/exchanges.js';

const NET = 21;
let p: Pipeline;

async function newRelease(version: string): Promise<void> {
  await writeFile(join(p.appDir, 'VERSION'), `${version}\n`);
  const dev = await updateserver(p.project.dir, 'dev');
  assert.equal(dev.code, 0, explain(dev));
}

async function counted(): Promise<ExchangeCounter> {
  const counter = new ExchangeCounter();
  const result = await promote({ project: p.project, stage: 'beta', logger: silentLogger, instrument: counter.instrument() });
  assert.equal(result.applied, true);
  console.log(counter.report());
  return counter;
}

before(async () => {
  p = await startPipeline({ net: NET, betaHosts: 2 });
  await newRelease('1.0.0');
  const beta = await updateserver(p.project.dir, 'beta');
  assert.equal(beta.code, 0, explain(beta));
});

after(async () => {
  await p?.stop();
});

test('a promotion reads the previous stage\'s host in one exchange when the cache holds its live release; each target host needs six', async () => {
  await newRelease('1.1.0');
  const counter = await counted();
  assert.equal(counter.count('dev1'), 1, `dev1: ${counter.report()}`);
  for (const h of p.betaHosts) {
    assert.equal(counter.count(h), 6, counter.report());
    // The copy is a stream of its own (rsync), the other five are commands in the host's session.
    assert.deepEqual(counter.byHost.get(h)!.map((e) => e.kind), ['exec', 'stream', 'exec', 'exec', 'exec', 'exec']);
  }
});

test('without the release in the local cache, the previous stage\'s host is asked for the manifest too, and the pull streams it', async () => {
  await newRelease('1.2.0');
  await rm(join(p.project.stateDir, 'cache'), { recursive: true, force: true });
  const counter = await counted();
  assert.deepEqual(counter.byHost.get('dev1')!.map((e) => e.kind), ['exec', 'exec', 'stream'], counter.report());
  for (const h of p.betaHosts) assert.equal(counter.count(h), 6, counter.report());
});
