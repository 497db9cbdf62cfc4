/*
 * The data proofs of issue 5 on the real PostgreSQL of this machine, end to end through the CLI:
 *  - a snapshot copy is exact: tables, rows, sequence positions, indexes and views of the source;
 *  - the dry run says how big the snapshot would be, and changes nothing;
 *  - the data version (migration version, the snapshot's source stage/slot and rows) is recorded;
 *  - the live slot's database is byte-for-byte untouched by a promotion with a migration (before and
 *    after the switch), and a rollback under load lands on it;
 *  - copy-self: writes through HAProxy get 503 during the freeze, every acknowledged write is in the
 *    new slot's database; shared: a client writing through a whole promotion loses no acknowledged row.
 * Writes go through HAProxy to the sample app's POST /rows, which inserts into its slot's database
 * (named by the {database} placeholder of its start command).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { startLoad } from '../lab/load.js';
import { startWriters } from '../lab/writers.js';
import { ssh } from '../lab/remote.js';
import { updateserver, type CliResult, explain, otherSlot, recordedLiveSlot } from './cli.js';
import { sql } from '../lab/pg.js';
import { schemaChecks, slotDatabases } from '../lab/databases.js';

const NET = 73;
const PREFIX = `ustest_dat_${NET}`;
const dbs = slotDatabases('postgres', PREFIX);
const { names, dropAll } = dbs;
const SHARED = `${PREFIX}_shared`;
const dbYaml = (stage: string, strategy: string, n = names(stage)) => dbs.yaml(stage, strategy, n);
/** beta's pre checks: the app's health, and the slot's schema version. */
const CHECKS = schemaChecks;

let p: Pipeline;


const liveSlot = (stage: 'dev' | 'beta') => recordedLiveSlot(p.project.dir, stage);
const other = otherSlot;

interface Fingerprint {
  tables: Record<string, { rows: number; md5: string }>;
  sequences: Record<string, { last_value: string; is_called: boolean }>;
  indexes: Array<{ tablename: string; indexname: string; indexdef: string }>;
  views: Array<{ viewname: string; definition: string }>;
  /** pg_dump --schema-only, without the random \restrict key newer pg_dump versions write. */
  schema: string;
}

/** Everything a database holds that the proofs compare: schema text, every table's rows, sequences, indexes, views. */
async function fingerprint(database: string): Promise<Fingerprint> {
  const tables: Fingerprint['tables'] = {};
  // The change log (issue 21) is each database's own record of what was written to it, not data the copy carries.
  for (const { t } of await sql<{ t: string }>(database, "SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'updateserver_changes' ORDER BY 1")) {
    const [r] = await sql<{ n: string; md5: string }>(database, `SELECT count(*) AS n, md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) AS md5 FROM "${t}" x`);
    tables[t] = { rows: Number(r!.n), md5: r!.md5 };
  }
  const sequences: Fingerprint['sequences'] = {};
  for (const { s } of await sql<{ s: string }>(database, "SELECT sequencename AS s FROM pg_sequences WHERE schemaname = 'public' AND sequencename <> 'updateserver_changes_seq_seq' ORDER BY 1")) {
    const [r] = await sql<{ last_value: string; is_called: boolean }>(database, `SELECT last_value::text, is_called FROM "${s}"`);
    sequences[s] = r!;
  }
  const dump = spawnSync('pg_dump', ['-h', '127.0.0.1', '-U', 'postgres', '--schema-only', '-d', database], { encoding: 'utf8' });
  assert.equal(dump.status, 0, dump.stderr);
  return {
    tables, sequences,
    indexes: await sql(database, "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1, 2"),
    views: await sql(database, "SELECT viewname, definition FROM pg_views WHERE schemaname = 'public' ORDER BY 1"),
    schema: dump.stdout.split('\n').filter((l) => !/^\\(un)?restrict /.test(l)).join('\n'),
  };
}
const digest = (f: Fingerprint) => createHash('sha256').update(JSON.stringify(f)).digest('hex');

async function missingKeys(database: string, keys: readonly string[]): Promise<string[]> {
  const present = new Set((await sql<{ k: string }>(database, 'SELECT k FROM writes')).map((r) => r.k));
  return keys.filter((k) => !present.has(k));
}

before(async () => {
  await dropAll();
  p = await startPipeline({
    net: NET, betaHosts: 1,
    appArgs: '--db postgres://postgres@127.0.0.1:5432/{database}',
    devServiceExtra: dbYaml('dev', 'copy-self'),
    betaServiceExtra: `${dbYaml('beta', 'copy')}\n    checks: web`,
    projectFiles: { 'healthchecks/web.yaml': CHECKS('1') },
  });
  const dir = join(p.project.dir, 'migrations', 'web');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'V0001__schema.sql'), [
    'CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, price numeric(10,2));',
    'CREATE INDEX items_name ON items (name);',
    'CREATE UNIQUE INDEX items_lower_name ON items (lower(name)) WHERE price IS NOT NULL;',
    'CREATE VIEW expensive AS SELECT id, name FROM items WHERE price > 10;',
    'CREATE SEQUENCE tickets START 100 INCREMENT 7;',
    'CREATE SEQUENCE untouched;',
    'CREATE TABLE writes (id bigserial PRIMARY KEY, k text NOT NULL UNIQUE);',
    '',
  ].join('\n'));
});

after(async () => {
  await p?.stop();
  await dropAll();
});

test('the snapshot copy is exact (rows, sequences past the row count, indexes, views); the dry run gives its size; the data version is recorded', async () => {
  const dev = await updateserver(p.project.dir, 'dev');
  assert.equal(dev.code, 0, explain(dev));
  const devDb = names('dev')[await liveSlot('dev')];
  // Users' data: rows deleted, so the sequence is well past the row count; a sequence called twice, one never.
  await sql(devDb, "INSERT INTO items (name, price) SELECT 'item ' || g, g % 20 FROM generate_series(1, 1000) g");
  await sql(devDb, 'DELETE FROM items WHERE id % 5 <> 0 OR id > 900');
  await sql(devDb, "SELECT nextval('tickets'), nextval('tickets')");
  const source = await fingerprint(devDb);
  assert.equal(source.tables.items!.rows, 180);
  assert.deepEqual(source.sequences.items_id_seq, { last_value: '1000', is_called: true });
  assert.deepEqual(source.sequences.tickets, { last_value: '107', is_called: true });
  assert.deepEqual(source.sequences.untouched, { last_value: '1', is_called: false });

  // The dry run names the size of the snapshot it would take, from pg_database_size, and creates nothing.
  const [size] = await sql<{ n: string }>(devDb, 'SELECT pg_database_size(current_database()) AS n');
  const dry = await updateserver(p.project.dir, 'beta', '--dry-run');
  assert.equal(dry.code, 0, explain(dry));
  const shown = /snapshot size: [\d.]+ [KMG]iB \((\d+) bytes, pg_database_size\)/.exec(dry.stdout);
  assert.ok(shown, dry.stdout);
  assert.ok(Math.abs(Number(shown[1]) - Number(size!.n)) <= 64 * 1024, `dry run says ${shown[1]} bytes, pg_database_size ${size!.n}`);
  assert.match(dry.stdout, new RegExp(`- snapshot ${devDb} \\([\\d.]+ [KMG]iB\\) into ${PREFIX}_beta_[ab]`));
  assert.deepEqual(await sql('postgres', `SELECT datname FROM pg_database WHERE datname LIKE '${PREFIX}_beta%'`), [], 'the dry run created no database');

  const beta = await updateserver(p.project.dir, 'beta');
  assert.equal(beta.code, 0, explain(beta));
  const betaSlot = await liveSlot('beta');
  const copy = await fingerprint(names('beta')[betaSlot]);
  assert.deepEqual(Object.keys(copy.tables), ['items', 'updateserver_version', 'writes']);
  assert.deepEqual(copy.tables, source.tables, 'every table, its row count and its rows');
  assert.deepEqual(copy.sequences, source.sequences, 'every sequence\'s last_value and is_called');
  assert.deepEqual(copy.indexes, source.indexes);
  assert.ok(copy.indexes.some((i) => i.indexname === 'items_lower_name' && /lower\(name\).*WHERE \(price IS NOT NULL\)/.test(i.indexdef)));
  assert.deepEqual(copy.views, source.views);
  assert.equal(copy.views.length, 1);
  assert.equal(copy.schema, source.schema, 'the whole schema as pg_dump prints it');
  // The next id continues after the source's, not after the row count.
  assert.deepEqual(await sql(names('beta')[betaSlot], "INSERT INTO items (name) VALUES ('next') RETURNING id"), [{ id: 1001 }]);

  // The release record: the data version and where the snapshot came from, in history and status.
  const expected = {
    database: names('beta')[betaSlot], version: 1,
    snapshot: { stage: 'dev', slot: await liveSlot('dev'), database: devDb, tables: 3, rows: 181 },
  };
  const history = await updateserver(p.project.dir, 'history', 'beta', '--json');
  // The write counter at the end of the data step (for a later rollback's count) goes with it.
  const withoutMark = (d: unknown) => {
    const { writes, ...rest } = d as { writes?: { how: string; value: number } };
    assert.ok(writes?.how === 'pg_stat_user_tables' && Number.isInteger(writes.value), JSON.stringify(d));
    return rest;
  };
  assert.deepEqual(withoutMark((JSON.parse(history.stdout) as Array<{ services: Record<string, { data?: unknown }> }>).at(-1)!.services.web!.data), expected);
  const text = await updateserver(p.project.dir, 'history', 'beta');
  assert.match(text.stdout, new RegExp(`\\(data version 1, snapshot of dev slot [ab] \\(181 rows in 3 tables\\)\\)`));
  const status = await updateserver(p.project.dir, 'status', 'beta', '--json');
  assert.deepEqual((JSON.parse(status.stdout) as { services: Array<{ data: Record<string, unknown> }> }).services[0]!.data[betaSlot], expected);
});

test('a promotion with a migration leaves the live database byte-for-byte untouched, before and after the switch; a rollback under load lands on it', async () => {
  // A new release reaches dev first; its migration is written afterwards, so beta's copy of dev's data needs it.
  await writeFile(join(p.appDir, 'VERSION'), '1.1.0\n');
  const dev = await updateserver(p.project.dir, 'dev');
  assert.equal(dev.code, 0, explain(dev));
  await writeFile(join(p.project.dir, 'migrations', 'web', 'V0002__note.sql'), "ALTER TABLE items ADD COLUMN note text;\nUPDATE items SET note = 'n' || id, price = price + 1;\nCREATE INDEX items_note ON items (note);\n");
  const liveSlotBefore = await liveSlot('beta');
  const liveDb = names('beta')[liveSlotBefore];
  const idleDb = names('beta')[other(liveSlotBefore)];
  const before = await fingerprint(liveDb);

  // 1. Until the switch: the idle copy is made and migrated, a pre check fails, nothing is switched.
  await writeFile(join(p.project.dir, 'healthchecks', 'web.yaml'), CHECKS('99'));
  const failed = await updateserver(p.project.dir, 'beta');
  assert.equal(failed.code, 1, explain(failed));
  assert.match(failed.stderr, /migration 2 note ok/);
  assert.match(failed.stderr, /health check schema \(pre, sql\) .*returned "2", expected "99"/);
  assert.deepEqual((await sql<{ version: number }>(idleDb, "SELECT version FROM updateserver_version WHERE status = 'ok' ORDER BY id")).map((r) => r.version), [1, 2]);
  assert.equal(await liveSlot('beta'), liveSlotBefore);
  assert.deepEqual(await fingerprint(liveDb), before, 'the live database is untouched while the idle one is prepared');

  // 2. Through the switch: the old slot's database is still exactly as it was.
  await writeFile(join(p.project.dir, 'healthchecks', 'web.yaml'), CHECKS('2'));
  const beta = await updateserver(p.project.dir, 'beta', '--force');
  assert.equal(beta.code, 0, explain(beta));
  assert.equal(await liveSlot('beta'), other(liveSlotBefore));
  assert.equal(digest(await fingerprint(liveDb)), digest(before), 'the old slot\'s database is untouched after the switch');
  const res = await fetch(`${p.url.beta}/`, { headers: { connection: 'close' } });
  assert.equal(JSON.parse(await res.text()).version, '1.1.0');

  // 3. Rollback under load: traffic returns to the old slot, whose database is the one from before.
  await writeFile(join(p.project.dir, 'healthchecks', 'web.yaml'), CHECKS('1'));
  const load = startLoad(`${p.url.beta}/`, { connections: 4 });
  await new Promise((r) => setTimeout(r, 300));
  const rollback = await updateserver(p.project.dir, 'rollback', 'beta');
  const result = await load.stop();
  assert.equal(rollback.code, 0, explain(rollback));
  assert.equal(result.non2xx + result.errors + result.timeouts, 0, JSON.stringify(result));
  assert.ok(result.requests > 50, JSON.stringify(result));
  const back = await fetch(`${p.url.beta}/`, { headers: { connection: 'close' } });
  assert.equal(back.headers.get('x-slot'), liveSlotBefore);
  assert.equal(JSON.parse(await back.text()).version, '1.0.0');
  assert.equal(await liveSlot('beta'), liveSlotBefore);
  assert.deepEqual(await fingerprint(liveDb), before, 'after the rollback, live is the untouched database');
  // The rollback's history line carries the data version of the slot it went back to.
  const history = JSON.parse((await updateserver(p.project.dir, 'history', 'beta', '--json')).stdout) as Array<{ action: string; services: Record<string, { data?: { version: number; database: string } }> }>;
  const [promoted, rolledBack] = history.slice(-2);
  assert.deepEqual([promoted!.action, promoted!.services.web!.data?.version], ['promote', 2]);
  assert.equal(rolledBack!.action, 'rollback');
  assert.deepEqual([rolledBack!.services.web!.data?.database, rolledBack!.services.web!.data?.version], [liveDb, 1]);
});

test('copy-self: writes through HAProxy get 503 during the freeze, and every acknowledged write is in the new slot\'s database', async (t) => {
  await writeFile(join(p.appDir, 'VERSION'), '1.2.0\n');
  const oldSlot = await liveSlot('dev');
  // Slow writes on the live slot: when the freeze comes, writes accepted just before it are still in
  // flight, and would commit after the snapshot if the copy did not wait for them (it fails without it).
  await ssh(p.lab, p.lab.hosts.find((h) => h.name === 'dev1')!, `echo 2500 > /srv/web/${oldSlot}/rows-delay-ms`);
  const reads = startLoad(`${p.url.dev}/`, { connections: 2 });
  const writers = startWriters(p.url.dev, 'cs', 4);
  await new Promise((r) => setTimeout(r, 500));
  const dev = await updateserver(p.project.dir, 'dev');
  await new Promise((r) => setTimeout(r, 500));
  const w = await writers.stop();
  const r = await reads.stop();
  assert.equal(r.non2xx + r.errors + r.timeouts, 0, `reads are served throughout: ${JSON.stringify(r)}`);
  assert.match(dev.stderr, /requests accepted before the freeze finished after \d+ ms/);
  t.diagnostic(`writes: ${JSON.stringify(w.statuses)}, by slot ${JSON.stringify(w.bySlot)}`);
  assert.equal(dev.code, 0, explain(dev));
  const newSlot = await liveSlot('dev');
  assert.equal(newSlot, other(oldSlot));
  const statuses = Object.keys(w.statuses).sort();
  assert.deepEqual(statuses, ['201', '503'], `only acknowledged writes and refusals: ${JSON.stringify(w.statuses)}`);
  assert.ok(w.statuses['503']! > 0 && w.acked.length > 10, JSON.stringify(w.statuses));
  assert.match(w.firstRefusal ?? '', /Read-only for a moment/);
  assert.deepEqual(await missingKeys(names('dev')[newSlot], w.acked), [], 'every acknowledged write is in the new slot');
  // Writes were acknowledged by both slots: before the freeze by the old one (carried over by the
  // snapshot), after the switch by the new one (not in the old slot's database).
  assert.ok(w.bySlot[oldSlot]! > 0 && w.bySlot[newSlot]! > 0, JSON.stringify(w.bySlot));
  assert.equal((await missingKeys(names('dev')[oldSlot], w.acked)).length, w.bySlot[newSlot]);
});

test('shared: a client writing through a whole promotion (with a migration) loses no acknowledged row', async (t) => {
  const profile = join(p.project.dir, 'profiles', 'dev.yaml');
  await writeFile(profile, (await readFile(profile, 'utf8')).replace(dbYaml('dev', 'copy-self'), dbYaml('dev', 'shared', { a: SHARED, b: SHARED })));
  // The first promotion in shared mode puts one slot on the shared database; the next runs with both on it.
  await writeFile(join(p.appDir, 'VERSION'), '1.3.0\n');
  const first = await updateserver(p.project.dir, 'dev');
  assert.equal(first.code, 0, explain(first));
  await writeFile(join(p.appDir, 'VERSION'), '1.4.0\n');
  await writeFile(join(p.project.dir, 'migrations', 'web', 'V0003__writes_at.sql'), 'ALTER TABLE writes ADD COLUMN at timestamptz DEFAULT now();\n');
  const writers = startWriters(p.url.dev, 'sh');
  // Writes acknowledged by the live slot before the promotion starts, and by the new one after it.
  await writers.until((r) => r.acked.length >= 10, 10_000);
  const dev = await updateserver(p.project.dir, 'dev');
  await writers.until((r) => Object.keys(r.bySlot).length === 2 && r.acked.length >= 30, 10_000);
  const w = await writers.stop();
  t.diagnostic(`writes: ${JSON.stringify(w.statuses)}, by slot ${JSON.stringify(w.bySlot)}`);
  assert.equal(dev.code, 0, explain(dev));
  assert.deepEqual(Object.keys(w.bySlot).sort(), ['a', 'b'], `the writes spanned the switch: ${JSON.stringify(w.bySlot)}\n${explain(dev)}`);
  assert.match(dev.stderr, /migration 3 writes_at ok/);
  assert.deepEqual(Object.keys(w.statuses), ['201'], `every write acknowledged: ${JSON.stringify(w.statuses)}`);
  assert.ok(w.acked.length > 20, `${w.acked.length} writes`);
  assert.deepEqual(await missingKeys(SHARED, w.acked), []);
  const res = await fetch(`${p.url.dev}/`, { headers: { connection: 'close' } });
  assert.equal(JSON.parse(await res.text()).version, '1.4.0');
});
