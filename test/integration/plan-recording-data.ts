/*
 * The plan is the whole truth for the database too (issue 16), proven on the lab's PostgreSQL
 * (plan-recording-data.test.ts, net 84, databases ustest_prd_*) and MariaDB (-mysql.test.ts, net 85,
 * ustest_prdm_*): a
 * promotion that copies its data (strategy copy, pg_dump | pg_restore), migrates the copy and installs
 * its change log runs first as a dry run, then for real, with recorders around the real ssh2 transport,
 * the real HAProxy runtime client, every real database session and every local program
 * (test/lab/recorder.ts). The real run's effects, per host, load balancer, database and this machine,
 * in order, equal the effects the dry run's plan lists, statement by statement: the copy's, the
 * migration's own, its version-table rows, the change log's install. The same for a first stage's
 * first promotion (the database and the version table created) and for a rollback of the migrated
 * release whose report leaves its mark in the log it read. Reads are not effects; the parameters only
 * the run knows (a row's id, a duration, the run id) are not compared; a dry run sends no statement that
 * changes anything.
 * MySQL/MariaDB: the change log's install spells out the columns of the tables found when it runs, so
 * it is not plan text (docs/decisions/0011); there the comparison leaves it out and checks it apart: it
 * is exactly what installStatements builds for the tables found after the run.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { updateserver, explain } from './cli.js';
import { promote } from '../../src/promote/promote.js';
import { flip } from '../../src/promote/flip.js';
import { silentLogger } from '../../src/log.js';
import type { Action, Plan } from '../../src/plan/plan.js';
import type { RunRequest } from '../../src/run/run.js';
import { Recorder, plannedEffects } from '../lab/recorder.js';
import { slotDatabases } from '../lab/databases.js';
import { sql as pgSql } from '../lab/pg.js';
import { sql as mysqlSql } from '../lab/mysql.js';
import { loggedTables } from '../../src/data/changes/log.js';
import { openDb } from '../../src/data/db.js';
import type { DatabaseConnection } from '../../src/config/model.js';
import { describeConnection as describe } from '../../src/data/connection.js';
import { PG_INSTALL, installStatements } from '../../src/data/changes/log-sql.js';

const PRE = 'pre:\n  - name: health\n    http: { path: /health }\n    deadlineMs: 8000\n';
// The copy by dump is what the plan can list statement by statement (TEMPLATE is decided when it runs).
const FAST_OFF = '      fastPath: off';
const SQL = {
  postgres: {
    V1: "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);\nINSERT INTO items (name) VALUES ('one'), ('two'), ('three');\n",
    V2: "-- a column the new release needs\nALTER TABLE items ADD COLUMN note text NOT NULL DEFAULT '';\nCREATE TABLE tags (item integer NOT NULL REFERENCES items, tag text NOT NULL, PRIMARY KEY (item, tag));\n",
  },
  mysql: {
    V1: "CREATE TABLE items (id int AUTO_INCREMENT PRIMARY KEY, name varchar(50) NOT NULL);\nINSERT INTO items (name) VALUES ('one'), ('two'), ('three');\n",
    V2: "-- a column the new release needs\nALTER TABLE items ADD COLUMN note varchar(50) NOT NULL DEFAULT '';\nCREATE TABLE tags (item int NOT NULL, tag varchar(20) NOT NULL, PRIMARY KEY (item, tag));\n",
  },
} as const;

/** MySQL's change-log install is built when it runs (see the header): from its first statement on, a database's list is compared apart. */
const INSTALL_START = 'sql CREATE TABLE IF NOT EXISTS `updateserver_changes` (seq bigint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY, at datetime(6) NOT NULL DEFAULT NOW(6), tbl varchar(64) NOT NULL, op char(1) NOT NULL, pk longtext, old_row longtext, new_row longtext) ENGINE=InnoDB';

export function planRecordingDataTests(engine: 'postgres' | 'mysql', NET: number, prefix: string): void {
const dbs = slotDatabases(engine, prefix);
const { V1, V2 } = SQL[engine];
const pg = engine === 'postgres';
const sql = <T = Record<string, unknown>>(database: string, text: string): Promise<T[]> => (pg ? pgSql<T>(database, text) : mysqlSql<T>(database, text));
/** The statement lists on one database, as the plan words them. */
const split = (st: string) => (pg ? [st.trimEnd()] : st.split(';').map((x) => x.trim()).filter((x) => x && !/^--[^\n]*$/.test(x)));
let p: Pipeline;
/** Per run: the MySQL statements built when they ran, per database (compared apart). */
let runtimeBuilt: Record<string, string[]> = {};

async function newRelease(version: string, stages: string[]): Promise<void> {
  await writeFile(join(p.appDir, 'VERSION'), `${version}\n`);
  for (const stage of stages) {
    const r = await updateserver(p.project.dir, stage);
    assert.equal(r.code, 0, explain(r));
  }
}

type Run = (request: Pick<RunRequest, 'dryRun' | 'instrument' | 'progress' | 'logger'>) => Promise<{ plan: Plan; applied?: boolean }>;

const timeless = (plan: Plan) => ({ ...plan, createdAt: '(masked)' });

/**
 * A dry run recorded from its first statement (it may read, never change), then the real run recorded
 * from the moment its plan is applied; the real run's effects must be the dry run's plan's.
 */
async function dryThenReal(name: string, run: Run): Promise<{ plan: Plan; recorder: Recorder; expected: Record<string, string[]> }> {
  const dryRecorder = new Recorder();
  dryRecorder.start();
  const dry = await run({ dryRun: true, instrument: dryRecorder.instrument(), logger: silentLogger });
  assert.deepEqual(dryRecorder.balancerWrites, [], `${name}: the dry run changed a load balancer`);
  assert.deepEqual(dryRecorder.effects.filter((e) => e.effect.startsWith('sql ')), [], `${name}: the dry run wrote to a database`);
  // Local programs that only read (the cache checked against its manifest, sizes), or a first stage's
  // staging in a temporary directory of its own (docs/decisions/0010): nothing else.
  const reads = /^run (du -sk \S+|bash -c cd \S+ && sha256sum --quiet --strict -c \.updateserver-manifest|rsync .* \/tmp\/updateserver-dry-run-\w+\/\.staging\/)$/;
  assert.deepEqual(dryRecorder.effects.filter((e) => e.effect.startsWith('run ') && !reads.test(e.effect)), [], `${name}: the dry run ran a local program that writes`);
  const recorder = new Recorder();
  const real = await run({ dryRun: false, instrument: recorder.instrument(), logger: silentLogger, progress: () => { recorder.start(); return undefined; } });
  assert.equal(real.applied, true, `${name}: not applied`);
  assert.deepEqual(timeless(real.plan), timeless(dry.plan), `${name}: the real run applied another plan than the dry run printed`);
  const expected = plannedEffects(dry.plan);
  const recorded = recorder.byTarget();
  runtimeBuilt = {};
  if (!pg) {
    for (const [t, list] of Object.entries(recorded)) {
      const at = list.indexOf(INSTALL_START);
      if (at < 0) continue;
      runtimeBuilt[t] = list.slice(at);
      recorded[t] = list.slice(0, at);
    }
  }
  assert.deepEqual(recorded, expected, `${name}: what ran differs from the plan`);
  console.log(`${name}: ${recorder.effects.length} effects recorded on ${Object.keys(expected).length} targets, equal to the dry run's plan`);
  return { plan: dry.plan, recorder, expected };
}

const actionsOf = (plan: Plan, kind: Action['kind']) => plan.phases.flatMap((ph) => ph.items.flatMap((i) => i.actions.filter((a) => a.kind === kind)));
const sqlOn = (expected: Record<string, string[]>, database: RegExp) => Object.entries(expected).filter(([t]) => database.test(t)).flatMap(([, list]) => list);

before(async () => {
  await dbs.dropAll();
  p = await startPipeline({
    net: NET, devHealthPath: '/', devServiceExtra: `${dbs.yaml('dev')}\n${FAST_OFF}`, betaServiceExtra: `${dbs.yaml('beta')}\n${FAST_OFF}\n    checks: web`,
    projectFiles: { 'healthchecks/web.yaml': PRE },
  });
  const dir = join(p.project.dir, 'migrations', 'web');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'V0001__items.sql'), V1);
});

after(async () => {
  await p?.stop();
  await dbs.dropAll();
});

test('a first stage\'s first promotion creates its database, the version table and runs V1 exactly as its dry run listed', async () => {
  await writeFile(join(p.appDir, 'VERSION'), '1.0.0\n');
  // A first stage names its release after the time: both runs at the same one.
  const at = new Date();
  const first = await dryThenReal('dev, first promotion', (r) => promote({ project: p.project, stage: 'dev', now: () => at, ...r }));
  const [migrate] = actionsOf(first.plan, 'migrate');
  assert.ok(migrate?.kind === 'migrate' && migrate.createDatabase && migrate.versionTable, JSON.stringify(migrate));
  const admin = sqlOn(first.expected, pg ? /\/postgres$/ : /:\d+\/$/);
  assert.deepEqual(admin, [`sql CREATE DATABASE ${pg ? `"${migrate.connection.database}"` : `\`${migrate.connection.database}\``}`]);
  const on = sqlOn(first.expected, new RegExp(`/${migrate.connection.database}$`));
  assert.match(on[0]!, /^sql CREATE TABLE IF NOT EXISTS updateserver_version /);
  assert.match(on[1]!, /^sql INSERT INTO updateserver_version /);
  // PostgreSQL's install is the last statement; MySQL's is compared apart.
  const end = pg ? -2 : -1;
  assert.deepEqual(on.slice(2, end), split(V1).map((st) => `sql ${st}`));
  assert.match(on.at(end)!, /^sql UPDATE updateserver_version SET status = 'ok'/);
  if (pg) assert.match(on.at(-1)!, /^sql DO \$install\$/);
  else await installedAsBuilt(migrate.connection);
  const rows = await sql<{ version: number; status: string; applied_by: string }>(migrate.connection.database, 'SELECT version, status, applied_by FROM updateserver_version ORDER BY id');
  assert.deepEqual(rows.map((r) => ({ ...r })), [{ version: 1, status: 'ok', applied_by: migrate.appliedBy }]);
});

test('a promotion that copies, migrates and installs the change log sends exactly the statements its dry run listed', async () => {
  await newRelease('1.0.0', ['beta']);
  await newRelease('1.1.0', ['dev']);
  // Written after dev's promotion: dev's live database lacks it, so beta's copy runs it.
  await writeFile(join(p.project.dir, 'migrations', 'web', 'V0002__notes.sql'), V2);
  const promoted = await dryThenReal('beta, copy + V2', (r) => promote({ project: p.project, stage: 'beta', ...r }));
  const [migrate] = actionsOf(promoted.plan, 'migrate');
  assert.ok(migrate?.kind === 'migrate' && !migrate.createDatabase && !migrate.versionTable, JSON.stringify(migrate));
  assert.deepEqual(migrate.pending.map((m) => m.version), [2]);
  const target = migrate.connection.database;
  const on = sqlOn(promoted.expected, new RegExp(`/${target}$`));
  // The source's change log dropped from the copy (PostgreSQL: plan text), then V2 with its rows, then the install.
  const migration = ['sql INSERT INTO updateserver_version (version, status, comments, checksum, applied_by, baseline) VALUES ' + (pg ? "($1, 'begin', $2, $3, $4, $5) RETURNING id" : "(?, 'begin', ?, ?, ?, ?)"),
    ...split(V2).map((st) => `sql ${st}`), `sql ${migrate.pending[0]!.rows!.ok}`];
  const [copied] = actionsOf(promoted.plan, 'data-copy');
  const dropped = (copied?.kind === 'data-copy' ? copied.dropLog ?? [] : []).map((st) => `sql ${st}`);
  assert.deepEqual(on, pg ? [...dropped, ...migration, `sql ${PG_INSTALL[0]}`] : [...dropped, ...migration]);
  if (pg) assert.deepEqual(dropped, ['sql DROP FUNCTION IF EXISTS updateserver_log_change() CASCADE', 'sql DROP TABLE IF EXISTS updateserver_changes']);
  if (!pg) {
    // The copy brought dev's log along: its triggers (read on dev when the plan was made) and its table are plan text too.
    const [copy] = actionsOf(promoted.plan, 'data-copy');
    assert.ok(copy?.kind === 'data-copy');
    assert.deepEqual(copy.dropLog, [...['d', 'i', 'u'].map((op) => `DROP TRIGGER IF EXISTS \`us_chg_${op}_items\``), 'DROP TABLE IF EXISTS `updateserver_changes`']);
    await installedAsBuilt(migrate.connection);
  }
  assert.ok(promoted.expected.local?.some((e) => e.startsWith(pg ? 'run pg_dump ' : 'run mysqldump ')) && promoted.expected.local.some((e) => e.startsWith(pg ? 'run pg_restore ' : 'run mysql ')), JSON.stringify(promoted.expected.local));
  // The version table and the triggers say the same: V2 ok, and the new release's own table is logged.
  const rows = await sql<{ version: number; status: string; comments: string }>(target, 'SELECT version, status, comments FROM updateserver_version ORDER BY id');
  assert.deepEqual(rows.map((r) => `${r.version} ${r.status} ${r.comments}`), ['1 ok items', '2 ok notes']);
  const triggers = await sql<{ t: string }>(target, pg ? "SELECT tgrelid::regclass::text AS t FROM pg_trigger WHERE tgname = 'updateserver_changes' ORDER BY 1"
    : "SELECT DISTINCT EVENT_OBJECT_TABLE AS t FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME LIKE 'us\\_chg\\_%' ORDER BY 1");
  assert.deepEqual(triggers.map((r) => r.t), ['items', 'tags']);
});

test('a rollback of the migrated release reports what users wrote to the slot it leaves, and leaves exactly the mark its plan holds', async () => {
  // Users write to the new slot (V2's column, V2's new table) while it serves: the database that has V2.
  const names = dbs.names('beta');
  const serving = (await sql<{ n: unknown }>(names.a, pg ? "SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'tags'" : "SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'tags'"))[0]!.n == 1 ? names.a : names.b;
  await sql(serving, "INSERT INTO items (name, note) VALUES ('four', 'written after the switch')");
  await sql(serving, "UPDATE items SET note = 'changed' WHERE id = 1");
  await sql(serving, "INSERT INTO tags (item, tag) VALUES (1, 'new')");

  const back = await dryThenReal('beta, rollback', (r) => flip({ project: p.project, stage: 'beta', rollback: true, force: true, ...r }));
  assert.equal(back.plan.action, 'rollback');
  const [report] = actionsOf(back.plan, 'report-changes');
  assert.ok(report?.kind === 'report-changes', JSON.stringify(back.plan.phases.map((ph) => ph.name)));
  assert.deepEqual(report.services.map((s) => s.connection.database), [serving], 'the slot traffic leaves is the one written to');
  // The report's one write, as the plan says it: the mark in the log it read, and nothing else on that database.
  assert.deepEqual(sqlOn(back.expected, new RegExp(`/${serving}$`)), [`sql ${report.services[0]!.mark}`]);
  const marks = await sql<{ up: unknown; last: unknown }>(serving, pg ? "SELECT new_row ->> 'upTo' AS up, (SELECT max(seq) FROM updateserver_changes WHERE op <> 'R')::text AS last FROM updateserver_changes WHERE op = 'R'"
    : "SELECT JSON_VALUE(new_row, '$.upTo') AS up, (SELECT CAST(MAX(seq) AS CHAR) FROM updateserver_changes WHERE op <> 'R') AS last FROM updateserver_changes WHERE op = 'R'");
  assert.equal(marks.length, 1);
  assert.equal(String(marks[0]!.up), String(marks[0]!.last), 'the mark covers every change the report read');
  // What the report says is what users wrote: 3 changes in 2 tables.
  const rows = await sql<{ tbl: string; op: string }>(serving, "SELECT tbl, op FROM updateserver_changes WHERE op <> 'R' ORDER BY seq");
  assert.deepEqual(rows.map((r) => `${r.tbl} ${r.op}`), ['items I', 'items U', 'tags I']);
});

/** MySQL: the install sent (or the one found in the recording) is exactly what installStatements builds for the tables there after the run. */
async function installedAsBuilt(conn: DatabaseConnection, sent?: string[]): Promise<void> {
  const db = await openDb(conn);
  try {
    const expected = installStatements('mysql', await loggedTables(db)).map((st) => `sql ${st}`);
    assert.deepEqual(sent ?? runtimeBuilt[describe(conn)] ?? [], expected);
  } finally {
    await db.close();
  }
}
}
