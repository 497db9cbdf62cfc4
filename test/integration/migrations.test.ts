/*
 * The version table and the migration runner on the real PostgreSQL and MariaDB of this machine
 * (seed 000): a fresh database gets every version with an ok row; a second run applies nothing; a
 * failing migration records error and blocks until resolved (PostgreSQL: rolled back; MySQL: says it
 * may be half-changed); changed checksums are refused; a baseline starts an empty database; the
 * advisory lock serialises concurrent runs; passwords reach the server through a Secret and never an
 * error message. Every database made here is called ustest_mig_* and dropped at the end.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import type { DatabaseConnection, DatabaseEngine } from '../../src/config/model.js';
import { Secret } from '../../src/config/secret.js';
import { DatabaseError, openDb, type Db } from '../../src/data/db.js';
import { loadMigrations } from '../../src/data/migrations/files.js';
import { MigrationBlocked, MigrationFailed, migrate, migrationStatus, resolveMigration } from '../../src/data/migrations/runner.js';
import type { Logger } from '../../src/log.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'fixtures', 'migrations');
const ENGINES: DatabaseEngine[] = ['postgres', 'mysql'];
const SERVER = {
  postgres: { engine: 'postgres', host: '127.0.0.1', port: 5432, user: 'postgres', password: undefined, admin: 'postgres' },
  mysql: { engine: 'mysql', host: '127.0.0.1', port: 3306, user: 'root', password: undefined, admin: '' },
} as const;

const created: Array<{ engine: DatabaseEngine; name: string }> = [];
let seq = 0;
const temp = await mkdtemp(join(tmpdir(), 'ustest-migrations-'));

const connection = (engine: DatabaseEngine, database: string, extra: Partial<DatabaseConnection> = {}): DatabaseConnection => {
  const { admin: _admin, ...server } = SERVER[engine];
  return { ...server, database, ...extra };
};

async function admin<T>(engine: DatabaseEngine, fn: (db: Db) => Promise<T>): Promise<T> {
  const db = await openDb(connection(engine, SERVER[engine].admin));
  try { return await fn(db); } finally { await db.close(); }
}

/** A new empty database, dropped after all tests. */
async function freshDb(engine: DatabaseEngine): Promise<DatabaseConnection> {
  const name = `ustest_mig_${engine === 'postgres' ? 'pg' : 'my'}_${process.pid}_${seq++}`;
  created.push({ engine, name });
  await admin(engine, async (db) => {
    await db.exec(engine === 'postgres' ? `DROP DATABASE IF EXISTS ${name} WITH (FORCE)` : `DROP DATABASE IF EXISTS ${name}`);
    await db.exec(`CREATE DATABASE ${name}`);
  });
  return connection(engine, name);
}

async function withDb<T>(conn: DatabaseConnection, fn: (db: Db) => Promise<T>): Promise<T> {
  const db = await openDb(conn);
  try { return await fn(db); } finally { await db.close(); }
}

function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const add = (level: string) => (m: string) => { lines.push(`${level}: ${m}`); };
  return { lines, info: add('info'), warn: add('warn'), error: add('error'), debug: add('debug'), close: async () => {} };
}

/** A copy of a fixture directory that a test may change. */
async function copyOf(fixture: string): Promise<string> {
  const dir = join(temp, `${fixture}-${seq++}`);
  await cp(join(FIXTURES, fixture), dir, { recursive: true });
  return dir;
}

async function dirWith(files: Record<string, string>): Promise<string> {
  const dir = join(temp, `dir-${seq++}`);
  await mkdir(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}

interface Row { id: number; version: number; status: string; comments: string; checksum: string; applied_by: string; duration_ms: number | null; baseline: unknown }
const rowsOf = (db: Db) => db.query<Row>('SELECT id, version, status, comments, checksum, applied_by, duration_ms, baseline FROM updateserver_version ORDER BY id');
const columnExists = async (db: Db, table: string, column: string) => (await db.query(
  db.engine === 'postgres'
    ? 'SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2'
    : 'SELECT 1 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?',
  [table, column])).length > 0;

before(async () => {
  // Leftovers of an interrupted earlier run of this file.
  for (const engine of ENGINES) {
    await admin(engine, async (db) => {
      const names = engine === 'postgres'
        ? await db.query<{ n: string }>("SELECT datname AS n FROM pg_database WHERE datname LIKE 'ustest\\_mig\\_%'")
        : await db.query<{ n: string }>("SELECT SCHEMA_NAME AS n FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'ustest\\_mig\\_%'");
      for (const { n } of names) await db.exec(engine === 'postgres' ? `DROP DATABASE IF EXISTS ${n} WITH (FORCE)` : `DROP DATABASE IF EXISTS ${n}`);
    });
  }
});

after(async () => {
  for (const { engine, name } of created) {
    await admin(engine, (db) => db.exec(engine === 'postgres' ? `DROP DATABASE IF EXISTS ${name} WITH (FORCE)` : `DROP DATABASE IF EXISTS ${name}`));
  }
  await admin('mysql', (db) => db.exec("DROP USER IF EXISTS 'ustest_pw'@'127.0.0.1', 'ustest_pw'@'localhost'"));
  await rm(temp, { recursive: true, force: true });
});

for (const engine of ENGINES) {
  describe(`${engine}: the version table`, () => {
    test('a fresh database gets every version, each with an ok row: version, status, checksum, applied_by, duration_ms', async () => {
      const conn = await freshDb(engine);
      const migrations = await loadMigrations(join(FIXTURES, 'versioned'));
      const log = recordingLogger();
      const result = await withDb(conn, (db) => migrate(db, migrations, { appliedBy: 'ann@build', logger: log }));
      assert.deepEqual(result.applied.map((a) => a.version), [1, 2, 10]);
      await withDb(conn, async (db) => {
        const rows = await rowsOf(db);
        assert.deepEqual(rows.map((r) => [Number(r.version), r.status, r.checksum, r.applied_by, Boolean(Number(r.baseline))]),
          migrations.map((m) => [m.version, 'ok', m.checksum, 'ann@build', false]));
        assert.deepEqual(rows.map((r) => r.comments), ['items', 'note', 'add_index']);
        for (const r of rows) assert.ok(Number.isInteger(r.duration_ms) && r.duration_ms! >= 0, `duration_ms ${r.duration_ms}`);
        assert.ok(await columnExists(db, 'items', 'note'));
        const status = await migrationStatus(db, migrations);
        assert.equal(status.current, 10);
        assert.deepEqual(status.pending, []);
        assert.equal(status.blocked, undefined);
        assert.equal(status.last?.status, 'ok');
      });
      assert.ok(log.lines.some((l) => new RegExp(`info: ${engine}://.*/${conn.database}: migration 10 add_index ok in \\d+ ms`).test(l)), log.lines.join('\n'));
    });

    test('a second run applies nothing and adds no row', async () => {
      const conn = await freshDb(engine);
      const migrations = await loadMigrations(join(FIXTURES, 'single'));
      await withDb(conn, (db) => migrate(db, migrations, { appliedBy: 'ann', logger: recordingLogger() }));
      const again = await withDb(conn, (db) => migrate(db, migrations, { appliedBy: 'ann', logger: recordingLogger() }));
      assert.deepEqual(again.applied, []);
      assert.equal((await withDb(conn, rowsOf)).length, 3);
    });

    test('a dry run on a fresh database returns the SQL and creates nothing, not even the version table', async () => {
      const conn = await freshDb(engine);
      const migrations = await loadMigrations(join(FIXTURES, 'versioned'));
      const result = await withDb(conn, (db) => migrate(db, migrations, { appliedBy: 'ann', logger: recordingLogger(), dryRun: true }));
      assert.equal(result.sql.length, 4);
      assert.match(result.sql[0]!, /^CREATE TABLE IF NOT EXISTS updateserver_version/);
      assert.match(result.sql[1]!, /^-- version 1 items \(.*V0001__items\.sql\)\nCREATE TABLE items/);
      const tables = await withDb(conn, (db) => db.query(engine === 'postgres'
        ? "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        : 'SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()'));
      assert.deepEqual(tables, []);
    });

    test('a changed checksum of an applied version is refused, naming the version', async () => {
      const conn = await freshDb(engine);
      const dir = await copyOf('versioned');
      await withDb(conn, async (db) => migrate(db, await loadMigrations(dir), { appliedBy: 'ann', logger: recordingLogger() }));
      await writeFile(join(dir, 'V0002__note.sql'), 'ALTER TABLE items ADD COLUMN note varchar(500);\n');
      await writeFile(join(dir, 'V0011__more.sql'), 'ALTER TABLE items ADD COLUMN more integer;\n');
      await withDb(conn, async (db) => {
        await assert.rejects(migrate(db, await loadMigrations(dir), { appliedBy: 'ann', logger: recordingLogger() }), (err: unknown) => {
          assert.ok(err instanceof MigrationBlocked, String(err));
          assert.match(err.message, /applied migration 2 changed since it ran \(checksum [0-9a-f]{12}… in the database, [0-9a-f]{12}… in the file\)/);
          assert.match(err.hint ?? '', /put the change in a new version/);
          return true;
        });
        assert.equal(await columnExists(db, 'items', 'more'), false, 'nothing after the refusal ran');
      });
    });

    test('a baseline starts an empty database as one version and skips what it absorbs; a database with versions ignores it', async () => {
      const migrations = await loadMigrations(join(FIXTURES, 'baseline'));
      const empty = await freshDb(engine);
      const result = await withDb(empty, (db) => migrate(db, migrations, { appliedBy: 'ann', logger: recordingLogger() }));
      assert.deepEqual(result.applied.map((a) => `${a.baseline ? 'B' : 'V'}${a.version}`), ['B2', 'V3']);
      await withDb(empty, async (db) => {
        assert.deepEqual((await rowsOf(db)).map((r) => [Number(r.version), r.status, Boolean(Number(r.baseline)), r.comments]), [[2, 'ok', true, 'baseline schema'], [3, 'ok', false, 'add_index']]);
        assert.ok(await columnExists(db, 'items', 'note'), 'the baseline made version 2\'s schema');
        assert.deepEqual((await migrationStatus(db, migrations)).changed, []);
      });
      // A database that already ran version 1 goes on with the versions, not the baseline.
      const older = await freshDb(engine);
      await withDb(older, async (db) => migrate(db, migrations.filter((m) => m.version === 1), { appliedBy: 'ann', logger: recordingLogger() }));
      const rest = await withDb(older, (db) => migrate(db, migrations, { appliedBy: 'ann', logger: recordingLogger() }));
      assert.deepEqual(rest.applied.map((a) => `${a.baseline ? 'B' : 'V'}${a.version}`), ['V2', 'V3']);
    });

    test('the advisory lock serialises two concurrent runs: the second waits, then finds nothing pending', async () => {
      const conn = await freshDb(engine);
      const slow = engine === 'postgres' ? 'SELECT pg_sleep(1.5);' : 'DO SLEEP(1.5);';
      const migrations = await loadMigrations(await dirWith({ 'V0001__slow.sql': `${slow}\nCREATE TABLE slow (x integer);\n` }));
      const [first, second] = [await openDb(conn), await openDb(conn)];
      try {
        const logs = [recordingLogger(), recordingLogger()];
        const one = migrate(first, migrations, { appliedBy: 'one', logger: logs[0]! });
        await new Promise((r) => setTimeout(r, 300));
        const started = Date.now();
        const two = await migrate(second, migrations, { appliedBy: 'two', logger: logs[1]! });
        const waited = Date.now() - started;
        assert.deepEqual((await one).applied.map((a) => a.version), [1]);
        assert.deepEqual(two.applied, []);
        assert.ok(waited >= 900, `the second run waited ${waited} ms`);
        assert.ok(logs[1]!.lines.some((l) => /another migration of this database is running; waiting for its lock/.test(l)), logs[1]!.lines.join('\n'));
        assert.deepEqual((await rowsOf(first)).map((r) => [Number(r.version), r.status, r.applied_by]), [[1, 'ok', 'one']]);
      } finally {
        await first.close();
        await second.close();
      }
    });

    test('query() takes exactly one statement; exec() runs a script; tx() rolls back on error', async () => {
      const conn = await freshDb(engine);
      await withDb(conn, async (db) => {
        await assert.rejects(db.query('SELECT 1; SELECT 2'), DatabaseError);
        await db.exec('CREATE TABLE t (x integer);\nINSERT INTO t VALUES (1);\nINSERT INTO t VALUES (2);\n');
        await assert.rejects(db.tx(async () => {
          await db.query('INSERT INTO t VALUES (3)');
          throw new Error('changed my mind');
        }), /changed my mind/);
        assert.equal(await db.tx(async () => { await db.query('INSERT INTO t VALUES (4)'); return 'done'; }), 'done');
        assert.deepEqual((await db.query<{ x: number }>('SELECT x FROM t ORDER BY x')).map((r) => r.x), [1, 2, 4]);
      });
    });

    test('an unknown database: a DatabaseError naming host:port/database with the server\'s message', async () => {
      const conn = connection(engine, 'ustest_mig_does_not_exist');
      await assert.rejects(openDb(conn), (err: unknown) => {
        assert.ok(err instanceof DatabaseError, String(err));
        assert.match(err.message, new RegExp(`^${engine}://${SERVER[engine].user}@127\\.0\\.0\\.1:${SERVER[engine].port}/ustest_mig_does_not_exist: .*(does not exist|Unknown database)`));
        return true;
      });
    });
  });
}

describe('postgres: a failing migration', () => {
  test('is rolled back whole, leaves status error with the message, blocks the next run naming the version; resolve lets it go on', async () => {
    const conn = await freshDb('postgres');
    const dir = await copyOf('versioned');
    await writeFile(join(dir, 'V0011__broken.sql'), 'ALTER TABLE items ADD COLUMN ok2 text;\nINSERT INTO no_such_table VALUES (1);\n');
    await withDb(conn, async (db) => {
      await assert.rejects(migrate(db, await loadMigrations(dir), { appliedBy: 'ann', logger: recordingLogger(), stage: 'beta', service: 'web' }), (err: unknown) => {
        assert.ok(err instanceof MigrationFailed, String(err));
        assert.equal(err.halfChanged, false);
        assert.match(err.message, /: migration 11 \(broken\) failed: relation "no_such_table" does not exist \(line 2\) \(rolled back: the schema is as before\)$/);
        return true;
      });
      const last = (await rowsOf(db)).at(-1)!;
      assert.deepEqual([last.version, last.status], [11, 'error']);
      assert.equal(last.comments, 'broken: relation "no_such_table" does not exist (line 2)');
      assert.equal(await columnExists(db, 'items', 'ok2'), false, 'the first statement of the failed version was rolled back');
    });
    await withDb(conn, async (db) => {
      await assert.rejects(migrate(db, await loadMigrations(dir), { appliedBy: 'ann', logger: recordingLogger(), stage: 'beta', service: 'web' }), (err: unknown) => {
        assert.ok(err instanceof MigrationBlocked, String(err));
        assert.match(err.message, /migration 11 has status "error": it failed: broken: relation "no_such_table" does not exist \(line 2\)\. Nothing more is applied until a person repairs the database by hand and runs: updateserver migrate resolve beta web 11/);
        return true;
      });
      // The repair by hand: the version's intent, done right; then resolve, recording the fixed file.
      await writeFile(join(dir, 'V0011__broken.sql'), 'ALTER TABLE items ADD COLUMN ok2 text;\n');
      await db.exec('ALTER TABLE items ADD COLUMN ok2 text');
      const fixed = (await loadMigrations(dir)).find((m) => m.version === 11)!;
      const resolved = await resolveMigration(db, 11, { appliedBy: 'ann', comment: 'added ok2 by hand', checksum: fixed.checksum });
      assert.equal(resolved.status, 'ok');
      const last = (await rowsOf(db)).at(-1)!;
      assert.equal(last.status, 'ok');
      assert.match(last.comments, /^resolved by hand by ann: added ok2 by hand \(was error: broken: relation "no_such_table"/);
    });
    await writeFile(join(dir, 'V0012__after.sql'), 'ALTER TABLE items ADD COLUMN after_fix integer;\n');
    const next = await withDb(conn, async (db) => migrate(db, await loadMigrations(dir), { appliedBy: 'ann', logger: recordingLogger() }));
    assert.deepEqual(next.applied.map((a) => a.version), [12]);
  });
});

describe('mysql: a failing migration', () => {
  test('says the database may be half-changed and how far it got; blocks until resolved', async () => {
    const conn = await freshDb('mysql');
    const dir = await copyOf('versioned');
    await writeFile(join(dir, 'V0011__broken.sql'), 'ALTER TABLE items ADD COLUMN ok2 text;\n\nALTER TABLE no_such_table ADD COLUMN x integer;\nALTER TABLE items ADD COLUMN never integer;\n');
    await withDb(conn, async (db) => {
      await assert.rejects(migrate(db, await loadMigrations(dir), { appliedBy: 'ann', logger: recordingLogger() }), (err: unknown) => {
        assert.ok(err instanceof MigrationFailed, String(err));
        assert.equal(err.halfChanged, true);
        assert.match(err.message, /migration 11 \(broken\) failed: Table '.*no_such_table' doesn't exist \(statement 2 of 3, line 3\)\nMySQL commits each statement \(DDL cannot be rolled back\): the database may be half-changed \(statements 1-1 of 3 ran and stay applied; statement 2 \(line 3\) failed\)/);
        assert.match(err.hint ?? '', /updateserver migrate resolve <stage> <service> 11/);
        return true;
      });
      assert.equal(await columnExists(db, 'items', 'ok2'), true, 'half-changed indeed: the first statement stayed');
      assert.equal(await columnExists(db, 'items', 'never'), false, 'nothing after the failed statement ran');
      const last = (await rowsOf(db)).at(-1)!;
      assert.deepEqual([last.version, last.status], [11, 'error']);
      assert.match(last.comments, /no_such_table/);
      await assert.rejects(migrate(db, await loadMigrations(dir), { appliedBy: 'ann', logger: recordingLogger() }), /migration 11 has status "error"/);
      await resolveMigration(db, 11, { appliedBy: 'ann', comment: 'dropped the rest' });
    });
    await writeFile(join(dir, 'V0012__after.sql'), 'ALTER TABLE items ADD COLUMN after_fix integer;\n');
    const next = await withDb(conn, async (db) => migrate(db, await loadMigrations(dir), { appliedBy: 'ann', logger: recordingLogger() }));
    assert.deepEqual(next.applied.map((a) => a.version), [12]);
  });
});

describe('mysql: scripts', () => {
  test('a migration with DELIMITER (a trigger whose body has semicolons) runs as the mysql client would run it', async () => {
    const conn = await freshDb('mysql');
    const dir = await dirWith({
      'V0001__counted.sql': [
        'CREATE TABLE counted (x integer, doubled integer);',
        'DELIMITER //',
        'CREATE TRIGGER counted_bi BEFORE INSERT ON counted FOR EACH ROW',
        'BEGIN',
        '  SET NEW.doubled = NEW.x * 2;',
        'END //',
        'DELIMITER ;',
        "INSERT INTO counted (x) VALUES (21); -- the answer; twice",
      ].join('\n'),
    });
    await withDb(conn, async (db) => {
      await migrate(db, await loadMigrations(dir), { appliedBy: 'ann', logger: recordingLogger() });
      assert.deepEqual(await db.query('SELECT x, doubled FROM counted'), [{ x: 21, doubled: 42 }]);
    });
  });
});

describe('passwords', () => {
  const PASSWORD = 'ustest-S3cret-7f2a';
  const WRONG = 'ustest-Wr0ng-91bc';
  before(async () => {
    await admin('mysql', async (db) => {
      await db.exec("DROP USER IF EXISTS 'ustest_pw'@'127.0.0.1', 'ustest_pw'@'localhost'");
      // The server sees 127.0.0.1 as localhost when it resolves names: the user exists under both.
      for (const host of ['127.0.0.1', 'localhost']) {
        await db.query(`CREATE USER 'ustest_pw'@'${host}' IDENTIFIED BY ?`, [PASSWORD]);
        await db.exec(`GRANT ALL ON \`ustest\\_mig\\_%\`.* TO 'ustest_pw'@'${host}'`);
      }
    });
  });

  test('mysql: a user with a password connects through a Secret', async () => {
    const { database } = await freshDb('mysql');
    const conn = connection('mysql', database, { user: 'ustest_pw', password: new Secret(PASSWORD, 'environment variable USTEST_PW') });
    const [me] = await withDb(conn, (db) => db.query<{ me: string }>('SELECT CURRENT_USER() AS me'));
    assert.match(me!.me, /^ustest_pw@/);
    const migrations = await loadMigrations(join(FIXTURES, 'versioned'));
    const result = await withDb(conn, (db) => migrate(db, migrations, { appliedBy: 'ann', logger: recordingLogger() }));
    assert.equal(result.applied.length, 3);
  });

  test('mysql: a wrong password is refused with an error that shows neither password, and says where it came from', async () => {
    const { database } = await freshDb('mysql');
    const conn = connection('mysql', database, { user: 'ustest_pw', password: new Secret(WRONG, 'environment variable USTEST_PW') });
    await assert.rejects(openDb(conn), (err: unknown) => {
      assert.ok(err instanceof DatabaseError, String(err));
      assert.equal(err.code, 'ER_ACCESS_DENIED_ERROR');
      assert.match(err.message, new RegExp(`^mysql://ustest_pw@127\\.0\\.0\\.1:3306/${database}: Access denied for user 'ustest_pw'`));
      assert.equal(err.hint, 'check the user and password (from environment variable USTEST_PW)');
      for (const text of [err.message, err.stack ?? '', inspect(err, { depth: 10 }), JSON.stringify(err)]) {
        assert.ok(!text.includes(WRONG), `the wrong password shows in: ${text}`);
        assert.ok(!text.includes(PASSWORD), `the password shows in: ${text}`);
      }
      return true;
    });
  });

  test('a driver message quoting the password is masked', async () => {
    // PostgreSQL quotes the text of a bad database name; make that name the password.
    const secret = 'ustest_mig_secret_in_message';
    const conn = connection('postgres', secret, { password: new Secret(secret, 'a test') });
    await assert.rejects(openDb(conn), (err: unknown) => {
      assert.ok(err instanceof DatabaseError, String(err));
      assert.match(err.reason, /database "\*\*\*\*\*\*\*\*" does not exist/);
      assert.ok(!err.message.includes(secret), err.message);
      assert.equal(err.cause, undefined, 'the driver error quoting it is not kept');
      return true;
    });
  });
});
