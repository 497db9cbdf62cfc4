/*
 * What the orchestrator's own machine keeps: run logs per stage and the relay cache per service are
 * pruned like the journal archive, so that a machine that promotes all day does not fill its disk.
 * (The soak test, test/reliability/soak.test.ts, shows the bounds over 100 real operations.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pruneRunLogs, runLogFile, runLogsDir } from '../../src/state/run-logs.js';
import { pruneCache } from '../../src/promote/source.js';

async function withDir<T>(body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'updateserver-retention-'));
  try { return await body(dir); } finally { await rm(dir, { recursive: true, force: true }); }
}

const runId = (n: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString().replace(/[:.]/g, '-');

test('run logs: the newest N of each stage are kept, whatever the action; other files are left alone', async () => {
  await withDir(async (state) => {
    await mkdir(runLogsDir(state), { recursive: true });
    const actions = ['promote', 'flip', 'rollback', 'refresh'] as const;
    for (let n = 0; n < 12; n++) {
      await writeFile(runLogFile(state, 'beta', actions[n % 4]!, runId(n)), '{}\n');
      // A stage whose name starts like the other's is another stage.
      await writeFile(runLogFile(state, 'beta-eu', 'promote', runId(n)), '{}\n');
    }
    await writeFile(join(runLogsDir(state), 'notes.txt'), 'mine\n');
    const removed = await pruneRunLogs(state, 5);
    assert.equal(removed.length, 14);
    const left = (await readdir(runLogsDir(state))).sort();
    assert.deepEqual(left.filter((f) => f.startsWith('beta-eu-')), [7, 8, 9, 10, 11].map((n) => `beta-eu-promote-${runId(n)}.jsonl`));
    assert.deepEqual(left.filter((f) => /^beta-(promote|flip|rollback|refresh)-/.test(f)).map((f) => f.replace(/^beta-\w+-/, '')).sort(), [7, 8, 9, 10, 11].map((n) => `${runId(n)}.jsonl`).sort());
    assert.ok(left.includes('notes.txt'));
    // Nothing to do the second time; a missing directory is no error.
    assert.deepEqual(await pruneRunLogs(state, 5), []);
    assert.deepEqual(await pruneRunLogs(join(state, 'nowhere'), 5), []);
  });
});

test('relay cache: the newest N releases by last use are kept, always with the current one; staging dirs are left alone', async () => {
  await withDir(async (root) => {
    for (let n = 0; n < 8; n++) {
      await mkdir(join(root, `r${n}`));
      const t = new Date(Date.UTC(2026, 0, 1, 0, n));
      await utimes(join(root, `r${n}`), t, t);
    }
    await mkdir(join(root, '.staging'));
    // r1 is the release of this run: old, but kept.
    const removed = await pruneCache(root, 'r1', 4);
    assert.deepEqual(removed.sort(), ['r0', 'r2', 'r3', 'r4']);
    assert.deepEqual((await readdir(root)).sort(), ['.staging', 'r1', 'r5', 'r6', 'r7']);
    assert.deepEqual(await pruneCache(join(root, 'nowhere'), 'r1', 4), []);
  });
});
