/*
 * Team state in PostgreSQL on the lab (net 120): dev and beta name one store (`state: { postgres }`),
 * database us_state_lab. Two `updateserver beta` started at once: one runs, the other is refused
 * naming it; status and history read the promotion back from PostgreSQL while the local state
 * directory holds no state; a promotion killed with SIGKILL is named by the next run from the
 * PostgreSQL journal, --abandon recovers, and the dead run's lock does not stay stuck.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { sql } from '../lab/pg.js';
import { updateserver, updateserverKilledAt } from './cli.js';
import { concurrentRuns, explain, refuseThenAbandon, servedSlot } from './crash-scenarios.js';
import type { HistoryEntry } from '../../src/state/store.js';

const DB = 'us_state_lab';
const STATE = `state:\n  postgres: postgres://postgres@127.0.0.1:5432/${DB}`;
let p: Pipeline;

before(async () => {
  await sql('postgres', `DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await sql('postgres', `CREATE DATABASE ${DB}`);
  p = await startPipeline({ net: 120, devHealthDeadlineMs: 10_000, devTopExtra: STATE, betaTopExtra: STATE });
  for (const stage of ['dev', 'beta']) {
    const r = await updateserver(p.project.dir, stage);
    assert.equal(r.code, 0, explain(r));
  }
});

after(async () => {
  await p?.stop();
  await sql('postgres', `DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
});

test('status and history read the promotion from PostgreSQL; the local state directory holds no state', async () => {
  const history = await updateserver(p.project.dir, 'history', 'beta', '--json');
  assert.equal(history.code, 0, explain(history));
  const runs = JSON.parse(history.stdout) as HistoryEntry[];
  assert.equal(runs.length, 1);
  assert.deepEqual([runs[0]!.stage, runs[0]!.action, runs[0]!.result], ['beta', 'promote', 'ok']);
  const release = runs[0]!.services.web!.release;

  const status = await updateserver(p.project.dir, 'status', 'beta', '--json');
  assert.equal(status.code, 0, explain(status));
  const s = JSON.parse(status.stdout) as { services: Array<{ recorded: string }>; last: HistoryEntry };
  assert.equal(s.last.services.web!.release, release);
  // The recorded live slot, read from PostgreSQL, is the one that serves.
  assert.equal(s.services[0]!.recorded, await servedSlot(p));

  // The very rows, straight from the database.
  const rows = await sql<{ stage: string; live: string }>(DB, "SELECT stage, state->'services'->'web'->>'live' AS live FROM updateserver.stage_state ORDER BY stage");
  assert.deepEqual(rows.map((r) => r.stage), ['beta', 'dev']);
  assert.equal(rows[0]!.live, s.services[0]!.recorded);
  const entries = await sql<{ stage: string }>(DB, 'SELECT stage FROM updateserver.history ORDER BY id');
  assert.deepEqual(entries.map((e) => e.stage), ['dev', 'beta']);
  for (const local of ['state', 'history', 'locks', 'journal']) assert.equal(existsSync(join(p.project.stateDir, local)), false, `${local}/ in the local state directory`);
});

test('two promotions of beta started at once from two processes: one runs, the other is refused naming the holder', async () => {
  const { ran, refused } = await concurrentRuns(p, '3.0.0');
  // The same exit status as with the local lock file (crash.test.ts runs the same scenario there).
  assert.equal(refused.code, 1);
  assert.equal(ran.code, 0);
  assert.match(refused.stderr, /what to do: wait for that run to finish \(or use --wait\)/);
  assert.deepEqual(await sql(DB, 'SELECT stage FROM updateserver.locks'), [], 'every lock was released');
  for (const local of ['state', 'history', 'locks', 'journal']) assert.equal(existsSync(join(p.project.stateDir, local)), false, `${local}/ in the local state directory`);
});

test('a promotion killed with SIGKILL: the next run names it from the PostgreSQL journal, --abandon recovers, the lock is not stuck', async () => {
  await writeFile(join(p.appDir, 'VERSION'), '4.0.0\n');
  assert.equal((await updateserver(p.project.dir, 'dev')).code, 0);
  const liveBefore = await servedSlot(p);
  const killed = await updateserverKilledAt(p.project.dir, 'check:1', 'beta');
  assert.equal(killed.signal, 'SIGKILL', `the run was to kill itself after its first health check: exit ${killed.code}\n${killed.stderr}`);

  // What it left in PostgreSQL: its lock record, and a journal run without a finish entry.
  const [lock] = await sql<{ pid: number }>(DB, "SELECT (holder->>'pid')::int AS pid FROM updateserver.locks WHERE stage = 'beta'");
  assert.equal(lock?.pid, killed.pid);
  const open = await sql<{ run: string }>(DB, `SELECT run FROM updateserver.journal s WHERE stage = 'beta' AND seq = 0
    AND NOT EXISTS (SELECT 1 FROM updateserver.journal f WHERE f.run = s.run AND f.entry->>'type' = 'finish')`);
  assert.equal(open.length, 1);
  const lockStatus = await updateserver(p.project.dir, 'lock', 'status', 'beta');
  assert.match(lockStatus.stdout, new RegExp(`beta: locked by \\S+ \\(pid ${killed.pid}\\) .*\\(stale: its PostgreSQL session ended \\(process ${killed.pid} on \\S+ is gone\\); the next run takes it over\\)`));

  const refused = await refuseThenAbandon(p, liveBefore);
  assert.match(refused.stderr, new RegExp(`an earlier promote of beta by \\S+ \\(pid ${killed.pid}, started`));
  assert.match(refused.stderr, new RegExp(`took over the lock of beta from \\S+ \\(pid ${killed.pid}\\).*: its PostgreSQL session ended`));
  const archived = await sql<{ result: string }>(DB, `SELECT entry->>'result' AS result FROM updateserver.journal WHERE run = '${open[0]!.run}' AND entry->>'type' = 'finish'`);
  assert.match(archived[0]?.result ?? '', /^cleaned up: traffic had not moved/);
  assert.deepEqual(await sql(DB, 'SELECT stage FROM updateserver.locks'), [], 'no lock left behind');

  // And the next promotion goes through.
  const next = await updateserver(p.project.dir, 'beta');
  assert.equal(next.code, 0, explain(next));
  assert.notEqual(await servedSlot(p), liveBefore);
});
