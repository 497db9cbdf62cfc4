/*
 * One contract, two state stores: the local directory and PostgreSQL (the lab's, database
 * us_state_contract, created and dropped here). The same tests run against both: stage state,
 * history, the lock (refusal naming the holder, a crashed holder taken over, locks by hand, release,
 * --force, --wait) and the journal (a run killed mid-step is found by the next one, then archived).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from '../lab/pg.js';
import type { StateBackend } from '../../src/state/backend.js';
import { acquireWaiting, describeHolder, LockHeld, type LockInfo } from '../../src/state/lock.js';
import type { HistoryEntry, StageState } from '../../src/state/store.js';
import { CONTRACT_DB, openStore, pgConfig, samplePlan } from './state-stores.js';
import { probeStateStore } from '../../src/check/state-store.js';
import type { Stage, StateBackendConfig } from '../../src/config/model.js';
import type { UpdateserverError } from '../../src/errors.js';
import { postgresBackend } from '../../src/state/backend.js';
import { StateDb } from '../../src/state/postgres/db.js';

const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'state-child.js');
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'us-state-contract-'));
  await sql('postgres', `DROP DATABASE IF EXISTS ${CONTRACT_DB} WITH (FORCE)`);
  await sql('postgres', `CREATE DATABASE ${CONTRACT_DB}`);
});

after(async () => {
  await sql('postgres', `DROP DATABASE IF EXISTS ${CONTRACT_DB} WITH (FORCE)`);
  await rm(dir, { recursive: true, force: true });
});

const state = (stage: string, live: 'a' | 'b', release: string): StageState => ({
  stage, services: { web: { live, releases: { [live]: release }, updated: new Date().toISOString(), passed: { [release]: { result: 'passed', codeHash: 'f'.repeat(64), at: '2026-11-29T00:00:00.000Z' } } } },
});
const run = (stage: string, i: number): HistoryEntry => ({
  at: new Date(Date.UTC(2026, 10, 29, 0, 0, i)).toISOString(), stage, action: 'promote', result: 'ok', user: 'ci',
  services: { web: { from: 'a', to: 'b', release: `r${i}` } }, durationMs: i,
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs state-child.js: it takes the stage's lock, announces a step in its journal and SIGKILLs itself. */
function crashedHolder(store: string, stage: string): Promise<LockInfo> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, store, stage], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`state-child ended with ${code ?? signal}: ${err}`));
      else resolve(JSON.parse(out) as LockInfo);
    });
  });
}

for (const kind of ['local', 'postgres'] as const) {
  describe(`state contract: ${kind}`, () => {
    let store: string;
    let s: StateBackend;
    /** Another command of the same team: a second backend on the same store. */
    const other = () => openStore(store);
    before(() => {
      store = kind === 'local' ? `local:${join(dir, 'state')}` : `postgres:${CONTRACT_DB}`;
      s = openStore(store);
    });
    after(async () => { await s.close(); });

    test('stage state: absent, written, replaced as a whole, read by another command', async () => {
      assert.equal(await s.store.read('st'), undefined);
      const [first, second] = [state('st', 'a', 'r1'), state('st', 'b', 'r2')];
      await s.store.write(first);
      assert.deepEqual(await s.store.read('st'), first);
      await s.store.write(second);
      const o = other();
      try {
        assert.deepEqual(await o.store.read('st'), second);
        assert.equal(await o.store.read('other-stage'), undefined);
      } finally { await o.close(); }
    });

    test('history: in the order appended, the last `limit`, per stage', async () => {
      for (let i = 1; i <= 5; i++) await s.store.appendHistory(run('hist', i));
      await s.store.appendHistory(run('hist-other', 9));
      assert.deepEqual((await s.store.history('hist', 3)).map((e) => e.services.web?.release), ['r3', 'r4', 'r5']);
      assert.deepEqual((await s.store.history('hist')).map((e) => e.durationMs), [1, 2, 3, 4, 5]);
      assert.deepEqual(await s.store.history('hist', 1), [run('hist', 5)]);
      assert.deepEqual(await s.store.history('nothing-yet'), []);
    });

    test('lock: a second command is refused naming the holder; released, it can be taken again', async () => {
      const held = await s.locks.acquire('lk', { heartbeat: true, message: 'updateserver lk' });
      const o = other();
      try {
        const err = await o.locks.acquire('lk', { heartbeat: true }).then(() => assert.fail('taken twice'), (e: unknown) => e);
        assert.ok(err instanceof LockHeld, String(err));
        assert.equal(err.holder.token, held.info.token);
        assert.match(err.message, new RegExp(`^stage lk is locked by \\S+@\\S+ \\(pid ${process.pid}\\) since \\S+: "updateserver lk"$`));
        assert.equal((await o.locks.read('lk'))?.token, held.info.token);
        assert.equal(await o.locks.stale(held.info), undefined);
        await held.release();
        assert.equal(await o.locks.read('lk'), undefined);
        const again = await o.locks.acquire('lk', { heartbeat: true });
        await again.release();
      } finally { await o.close(); }
    });

    test('lock and journal of a command killed with SIGKILL: the lock is taken over (said so), the run is found interrupted, then archived', async () => {
      const dead = await crashedHolder(store, 'crash');
      assert.equal((await s.locks.read('crash'))?.token, dead.token, 'the dead command\'s lock record is left');
      const told: Array<{ holder: LockInfo; why: string }> = [];
      // PostgreSQL ends the dead session as soon as it sees the connection closed: allow it a moment.
      const deadline = Date.now() + 15_000;
      let held;
      for (;;) {
        try {
          held = await s.locks.acquire('crash', { heartbeat: true, onStale: (holder, why) => told.push({ holder, why }) });
          break;
        } catch (err) {
          if (!(err instanceof LockHeld) || Date.now() > deadline) throw err;
          await sleep(100);
        }
      }
      assert.equal(told.length, 1);
      assert.equal(told[0]!.holder.pid, dead.pid);
      assert.match(told[0]!.why, kind === 'local' ? new RegExp(`its process ${dead.pid} is gone`) : new RegExp(`session ended \\(process ${dead.pid} on \\S+ is gone\\)`));
      await held.release();

      const i = await s.journals.readInterrupted('crash');
      assert.ok(i, 'the killed run is interrupted');
      assert.equal(i.start.pid, dead.pid);
      assert.equal(i.start.plan.stage, 'crash');
      assert.deepEqual([...i.phases], ['copy']);
      assert.equal(i.lastStep?.title, 'copy the release to beta1');
      assert.equal(i.lastStep?.state, 'begin');
      await s.journals.archive(i, 'cleaned up: test');
      assert.equal(await s.journals.readInterrupted('crash'), undefined);
    });

    test('journal: steps in the order announced; a finished run is not interrupted', async () => {
      const j = await s.journals.begin(samplePlan('jr'));
      await j.step('copy', 'h1', 'rsync to h1', 'begin');
      await j.step('copy', 'h1', 'rsync to h1', 'end');
      await j.step('start', 'h1', 'start slot b on h1', 'begin');
      await j.step('start', 'h1', 'start slot b on h1', 'fail', 'exit 1');
      const i = await s.journals.readInterrupted('jr');
      assert.ok(i);
      assert.deepEqual(i.steps.map((e) => `${e.phase}:${e.state}`), ['copy:begin', 'copy:end', 'start:begin', 'start:fail']);
      assert.equal(i.lastStep?.error, 'exit 1');
      await j.finish('failed: exit 1');
      assert.equal(await s.journals.readInterrupted('jr'), undefined);
      // The next run of the stage starts a journal of its own.
      const next = await s.journals.begin(samplePlan('jr'));
      assert.equal((await s.journals.readInterrupted('jr'))?.steps.length, 0);
      await next.finish('ok');
      assert.equal(await s.journals.readInterrupted('jr'), undefined);
    });

    test('lock by hand: outlives the command that took it, blocks runs naming its message, released by hand', async () => {
      const o = other();
      const manual = await o.locks.acquire('man', { heartbeat: false, message: 'db maintenance' });
      await o.close(); // the CLI process that took it is gone
      const err = await s.locks.acquire('man', { heartbeat: true }).then(() => assert.fail('taken'), (e: unknown) => e);
      assert.ok(err instanceof LockHeld);
      assert.match(err.message, /locked by .*"db maintenance"/);
      assert.match(err.hint ?? '', /updateserver lock release man/);
      assert.equal(await s.locks.stale(manual.info), undefined);
      assert.equal((await s.locks.forceRelease('man'))?.token, manual.info.token);
      const run2 = await s.locks.acquire('man', { heartbeat: true });
      await run2.release();
    });

    test('lock by hand with a ttl: once it ran out, the next command takes it over', async () => {
      await s.locks.acquire('ttl', { heartbeat: false, message: 'short', ttlMs: 1 });
      await sleep(20);
      const told: string[] = [];
      const held = await s.locks.acquire('ttl', { heartbeat: true, onStale: (h, why) => told.push(`${h.message}: ${why}`) });
      assert.equal(told.length, 1);
      assert.match(told[0]!, /^short: no sign of life for \d+ s$/);
      await held.release();
    });

    test('release --force removes a running command\'s lock: the next command gets the stage', async () => {
      const held = await s.locks.acquire('frc', { heartbeat: true, message: 'stuck' });
      const o = other();
      try {
        const removed = await o.locks.forceRelease('frc');
        assert.equal(removed?.token, held.info.token);
        assert.equal(describeHolder(removed!), describeHolder(held.info));
        const deadline = Date.now() + 10_000;
        for (;;) {
          try { await (await o.locks.acquire('frc', { heartbeat: true })).release(); break; } catch (err) {
            if (!(err instanceof LockHeld) && !/without a holder record/.test(String(err))) throw err;
            assert.ok(Date.now() < deadline, `still held: ${String(err)}`);
            await sleep(100);
          }
        }
      } finally {
        await held.release().catch(() => {}); // its session may have been ended by --force
        await o.close();
      }
      assert.equal(await s.locks.read('frc'), undefined);
    });

    test('--wait: queues behind the holder and takes the lock once it lets go', async () => {
      const held = await s.locks.acquire('wt', { heartbeat: true, message: 'first' });
      const o = other();
      try {
        const heard: string[] = [];
        const waiting = acquireWaiting(o.locks, 'wt', { heartbeat: true, waitMs: 20_000, onWait: (h) => heard.push(h.message) });
        await sleep(800);
        await held.release();
        const second = await waiting;
        assert.deepEqual(heard, ['first']);
        assert.equal((await s.locks.read('wt'))?.token, second.info.token);
        await second.release();
        // Without --wait (or once it runs out) the refusal stands.
        const third = await s.locks.acquire('wt', { heartbeat: true });
        await assert.rejects(acquireWaiting(o.locks, 'wt', { heartbeat: true, waitMs: 300 }), LockHeld);
        await third.release();
      } finally { await o.close(); }
    });
  });
}

test('the PostgreSQL store keeps nothing in the local directory; its tables are under the schema updateserver', async () => {
  const tables = await sql<{ table_name: string }>(CONTRACT_DB, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'updateserver' ORDER BY 1");
  assert.deepEqual(tables.map((t) => t.table_name), ['history', 'journal', 'locks', 'rollout', 'stage_state']);
  assert.deepEqual((await readdir(dir)).sort(), ['state']);
});

test('check: the state store is reported usable, or with the fix (unreachable, unknown user, no right to create the tables)', async () => {
  const project = { dir, stateDir: join(dir, 'state') };
  const stageWith = (config: StateBackendConfig | undefined) => ({ name: 'beta', file: 'profiles/beta.yaml', state: config }) as unknown as Stage;
  const good = await probeStateStore(project, stageWith(pgConfig(CONTRACT_DB)));
  assert.deepEqual([good.ok, good.subject], [true, `state store postgres://postgres@127.0.0.1:5432/${CONTRACT_DB}`]);
  assert.match(good.detail, /updateserver\.\{stage_state, history, journal, locks, rollout\} present and writable/);
  assert.equal((await probeStateStore(project, stageWith(undefined))).detail.startsWith(`local directory ${project.stateDir}`), true);

  const down = await probeStateStore(project, stageWith({ ...pgConfig(CONTRACT_DB), port: 1, url: 'postgres://postgres@127.0.0.1:1/x' }));
  assert.equal(down.ok, false);
  assert.match(down.fix ?? '', /start PostgreSQL on 127\.0\.0\.1:1/);

  const nobody = await probeStateStore(project, stageWith({ ...pgConfig(CONTRACT_DB), user: 'us_state_nobody' }));
  assert.equal(nobody.ok, false);
  assert.match(nobody.detail, /us_state_nobody/);
  assert.match(nobody.fix ?? '', /check the user us_state_nobody and its password/);

  const fresh = 'us_state_check';
  await sql('postgres', `DROP DATABASE IF EXISTS ${fresh} WITH (FORCE)`);
  await sql('postgres', `CREATE DATABASE ${fresh}`);
  await sql('postgres', 'DROP ROLE IF EXISTS us_state_reader');
  await sql('postgres', 'CREATE ROLE us_state_reader LOGIN');
  try {
    const denied = await probeStateStore(project, stageWith({ ...pgConfig(fresh), user: 'us_state_reader' }));
    assert.equal(denied.ok, false, JSON.stringify(denied));
    assert.match(denied.detail, /updateserver\.stage_state, .* do not exist and us_state_reader may not create them/);
    assert.match(denied.fix ?? '', new RegExp(`^let us_state_reader create the tables: GRANT CREATE ON DATABASE ${fresh} TO us_state_reader; or, once they exist, GRANT USAGE ON SCHEMA updateserver`));
    // The command itself fails the same way, before any step, naming the store and the fix.
    const backend = postgresBackend(new StateDb({ ...pgConfig(fresh), user: 'us_state_reader', url: `postgres://us_state_reader@127.0.0.1:5432/${fresh}` }));
    try {
      const err = await backend.store.read('beta').then(() => assert.fail('read'), (e: unknown) => e as UpdateserverError);
      assert.match(err.message, new RegExp(`^state store postgres://us_state_reader@127\\.0\\.0\\.1:5432/${fresh}: permission denied`));
      assert.match(err.hint ?? '', /GRANT CREATE ON DATABASE/);
    } finally { await backend.close(); }
    await sql('postgres', `GRANT CREATE ON DATABASE ${fresh} TO us_state_reader`);
    const granted = await probeStateStore(project, stageWith({ ...pgConfig(fresh), user: 'us_state_reader' }));
    assert.equal(granted.ok, true, JSON.stringify(granted));
    assert.match(granted.detail, /will be created under schema updateserver by the first command/);
    await sql('postgres', `REVOKE CREATE ON DATABASE ${fresh} FROM us_state_reader`);

    // Tables made by an administrator: reading and writing them is all a user needs, once granted.
    const admin = postgresBackend(new StateDb(pgConfig(fresh)));
    await admin.store.read('beta').finally(() => admin.close());
    const readerConfig = { ...pgConfig(fresh), user: 'us_state_reader', url: `postgres://us_state_reader@127.0.0.1:5432/${fresh}` };
    const noRights = await probeStateStore(project, stageWith(readerConfig));
    assert.equal(noRights.ok, false);
    assert.match(noRights.detail, /us_state_reader may not read and write updateserver\./);
    for (const grant of noRights.fix!.split('; ')) await sql(fresh, grant);
    const usable = await probeStateStore(project, stageWith(readerConfig));
    assert.equal(usable.ok, true, JSON.stringify(usable));
    const reader = postgresBackend(new StateDb(readerConfig));
    try {
      await reader.store.write(state('beta', 'a', 'r1'));
      await reader.store.appendHistory(run('beta', 1));
      const held = await reader.locks.acquire('beta', { heartbeat: true });
      const j = await reader.journals.begin(samplePlan('beta'));
      await j.finish('ok');
      await held.release();
      assert.equal((await reader.store.read('beta'))?.services.web?.live, 'a');
    } finally { await reader.close(); }
  } finally {
    await sql('postgres', `DROP DATABASE IF EXISTS ${fresh} WITH (FORCE)`);
    await sql('postgres', 'DROP ROLE IF EXISTS us_state_reader');
  }
});
