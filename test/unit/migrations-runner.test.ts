/*
 * The migration runner without a server: statusOf() on rows and files, and migrate()/resolveMigration()
 * against a fake Db that answers the exact SQL of sql.ts and records the order of everything run.
 * The real engines are in test/integration/migrations.test.ts.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DatabaseError, type Db } from '../../src/data/db.js';
import { checksumOf, type Migration } from '../../src/data/migrations/files.js';
import { pendingMigration } from '../../src/data/migrations/steps.js';
import { MigrationBlocked, MigrationFailed, MigrationPlanStale, migrate, resolveMigration, statusOf, type VersionRow } from '../../src/data/migrations/runner.js';
import * as q from '../../src/data/migrations/sql.js';
import type { DatabaseEngine } from '../../src/config/model.js';
import type { Logger } from '../../src/log.js';

const mig = (version: number, sql: string, extra: Partial<Migration> = {}): Migration => ({
  version, name: `m${version}`, sql, checksum: checksumOf(sql), file: `/m/V${version}__m${version}.sql`, baseline: false, ...extra,
});
const base = (version: number, sql: string) => mig(version, sql, { baseline: true, name: 'schema', file: `/m/B${version}__schema.sql` });
let nextId = 1;
const row = (version: number, status: VersionRow['status'], extra: Partial<VersionRow> = {}): VersionRow => ({
  id: nextId++, version, updated: new Date(0), status, comments: '', checksum: '', applied_by: 'test', duration_ms: 1, baseline: false, ...extra,
});
const okRow = (m: Migration) => row(m.version, 'ok', { checksum: m.checksum, baseline: m.baseline });

const V1 = mig(1, 'CREATE TABLE a (x int);');
const V2 = mig(2, 'ALTER TABLE a ADD y int;');
const V3 = mig(3, 'CREATE INDEX a_x ON a (x);');
const B2 = base(2, 'CREATE TABLE a (x int, y int);');

function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const add = (level: string) => (m: string) => { lines.push(`${level}: ${m}`); };
  return { lines, info: add('info'), warn: add('warn'), error: add('error'), debug: add('debug'), close: async () => {} };
}

/** A Db that knows the version table's SQL and nothing else; `calls` is what ran, by name. */
function fakeDb(engine: DatabaseEngine, init: { rows?: VersionRow[]; table?: boolean; fail?: string; lockHeld?: boolean; unlockFails?: boolean } = {}) {
  const rows = [...(init.rows ?? [])];
  let table = init.table ?? rows.length > 0;
  const calls: string[] = [];
  const names = new Map<string, string>([
    [q.tableExists(engine), 'table?'], [q.selectRows(), 'rows'], [q.insertBegin(engine), 'begin-row'], [q.lastInsertId(), 'last-id'],
    [q.setOk(engine), 'ok-row'], [q.setError(engine), 'error-row'], [q.setResolved(engine), 'resolved-row'], [q.currentDatabase(), 'database?'],
    [q.tryLock(engine, 'shop'), 'try-lock'], [q.tryLock(engine, ''), 'try-lock'], [q.unlock(engine, 'shop'), 'unlock'], [q.unlock(engine, ''), 'unlock'],
    [q.lock(engine, 'shop', 600_000), 'lock'], [q.lock(engine, '', 600_000), 'lock'], [q.createTable(engine), 'create-table'],
  ]);
  const db: Db = {
    engine,
    label: 'fake://shop',
    async query<T>(sql: string, params: unknown[] = []): Promise<T[]> {
      const name = names.get(sql);
      if (!name) {
        // A migration's own statement: MySQL sends each alone through query().
        assert.equal(engine, 'mysql', `unexpected query: ${sql}`);
        calls.push(`query ${sql}`);
        if (init.fail && sql.includes(init.fail)) throw new DatabaseError('fake://shop', `Table 'a' doesn't exist`, { code: 'ER_NO_SUCH_TABLE' });
        return [];
      }
      calls.push(name);
      const answer = ((): unknown[] => {
        switch (name) {
          case 'table?': return table ? [{ present: 1 }] : [];
          case 'rows': return rows.map((r) => ({ ...r, baseline: engine === 'mysql' ? Number(r.baseline) : r.baseline }));
          case 'database?': return [{ name: 'shop' }];
          case 'try-lock': return [{ got: engine === 'postgres' ? !init.lockHeld : Number(!init.lockHeld) }];
          case 'lock': return [{ got: 1 }];
          case 'unlock': if (init.unlockFails) throw new Error('connection lost'); return [{ released: true }];
          case 'begin-row': {
            const [version, comments, checksum, appliedBy, baseline] = params as [number, string, string, string, boolean];
            const r = row(version, 'begin', { comments, checksum, applied_by: appliedBy, baseline, duration_ms: null });
            rows.push(r);
            return engine === 'postgres' ? [{ id: r.id }] : [];
          }
          case 'last-id': return [{ id: rows.at(-1)!.id }];
          case 'ok-row': case 'error-row': {
            const r = rows.find((x) => x.id === params[2])!;
            Object.assign(r, { status: name === 'ok-row' ? 'ok' : 'error', comments: params[0], duration_ms: params[1] });
            return [];
          }
          case 'resolved-row': {
            const r = rows.find((x) => x.id === params[2])!;
            Object.assign(r, { status: 'ok', comments: params[0], checksum: params[1] });
            return [];
          }
          default: return [];
        }
      })();
      return answer as T[];
    },
    async exec(sql: string): Promise<void> {
      const name = names.get(sql);
      calls.push(name ?? `exec ${sql}`);
      if (name === 'create-table') table = true;
      if (init.fail && sql.includes(init.fail)) throw new DatabaseError('fake://shop', `relation "${init.fail}" does not exist`, { code: '42P01', at: engine === 'mysql' ? { line: 2, statement: 2, statements: 3 } : { line: 2 } });
    },
    async tx<T>(fn: () => Promise<T>): Promise<T> {
      calls.push('BEGIN');
      try { const r = await fn(); calls.push('COMMIT'); return r; } catch (err) { calls.push('ROLLBACK'); throw err; }
    },
    async close() {},
  };
  return { db, calls, rows };
}

describe('statusOf', () => {
  test('an empty database: everything pending, current undefined', () => {
    const s = statusOf([], [V1, V2, V3]);
    assert.equal(s.current, undefined);
    assert.equal(s.last, undefined);
    assert.deepEqual(s.pending.map((m) => m.version), [1, 2, 3]);
    assert.equal(s.blocked, undefined);
  });

  test('an empty database with a baseline: the baseline, then the versions above it', () => {
    const s = statusOf([], [V1, B2, V2, V3]);
    assert.deepEqual(s.pending.map((m) => `${m.baseline ? 'B' : 'V'}${m.version}`), ['B2', 'V3']);
  });

  test('a database at version 2: 3 pending; the baseline is for empty databases only', () => {
    const s = statusOf([okRow(V1), okRow(V2)], [V1, B2, V2, V3]);
    assert.equal(s.current, 2);
    assert.deepEqual(s.pending.map((m) => m.version), [3]);
    assert.deepEqual(s.changed, []);
  });

  test('a baseline row absorbs the versions up to its own: no checksum compared, none out of order', () => {
    const s = statusOf([okRow(B2)], [V1, B2, V2, V3]);
    assert.equal(s.current, 2);
    assert.deepEqual(s.changed, []);
    assert.deepEqual(s.outOfOrder, []);
    assert.deepEqual(s.pending.map((m) => m.version), [3]);
  });

  test('a changed checksum of an applied version', () => {
    const edited = mig(2, 'ALTER TABLE a ADD z int;');
    const s = statusOf([okRow(V1), okRow(V2)], [V1, edited]);
    assert.deepEqual(s.changed, [{ version: 2, was: V2.checksum, now: edited.checksum }]);
  });

  test('a version added below the current one is out of order', () => {
    const s = statusOf([okRow(V1), okRow(V3)], [V1, V2, V3]);
    assert.deepEqual(s.outOfOrder.map((m) => m.version), [2]);
  });

  test('a last row not ok blocks, naming version, status and comments', () => {
    const s = statusOf([okRow(V1), row(2, 'error', { comments: 'm2: boom' })], [V1, V2, V3]);
    assert.equal(s.current, 1);
    assert.deepEqual(s.blocked, { version: 2, status: 'error', comments: 'm2: boom' });
    assert.equal(s.last?.version, 2);
  });
});

describe('migrate against a fake Db', () => {
  test('PostgreSQL: lock, create the table, then per version a begin row and a transaction holding the SQL and "ok"; unlock', async () => {
    const { db, calls, rows } = fakeDb('postgres');
    const log = recordingLogger();
    const result = await migrate(db, [V1, V2], { appliedBy: 'ann@host', logger: log });
    assert.deepEqual(calls, [
      'try-lock', 'table?', 'create-table',
      'begin-row', 'BEGIN', `exec ${V1.sql}`, 'ok-row', 'COMMIT',
      'begin-row', 'BEGIN', `exec ${V2.sql}`, 'ok-row', 'COMMIT',
      'unlock',
    ]);
    assert.deepEqual(result.applied.map((a) => a.version), [1, 2]);
    assert.deepEqual(rows.map((r) => [r.version, r.status, r.comments, r.checksum, r.applied_by]), [[1, 'ok', 'm1', V1.checksum, 'ann@host'], [2, 'ok', 'm2', V2.checksum, 'ann@host']]);
    assert.ok(log.lines.some((l) => /info: fake:\/\/shop: migration 2 m2 ok in \d+ ms/.test(l)));
  });

  test('MySQL: no transaction; the id of the begin row from the session; the lock named after the database', async () => {
    const { db, calls } = fakeDb('mysql');
    await migrate(db, [V1], { appliedBy: 'ann@host', logger: recordingLogger() });
    assert.deepEqual(calls, ['database?', 'try-lock', 'table?', 'create-table', 'begin-row', 'last-id', 'query CREATE TABLE a (x int)', 'ok-row', 'unlock']);
  });

  test('PostgreSQL failure: rolled back, then the row set to error outside the transaction, then unlock; the error names the version', async () => {
    const { db, calls, rows } = fakeDb('postgres', { rows: [okRow(V1)], fail: 'a_x' });
    await assert.rejects(migrate(db, [V1, V2, V3], { appliedBy: 'ann', logger: recordingLogger() }), (err: unknown) => {
      assert.ok(err instanceof MigrationFailed);
      assert.equal(err.version, 3);
      assert.equal(err.halfChanged, false);
      assert.match(err.message, /^fake:\/\/shop: migration 3 \(m3\) failed: relation "a_x" does not exist \(rolled back: the schema is as before\)$/);
      assert.match(err.hint ?? '', /updateserver migrate resolve <stage> <service> 3/);
      return true;
    });
    assert.deepEqual(calls.slice(-5), ['BEGIN', `exec ${V3.sql}`, 'ROLLBACK', 'error-row', 'unlock']);
    assert.deepEqual(rows.map((r) => `${r.version} ${r.status}`), ['1 ok', '2 ok', '3 error']);
    assert.equal(rows.at(-1)!.comments, 'm3: relation "a_x" does not exist');
  });

  test('MySQL failure: the error says the database may be half-changed and how far the script got', async () => {
    const { db, calls } = fakeDb('mysql', { fail: 'ADD y' });
    const three = mig(1, 'CREATE TABLE a (x int);\nALTER TABLE a ADD y int;\nCREATE INDEX a_x ON a (x);');
    await assert.rejects(migrate(db, [three], { appliedBy: 'ann', logger: recordingLogger(), stage: 'beta', service: 'web' }), (err: unknown) => {
      assert.ok(err instanceof MigrationFailed);
      assert.equal(err.halfChanged, true);
      assert.match(err.message, /migration 1 \(m1\) failed: .*\nMySQL commits each statement .*may be half-changed \(statements 1-1 of 3 ran and stay applied; statement 2 \(line 2\) failed\)/);
      assert.match(err.hint ?? '', /updateserver migrate resolve beta web 1/);
      return true;
    });
    // Each statement sent alone, as the plan lists them; the third never.
    assert.deepEqual(calls.filter((c) => c.startsWith('query ')), ['query CREATE TABLE a (x int)', 'query ALTER TABLE a ADD y int']);
  });

  test('a failed unlock is only logged: the migration error stays the one thrown', async () => {
    const { db } = fakeDb('postgres', { fail: 'TABLE a ', unlockFails: true });
    const log = recordingLogger();
    await assert.rejects(migrate(db, [V1], { appliedBy: 'ann', logger: log }), MigrationFailed);
    assert.ok(log.lines.some((l) => l === 'warn: fake://shop: could not release the migration lock: connection lost'), log.lines.join('\n'));
  });

  test('a last row not ok: refused before anything runs, with the way out; the lock is released', async () => {
    const { db, calls } = fakeDb('postgres', { rows: [okRow(V1), row(2, 'error', { comments: 'm2: boom' })] });
    await assert.rejects(migrate(db, [V1, V2, V3], { appliedBy: 'ann', logger: recordingLogger(), stage: 'prod', service: 'api' }), (err: unknown) => {
      assert.ok(err instanceof MigrationBlocked);
      assert.equal(err.version, 2);
      assert.match(err.message, /migration 2 has status "error": it failed: m2: boom\. Nothing more is applied until a person repairs the database by hand and runs: updateserver migrate resolve prod api 2/);
      return true;
    });
    assert.deepEqual(calls, ['try-lock', 'table?', 'rows', 'unlock']);
  });

  test('a begin row (a run that died) blocks too, and says why', async () => {
    const { db } = fakeDb('postgres', { rows: [row(1, 'begin', { comments: 'm1' })] });
    await assert.rejects(migrate(db, [V1], { appliedBy: 'ann', logger: recordingLogger() }), /migration 1 has status "begin" \(m1\): a run stopped while applying it/);
  });

  test('a changed checksum and a version out of order are refused', async () => {
    await assert.rejects(migrate(fakeDb('postgres', { rows: [okRow(V1)] }).db, [mig(1, 'CREATE TABLE a (x bigint);')], { appliedBy: 'ann', logger: recordingLogger() }),
      /applied migration 1 changed since it ran/);
    await assert.rejects(migrate(fakeDb('postgres', { rows: [okRow(V1), okRow(V3)] }).db, [V1, V2, V3], { appliedBy: 'ann', logger: recordingLogger() }),
      /migration 2 is below the database's version 3 but never ran/);
  });

  test('an empty database with a baseline: one row for the baseline, then the versions above it', async () => {
    const { db, rows } = fakeDb('postgres');
    const result = await migrate(db, [V1, B2, V2, V3], { appliedBy: 'ann', logger: recordingLogger() });
    assert.deepEqual(result.applied.map((a) => `${a.baseline ? 'B' : 'V'}${a.version}`), ['B2', 'V3']);
    assert.deepEqual(rows.map((r) => [r.version, r.status, r.baseline, r.comments]), [[2, 'ok', true, 'baseline schema'], [3, 'ok', false, 'm3']]);
  });

  test('waits for a held lock, and says so', async () => {
    const { db, calls } = fakeDb('mysql', { lockHeld: true });
    const log = recordingLogger();
    await migrate(db, [], { appliedBy: 'ann', logger: log });
    assert.deepEqual(calls.slice(0, 3), ['database?', 'try-lock', 'lock']);
    assert.ok(log.lines.some((l) => /another migration of this database is running; waiting for its lock \(at most 600 s\)/.test(l)));
  });

  test('dry run: no lock, no table, no row; returns the SQL that would run', async () => {
    const { db, calls } = fakeDb('postgres');
    const result = await migrate(db, [V1, V2], { appliedBy: 'ann', logger: recordingLogger(), dryRun: true });
    assert.deepEqual(calls, ['table?']);
    assert.deepEqual(result.applied, []);
    assert.deepEqual(result.sql, [q.createTable('postgres'), `-- version 1 m1 (/m/V1__m1.sql)\n${V1.sql}`, `-- version 2 m2 (/m/V2__m2.sql)\n${V2.sql}`]);
  });

  test('a planned run sends exactly the plan\'s statements, and refuses, changing nothing, a database that needs other versions than the plan says', async () => {
    const planned = [V2].map((m) => pendingMigration('postgres', m));
    // The plan's own text runs, not the file's (here the same statement with a comment the plan added).
    planned[0]!.statements = [`-- as planned\n${V2.sql}`];
    const ok = fakeDb('postgres', { rows: [okRow(V1)] });
    await migrate(ok.db, [V1, V2], { appliedBy: 'ann', logger: recordingLogger(), planned: { versionTable: true, pending: planned } });
    assert.deepEqual(ok.calls.filter((c) => c.startsWith('exec ')), [`exec -- as planned\n${V2.sql}`]);
    // Someone applied V2 meanwhile: the plan's V2 is not what the database needs (nothing).
    const moved = fakeDb('postgres', { rows: [okRow(V1), okRow(V2)] });
    await assert.rejects(migrate(moved.db, [V1, V2], { appliedBy: 'ann', logger: recordingLogger(), planned: { versionTable: true, pending: planned } }), (err: unknown) => {
      assert.ok(err instanceof MigrationPlanStale);
      assert.match(err.message, /the database changed since the plan was made: the plan applies V2, the database now needs none; nothing was applied/);
      return true;
    });
    assert.deepEqual(moved.calls, ['try-lock', 'table?', 'rows', 'unlock']);
    // The plan said the table exists; it does not (the database was replaced): refused too.
    await assert.rejects(migrate(fakeDb('postgres').db, [V1, V2], { appliedBy: 'ann', logger: recordingLogger(), planned: { versionTable: true, pending: planned } }), MigrationPlanStale);
  });

  test('dry run refuses what a real run refuses', async () => {
    const { db } = fakeDb('postgres', { rows: [row(1, 'error')] });
    await assert.rejects(migrate(db, [V1], { appliedBy: 'ann', logger: recordingLogger(), dryRun: true }), MigrationBlocked);
  });
});

describe('resolveMigration against a fake Db', () => {
  test('the last row, that version and not ok, becomes ok with "resolved by hand"', async () => {
    const { db, calls, rows } = fakeDb('postgres', { rows: [okRow(V1), row(2, 'error', { comments: 'm2: boom', checksum: V2.checksum })] });
    const r = await resolveMigration(db, 2, { appliedBy: 'ann', comment: 'added the column by hand' });
    assert.equal(r.status, 'ok');
    assert.deepEqual(calls, ['try-lock', 'table?', 'rows', 'resolved-row', 'unlock']);
    assert.equal(rows.at(-1)!.comments, 'resolved by hand by ann: added the column by hand (was error: m2: boom)');
    assert.equal(rows.at(-1)!.checksum, V2.checksum);
  });

  test('records the fixed file\'s checksum when given', async () => {
    const { db, rows } = fakeDb('postgres', { rows: [row(2, 'error', { checksum: V2.checksum })] });
    await resolveMigration(db, 2, { appliedBy: 'ann', checksum: 'f'.repeat(64) });
    assert.equal(rows.at(-1)!.checksum, 'f'.repeat(64));
  });

  test('refuses another version, an ok row, and a running migration', async () => {
    await assert.rejects(resolveMigration(fakeDb('postgres', { rows: [row(2, 'error')] }).db, 3, { appliedBy: 'ann' }), /nothing to resolve: the last row of the version table is version 2, status error, not version 3/);
    await assert.rejects(resolveMigration(fakeDb('postgres', { rows: [okRow(V1)] }).db, 1, { appliedBy: 'ann' }), /version 1, status ok/);
    await assert.rejects(resolveMigration(fakeDb('postgres', { rows: [row(2, 'begin')], lockHeld: true }).db, 2, { appliedBy: 'ann' }), /a migration of this database is running right now/);
  });
});
