/*
 * A rollout's pause with the PostgreSQL state store (issue 20; net 87, database us_h20_pause_pg): the
 * paused run records its pause in the store's `rollout` table (read here straight from the database)
 * and takes `updateserver continue beta` and `updateserver abort beta` from other processes through it,
 * under load with 0 failed requests; the local state directory holds no rollout record.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseShowMap } from '../../src/lb/map.js';
import { haproxyCommand } from '../lab/lab-haproxy.js';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { startLoad } from '../lab/load.js';
import { sql } from '../lab/pg.js';
import { updateserver, explain, type CliResult } from './cli.js';
import type { StageStatus } from '../../src/status/status.js';
import type { RolloutProgress } from '../../src/state/rollout-control.js';

const DB = 'us_h20_pause_pg';
const STATE = `state:\n  postgres: postgres://postgres@127.0.0.1:5432/${DB}`;
const ROLLOUT = [
  '    rollout:',
  '      steps: [{ weight: 20, holdMs: 2000, pause: true, pauseDeadlineMs: 120000 }]',
  '      gates: { minRequests: 30, tooFewWaitMs: 4000, latencyFloorMs: 20 }',
].join('\n');
let p: Pipeline;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  await sql('postgres', `DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await sql('postgres', `CREATE DATABASE ${DB}`);
  p = await startPipeline({ net: 87, devHealthDeadlineMs: 10_000, devTopExtra: STATE, betaTopExtra: STATE, betaServiceExtra: ROLLOUT });
  for (const stage of ['dev', 'beta']) {
    const r = await updateserver(p.project.dir, stage);
    assert.equal(r.code, 0, explain(r));
  }
});

after(async () => {
  await p?.stop();
  await sql('postgres', `DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
});

async function map(): Promise<{ weight: number; web: string }> {
  const entries = new Map(parseShowMap(await haproxyCommand(p.lbs.beta.socket, `show map ${p.lbs.beta.mapFile}`)).map((e) => [e.key, e.value]));
  return { weight: Number(entries.get('web.weight') ?? 0), web: entries.get('web') ?? 'web_a' };
}

async function pausedThen(version: string, answer: 'continue' | 'abort'): Promise<{ cli: CliResult; before: { weight: number; web: string }; row: RolloutProgress; newBackend: string }> {
  await writeFile(join(p.appDir, 'VERSION'), `${version}\n`);
  const dev = await updateserver(p.project.dir, 'dev');
  assert.equal(dev.code, 0, explain(dev));
  const before = await map();
  const load = startLoad(p.url.beta, { connections: 8 });
  await sleep(300);
  const run = updateserver(p.project.dir, 'beta');
  let done = false;
  void run.then(() => { done = true; });
  let status: StageStatus | undefined;
  for (let i = 0; i < 120 && !done; i++) {
    status = JSON.parse((await updateserver(p.project.dir, 'status', 'beta', '--json')).stdout) as StageStatus;
    if (status.services[0]?.rolloutStep?.state === 'paused') break;
    await sleep(250);
  }
  assert.equal(status?.services[0]?.rolloutStep?.state, 'paused', explain(done ? await run : { code: null, stdout: '', stderr: 'still running', ms: 0 }));
  const [row] = await sql<{ body: RolloutProgress }>(DB, `SELECT body FROM updateserver.rollout WHERE stage = 'beta' AND kind = 'progress'`);
  const a = await updateserver(p.project.dir, answer, 'beta');
  assert.equal(a.code, 0, explain(a));
  const cli = await run;
  await sleep(300);
  const result = await load.stop();
  console.log(`postgres state, pause -> ${answer}: ${cli.ms} ms; load ${JSON.stringify(result)}`);
  assert.equal(result.errors + result.timeouts + result.non2xx, 0, JSON.stringify(result));
  return { cli, before, row: row!.body, newBackend: status!.services[0]!.rolloutStep!.newBackend };
}

test('pause -> continue through the PostgreSQL state store: the pause is a row of its rollout table; 0 failed requests', async () => {
  const { cli, before, row, newBackend } = await pausedThen('3.1.0', 'continue');
  assert.equal(cli.code, 0, explain(cli));
  assert.deepEqual({ state: row.state, step: row.step, weight: row.weight, service: row.service }, { state: 'paused', step: 1, weight: 20, service: 'web' });
  assert.match(cli.stderr, /continued by \S+ \(cli\)/);
  assert.notEqual(before.web, newBackend);
  assert.deepEqual(await map(), { weight: 0, web: newBackend });
  assert.equal(existsSync(join(p.project.stateDir, 'rollout')), false, 'no rollout record in the local state directory');
  // The answered request was taken back out of the table.
  assert.equal((await sql(DB, `SELECT 1 FROM updateserver.rollout WHERE stage = 'beta' AND kind = 'request'`)).length, 0);
});

test('pause -> abort through the PostgreSQL state store: all traffic back on the old slot, the release marked bad; 0 failed requests', async () => {
  const { cli, before } = await pausedThen('3.2.0', 'abort');
  assert.notEqual(cli.code, 0, explain(cli));
  assert.match(cli.stderr, /rollout of web stopped at step 1 \(20%\): aborted by \S+ \(updateserver abort beta\)/);
  assert.deepEqual(await map(), before);
  const again = await updateserver(p.project.dir, 'beta', '--dry-run');
  assert.match(again.stderr, /marked bad in beta: .*aborted by/);
});
