/*
 * The data proofs of issue 5 on the real MariaDB of this machine, end to end through the CLI: the
 * snapshot copy (mysqldump --single-transaction into mysql) is exact in tables, rows, AUTO_INCREMENT
 * positions, indexes and views; the dry run gives the snapshot's size; the data version is recorded;
 * copy-self refuses writes with 503 during the freeze and keeps every acknowledged one. Writes go
 * through HAProxy to the sample app's POST /rows, which inserts into its slot's database.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { startWriters } from '../lab/writers.js';
import { updateserver, type CliResult, explain, recordedLiveSlot } from './cli.js'
import { sql } from '../lab/mysql.js';
import { slotDatabases } from '../lab/databases.js';;

const NET = 74;
const PREFIX = `ustest_dat_${NET}`;
const dbs = slotDatabases('mysql', PREFIX);
const { names, dropAll } = dbs;
const dbYaml = (stage: string, strategy: string) => dbs.yaml(stage, strategy);

let p: Pipeline;


const liveSlot = (stage: 'dev' | 'beta') => recordedLiveSlot(p.project.dir, stage);

/** What the proof compares; the database's own name is replaced by `DB` where MariaDB spells it out (views). */
async function fingerprint(database: string) {
  // The change log (issue 21) is each database's own record of what was written to it, not data the copy carries.
  const tables: Record<string, { rows: number; checksum: string; autoIncrement: number | null; create: string }> = {};
  for (const t of await sql<{ name: string; ai: number | null }>(database, "SELECT TABLE_NAME AS name, AUTO_INCREMENT AS ai FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' AND TABLE_NAME <> 'updateserver_changes' ORDER BY 1")) {
    const [n] = await sql<{ n: number }>(database, `SELECT COUNT(*) AS n FROM \`${t.name}\``);
    const [c] = await sql<{ Checksum: number }>(database, `CHECKSUM TABLE \`${t.name}\``);
    const [create] = await sql<{ 'Create Table': string }>(database, `SHOW CREATE TABLE \`${t.name}\``);
    tables[t.name] = { rows: Number(n!.n), checksum: String(c!.Checksum), autoIncrement: t.ai === null ? null : Number(t.ai), create: create!['Create Table'] };
  }
  const indexes = await sql(database, `SELECT TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, NON_UNIQUE, INDEX_TYPE, SUB_PART, COLLATION
    FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1, 2, 3`);
  const views = (await sql<{ name: string; def: string }>(database, 'SELECT TABLE_NAME AS name, VIEW_DEFINITION AS def FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1'))
    .map((v) => ({ name: v.name, def: v.def.split(`\`${database}\``).join('`DB`') }));
  return { tables, indexes, views };
}

async function missingKeys(database: string, keys: readonly string[]): Promise<string[]> {
  const present = new Set((await sql<{ k: string }>(database, 'SELECT k FROM writes')).map((r) => r.k));
  return keys.filter((k) => !present.has(k));
}

before(async () => {
  await dropAll();
  p = await startPipeline({
    net: NET, betaHosts: 1,
    appArgs: '--db mysql://root@127.0.0.1:3306/{database}',
    devServiceExtra: dbYaml('dev', 'copy-self'), betaServiceExtra: dbYaml('beta', 'copy'),
  });
  const dir = join(p.project.dir, 'migrations', 'web');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'V0001__schema.sql'), [
    'CREATE TABLE items (id int AUTO_INCREMENT PRIMARY KEY, name varchar(100) NOT NULL, price decimal(10,2), KEY items_name (name), UNIQUE KEY items_name_price (name, price), KEY items_prefix (name(4)));',
    'CREATE TABLE tickets (id bigint AUTO_INCREMENT PRIMARY KEY, note varchar(20)) AUTO_INCREMENT = 100;',
    'CREATE VIEW expensive AS SELECT id, name FROM items WHERE price > 10;',
    'CREATE TABLE writes (id bigint AUTO_INCREMENT PRIMARY KEY, k varchar(64) NOT NULL UNIQUE);',
    '',
  ].join('\n'));
});

after(async () => {
  await p?.stop();
  await dropAll();
});

test('MariaDB: the snapshot copy is exact (rows, AUTO_INCREMENT past the rows, indexes, views); the dry run gives its size; the data version is recorded', async () => {
  const dev = await updateserver(p.project.dir, 'dev');
  assert.equal(dev.code, 0, explain(dev));
  const devDb = names('dev')[await liveSlot('dev')];
  await sql(devDb, `INSERT INTO items (name, price) WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 1000) SELECT CONCAT('item ', n), n % 20 FROM g`);
  await sql(devDb, 'DELETE FROM items WHERE id % 5 <> 0 OR id > 900');
  const source = await fingerprint(devDb);
  assert.equal(source.tables.items!.rows, 180);
  // InnoDB reserves ids for INSERT ... SELECT in blocks: the counter is at 1001 or beyond, far past max(id) + 1 = 901.
  assert.ok(source.tables.items!.autoIncrement! >= 1001, `the counter (${source.tables.items!.autoIncrement}) is past the rows that are left`);
  assert.equal(source.tables.tickets!.autoIncrement, 100);

  const [size] = await sql<{ n: number }>(devDb, 'SELECT SUM(DATA_LENGTH + INDEX_LENGTH) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()');
  const dry = await updateserver(p.project.dir, 'beta', '--dry-run');
  assert.equal(dry.code, 0, explain(dry));
  const shown = /snapshot size: [\d.]+ [KMG]iB \((\d+) bytes, data \+ index length of its tables\)/.exec(dry.stdout);
  assert.ok(shown, dry.stdout);
  assert.equal(Number(shown[1]), Number(size!.n));
  assert.deepEqual(await sql(undefined, 'SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?', [`${PREFIX}_beta%`]), [], 'the dry run created no database');

  const beta = await updateserver(p.project.dir, 'beta');
  assert.equal(beta.code, 0, explain(beta));
  const betaSlot = await liveSlot('beta');
  const copy = await fingerprint(names('beta')[betaSlot]);
  assert.deepEqual(Object.keys(copy.tables), ['items', 'tickets', 'updateserver_version', 'writes']);
  assert.deepEqual(copy.tables, source.tables, 'every table: rows, checksum, AUTO_INCREMENT, definition');
  assert.deepEqual(copy.indexes, source.indexes);
  assert.ok(copy.indexes.some((i) => (i as { INDEX_NAME: string; SUB_PART: number | null }).INDEX_NAME === 'items_prefix' && (i as { SUB_PART: number }).SUB_PART === 4));
  assert.deepEqual(copy.views, source.views);
  assert.equal(copy.views.length, 1);

  const history = JSON.parse((await updateserver(p.project.dir, 'history', 'beta', '--json')).stdout) as Array<{ services: Record<string, { data?: unknown }> }>;
  // The write counter at the end of the data step (for a later rollback's count) goes with it: without userstat, a time.
  const { writes, ...data } = history.at(-1)!.services.web!.data as { writes?: { how: string } };
  assert.deepEqual(data, {
    database: names('beta')[betaSlot], version: 1,
    snapshot: { stage: 'dev', slot: await liveSlot('dev'), database: devDb, tables: 4, rows: 181 },
  });
  assert.ok(writes?.how === 'update_time' || writes?.how === 'userstat', JSON.stringify(writes));
});

test('MariaDB copy-self: writes through HAProxy get 503 during the freeze, and every acknowledged write is in the new slot\'s database', async (t) => {
  await writeFile(join(p.appDir, 'VERSION'), '1.1.0\n');
  const oldSlot = await liveSlot('dev');
  const writers = startWriters(p.url.dev, 'm');
  await new Promise((r) => setTimeout(r, 500));
  const dev = await updateserver(p.project.dir, 'dev');
  await new Promise((r) => setTimeout(r, 500));
  const { acked, statuses, bySlot } = await writers.stop();
  t.diagnostic(`writes: ${JSON.stringify(statuses)}, by slot ${JSON.stringify(bySlot)}`);
  assert.equal(dev.code, 0, explain(dev));
  assert.doesNotMatch(dev.stderr, /row counts .* differ/);
  const newSlot = await liveSlot('dev');
  assert.notEqual(newSlot, oldSlot);
  assert.deepEqual(Object.keys(statuses).sort(), ['201', '503'], JSON.stringify(statuses));
  assert.ok(statuses['503']! > 0 && acked.length > 10, JSON.stringify(statuses));
  assert.ok(bySlot[oldSlot]! > 0 && bySlot[newSlot]! > 0, `writes acknowledged before the freeze and after the switch: ${JSON.stringify(bySlot)}`);
  assert.deepEqual(await missingKeys(names('dev')[newSlot], acked), []);
});
