/*
 * Snapshots on the real PostgreSQL of this machine, through copyDatabase itself (no lab needed): the
 * TEMPLATE fast path when nobody else is connected to the source, the fallback to pg_dump | pg_restore
 * when someone is (and that session left alone), fastPath: template ending it, the guard that never
 * replaces a live database, and the same exact copy (tables, rows, sequences, indexes, views) either way.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import type { DatabaseConnection } from '../../src/config/model.js';
import type { Logger } from '../../src/log.js';
import { copyDatabase } from '../../src/data/snapshot.js';
import { openDb } from '../../src/data/db.js';
import { toolEnv } from '../../src/data/tools.js';
import { spawnSync } from 'node:child_process';

const PREFIX = 'ustest_snap_t_';
const SRC = `${PREFIX}src`;
const DST = `${PREFIX}dst`;
const LIVE = `${PREFIX}live`;
const conn = (database: string, host = '127.0.0.1'): DatabaseConnection => ({ engine: 'postgres', host, port: 5432, user: 'postgres', password: undefined, database });

const lines: string[] = [];
const logger: Logger = {
  info: (m) => { lines.push(`info ${m}`); }, warn: (m) => { lines.push(`warn ${m}`); }, error: (m) => { lines.push(`error ${m}`); }, debug: () => {},
  close: async () => {},
};

async function client(database: string): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', user: 'postgres', database });
  c.on('error', () => {});
  await c.connect();
  return c;
}
async function sql<T = Record<string, unknown>>(database: string, text: string): Promise<T[]> {
  const c = await client(database);
  try { return (await c.query(text)).rows as T[]; } finally { await c.end(); }
}

/** Everything a copy must carry: tables with their rows (in order), sequence positions, index and view definitions. */
async function fingerprint(database: string): Promise<string> {
  const rows = await sql(database, 'SELECT id, name, note FROM items ORDER BY id');
  const orders = await sql(database, 'SELECT * FROM orders ORDER BY id');
  const seqs = await sql(database, 'SELECT sequencename, last_value FROM pg_sequences ORDER BY 1');
  const idx = await sql(database, "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1");
  const views = await sql(database, "SELECT viewname, definition FROM pg_views WHERE schemaname = 'public' ORDER BY 1");
  return JSON.stringify({ rows, orders, seqs, idx, views });
}

async function dropAll(): Promise<void> {
  for (const d of [SRC, DST, LIVE]) await sql('postgres', `DROP DATABASE IF EXISTS ${d} WITH (FORCE)`);
}

before(async () => {
  await dropAll();
  await sql('postgres', `CREATE DATABASE ${SRC}`);
  await sql('postgres', `CREATE DATABASE ${LIVE}`);
  await sql(SRC, `CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, note text);
    INSERT INTO items (name, note) SELECT 'item ' || g, md5(g::text) FROM generate_series(1, 5000) g;
    CREATE INDEX items_name ON items (name);
    CREATE TABLE orders (id bigserial PRIMARY KEY, item_id int REFERENCES items(id), qty int NOT NULL);
    INSERT INTO orders (item_id, qty) SELECT 1 + g % 5000, g % 7 FROM generate_series(1, 20000) g;
    DELETE FROM orders WHERE id > 19990;
    CREATE VIEW big_orders AS SELECT * FROM orders WHERE qty > 5;`);
  await sql(LIVE, 'CREATE TABLE precious (v text); INSERT INTO precious VALUES (\'live data\')');
});

after(dropAll);

test('same server, nobody connected to the source: CREATE DATABASE ... TEMPLATE, exact copy, counts checked', async () => {
  lines.length = 0;
  const r = await copyDatabase(conn(SRC), conn(DST), { jobs: 1, frozen: false, fastPath: 'auto', protect: [conn(LIVE)], logger });
  assert.equal(r.method, 'template');
  assert.equal(r.why, 'same server, no other session on the source');
  assert.deepEqual([r.tables, r.rows], [2, 5000 + 19990]);
  assert.equal(await fingerprint(DST), await fingerprint(SRC));
  assert.ok(lines.some((l) => l.includes('by CREATE DATABASE ... TEMPLATE: same server, no other session on the source')), lines.join('\n'));
  // The copy is an independent database: the sequence goes on from the source's position.
  const [next] = await sql<{ id: number }>(DST, "INSERT INTO items (name) VALUES ('new') RETURNING id");
  assert.equal(next!.id, 5001);
});

test('someone connected to the source (the app): auto falls back to pg_dump | pg_restore, says why, and leaves that session alone', async () => {
  const app = await client(SRC);
  try {
    lines.length = 0;
    const r = await copyDatabase(conn(SRC), conn(DST), { jobs: 1, frozen: false, fastPath: 'auto', protect: [conn(LIVE)], logger });
    assert.equal(r.method, 'pg_dump');
    assert.match(r.why, new RegExp(`^1 other session\\(s\\) on ${SRC} \\(fastPath auto copies by template only from a database nobody is connected to`));
    assert.ok(lines.some((l) => l.includes(`snapshot of postgres://postgres@127.0.0.1:5432/${SRC} by pg_dump: 1 other session(s)`)), lines.join('\n'));
    assert.equal(await fingerprint(DST), await fingerprint(SRC));
    // The app's session still works.
    assert.equal((await app.query('SELECT count(*)::int AS n FROM items')).rows[0].n, 5000);
  } finally {
    await app.end();
  }
});

test('fastPath template: the operator accepts that the source\'s other sessions are ended for the copy', async () => {
  const app = await client(SRC);
  try {
    lines.length = 0;
    const r = await copyDatabase(conn(SRC), conn(DST), { jobs: 1, frozen: true, fastPath: 'template', protect: [conn(LIVE)], logger });
    assert.equal(r.method, 'template');
    assert.equal(r.why, 'same server, fastPath template, ended 1 session(s) of the source');
    assert.ok(lines.some((l) => /^warn ended 1 session\(s\) on postgres:\/\/.*ustest_snap_t_src for CREATE DATABASE \.\.\. TEMPLATE/.test(l)), lines.join('\n'));
    assert.equal(await fingerprint(DST), await fingerprint(SRC));
    // Its session was ended: the app would reconnect.
    await assert.rejects(app.query('SELECT 1'), /terminat|connection error/i);
  } finally {
    await app.end().catch(() => {});
  }
});

test('another server as the orchestrator reaches it (localhost vs 127.0.0.1), and fastPath off: always the dump, parallel with jobs', async () => {
  const r1 = await copyDatabase(conn(SRC), conn(DST, 'localhost'), { jobs: 1, frozen: false, fastPath: 'auto', protect: [], logger });
  assert.equal(r1.method, 'pg_dump');
  assert.equal(r1.why, 'source and target are on different servers (127.0.0.1:5432, localhost:5432)');
  assert.equal(await fingerprint(DST), await fingerprint(SRC));
  const r2 = await copyDatabase(conn(SRC), conn(DST), { jobs: 2, frozen: false, fastPath: 'off', protect: [], logger });
  assert.deepEqual([r2.method, r2.why], ['pg_dump', 'fastPath is off']);
  assert.equal(await fingerprint(DST), await fingerprint(SRC));
});

test('the live slot\'s database is never dropped, and a source is never copied onto itself', async () => {
  for (const fastPath of ['auto', 'template', 'off'] as const) {
    await assert.rejects(copyDatabase(conn(SRC), conn(LIVE), { jobs: 1, frozen: false, fastPath, protect: [conn(LIVE)], logger }), /refusing to replace .*ustest_snap_t_live: it is the live slot's database/);
    await assert.rejects(copyDatabase(conn(SRC), conn(SRC), { jobs: 1, frozen: false, fastPath, protect: [], logger }), /onto itself/);
  }
  assert.deepEqual(await sql(LIVE, 'SELECT v FROM precious'), [{ v: 'live data' }]);
  assert.equal((await sql<{ n: number }>(SRC, 'SELECT count(*)::int AS n FROM items'))[0]!.n, 5000);
});

test('a source is opened read-only: the driver\'s session and the client tools\' (PGOPTIONS) refuse writes; MariaDB\'s session too', async () => {
  const db = await openDb(conn(SRC), { readOnly: true });
  try {
    await assert.rejects(db.exec("INSERT INTO items (name) VALUES ('x')"), /read-only transaction/);
  } finally {
    await db.close();
  }
  const psql = spawnSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', SRC, '-c', "INSERT INTO items (name) VALUES ('x')"], { env: toolEnv(conn(SRC), { readOnly: true }) });
  assert.notEqual(psql.status, 0);
  assert.match(psql.stderr.toString(), /read-only transaction/);
  assert.equal((await sql<{ n: number }>(SRC, 'SELECT count(*)::int AS n FROM items'))[0]!.n, 5000);

  const my = (database: string): DatabaseConnection => ({ engine: 'mysql', host: '127.0.0.1', port: 3306, user: 'root', password: undefined, database });
  const admin = await openDb(my(''));
  try {
    await admin.exec(`DROP DATABASE IF EXISTS ${PREFIX}my; CREATE DATABASE ${PREFIX}my; CREATE TABLE ${PREFIX}my.t (id int PRIMARY KEY)`);
    const ro = await openDb(my(`${PREFIX}my`), { readOnly: true });
    try {
      await assert.rejects(ro.exec('INSERT INTO t VALUES (1)'), /READ ONLY/i);
    } finally {
      await ro.close();
    }
  } finally {
    await admin.exec(`DROP DATABASE IF EXISTS ${PREFIX}my`);
    await admin.close();
  }
});
