/*
 * Issue 21 on one engine, end to end through the CLI on the lab (real sshd, HAProxy, PostgreSQL or
 * MariaDB), shared by changes-postgres.test.ts and changes-mysql.test.ts. Under load (GETs through
 * HAProxy the whole time, zero failures):
 *  - dev (copy-self) is promoted to a release whose migration adds a table (events); through the new
 *    slot, concurrently: N inserts by the app (POST /rows), M updates and K deletes of rows the copy
 *    brought, and inserts into events;
 *  - `rollback`: the report (--json, the file under the state directory, history) lists exactly those
 *    rows, compared with the new slot's database;
 *  - `replay`: refused naming events (absent on the old slot); a row the app wrote on the old slot
 *    meanwhile (the same id from its own sequence) makes it refuse naming table and row, changing
 *    nothing; --dry-run shows the SQL and changes nothing; then replay (--skip events) brings the old
 *    slot's database to hold the inserts, updates and deletes, recorded statement by statement in history.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { startLoad } from '../lab/load.js';
import { slotDatabases, type Engine } from '../lab/databases.js';
import { sql as pgSql } from '../lab/pg.js';
import { sql as mysqlSql } from '../lab/mysql.js';
import { explain, otherSlot, recordedLiveSlot, updateserver } from './cli.js';
import type { ChangeReport } from '../../src/data/changes/report.js';
import type { HistoryEntry } from '../../src/state/store.js';

const N = 12;
const UPDATED = ['seed-0', 'seed-1', 'seed-2', 'seed-3'];
const DELETED = ['seed-5', 'seed-6', 'seed-7'];
const EVENTS = [1, 2, 3];
/** beta's checks: a watch window whose sql check fails once a row named poison reaches the new slot's database. */
const watchChecks = (windowMs: number) => `pre:
  - name: health
    http: { path: /health }
watch:
  windowMs: ${windowMs}
  intervalMs: 100
  checks:
    - name: no-poison
      sql: { query: "SELECT COUNT(*) FROM writes WHERE k = 'poison'", expect: "0" }
`;

export function changesTests(engine: Engine, net: number): void {
  const dbs = slotDatabases(engine, `ustest_ch_${net}`);
  const query = <T = Record<string, unknown>>(database: string, text: string) => (engine === 'postgres' ? pgSql<T>(database, text) : mysqlSql<T>(database, text));
  let p: Pipeline;
  const post = async (key: string, stage: 'dev' | 'beta' = 'dev') => {
    const res = await fetch(`${p.url[stage]}/rows`, { method: 'POST', body: key, headers: { connection: 'close' } });
    const text = await res.text();
    assert.equal(res.status, 201, text);
    return (JSON.parse(text) as { id: number }).id;
  };
  const rows = async (db: string) => (await query<{ id: unknown; k: string; n: unknown }>(db, 'SELECT id, k, n FROM writes ORDER BY id')).map((r) => `${Number(r.id)} ${r.k} ${Number(r.n)}`);

  before(async () => {
    await dbs.dropAll();
    p = await startPipeline({
      net, betaHosts: 1, appArgs: engine === 'postgres' ? '--db postgres://postgres@127.0.0.1:5432/{database}' : '--db mysql://root@127.0.0.1:3306/{database}',
      devServiceExtra: dbs.yaml('dev', 'copy-self'), betaServiceExtra: `${dbs.yaml('beta', 'copy')}\n    checks: web`,
      projectFiles: { 'healthchecks/web.yaml': watchChecks(300) },
    });
    const dir = join(p.project.dir, 'migrations', 'web');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'V0001__writes.sql'), `CREATE TABLE writes (id ${engine === 'postgres' ? 'serial' : 'int AUTO_INCREMENT'} PRIMARY KEY, k varchar(64) NOT NULL UNIQUE, n int NOT NULL DEFAULT 0);\n`);
  });

  after(async () => {
    await p?.stop();
    await dbs.dropAll();
  });

  test(`${engine}: a rollback reports exactly the rows written through the new slot; replay refuses the new table and a conflict, changing nothing, then applies the rest (under load, 0 failed)`, async () => {
    const first = await updateserver(p.project.dir, 'dev');
    assert.equal(first.code, 0, explain(first));
    // From the first release on, clients read through HAProxy all along.
    const load = startLoad(`${p.url.dev}/`, { connections: 2 });
    let report: ChangeReport;
    let oldDb: string;
    let newDb: string;
    const inserted: number[] = [];
    try {
      for (let i = 0; i < 10; i++) await post(`seed-${i}`);
      // The new release's migration adds a table the old slot's database never has.
      await writeFile(join(p.project.dir, 'migrations', 'web', 'V0002__events.sql'), 'CREATE TABLE events (id int PRIMARY KEY, what varchar(40) NOT NULL);\n');
      await writeFile(join(p.appDir, 'VERSION'), '1.1.0\n');
      const dry = await updateserver(p.project.dir, 'dev', '--dry-run');
      assert.match(dry.stdout, /install the change log on ustest_ch_\d+_dev_[ab] \(what a rollback leaves behind is reported\)/, 'the dry run shows the step');
      const promoted = await updateserver(p.project.dir, 'dev');
      assert.equal(promoted.code, 0, explain(promoted));
      const live = await recordedLiveSlot(p.project.dir, 'dev');
      newDb = dbs.names('dev')[live];
      oldDb = dbs.names('dev')[otherSlot(live)];

      // Concurrently, through the new slot: the app's inserts, updates and deletes by another client, the new table.
      await Promise.all([
        ...Array.from({ length: N }, async (_, i) => { inserted.push(await post(`new-${i}`)); }),
        ...UPDATED.map((k) => query(newDb, `UPDATE writes SET n = n + 100 WHERE k = '${k}'`)),
        ...DELETED.map((k) => query(newDb, `DELETE FROM writes WHERE k = '${k}'`)),
        ...EVENTS.map((id) => query(newDb, `INSERT INTO events (id, what) VALUES (${id}, 'e${id}')`)),
      ]);

      const rollback = await updateserver(p.project.dir, 'rollback', 'dev', '--json');
      assert.equal(rollback.code, 0, explain(rollback));
      report = (JSON.parse(rollback.stdout) as { changes: ChangeReport }).changes;
    } finally {
      const result = await load.stop();
      assert.equal(result.errors + result.timeouts + result.non2xx, 0, `failed requests under load: ${JSON.stringify(result)}`);
      assert.ok(result.ok > 0);
    }

    // The report against the database traffic left: exactly those rows, by primary key.
    const ids = async (db: string, keys: string[]) => (await query<{ id: unknown }>(db, `SELECT id FROM writes WHERE k IN (${keys.map((k) => `'${k}'`).join(', ')}) ORDER BY id`)).map((r) => ({ id: Number(r.id) }));
    const newIds = (await query<{ id: unknown }>(newDb, "SELECT id FROM writes WHERE k LIKE 'new-%' ORDER BY id")).map((r) => ({ id: Number(r.id) }));
    assert.deepEqual(newIds.map((r) => r.id), [...inserted].sort((a, b) => a - b), 'the app acknowledged each insert with its id');
    const svc = report.services[0]!;
    assert.equal(svc.database, newDb);
    assert.equal(svc.servingDatabase, oldDb);
    assert.deepEqual(svc.untracked, []);
    const byTable = Object.fromEntries(svc.tables.map((t) => [t.table, t]));
    assert.deepEqual(Object.keys(byTable).sort(), ['events', 'writes']);
    const sortIds = (k: unknown[]) => (k as Array<{ id: number }>).map((x) => ({ id: Number(x.id) })).sort((a, b) => a.id - b.id);
    assert.deepEqual({ ...byTable.writes!, keys: undefined }, { table: 'writes', inserted: N, updated: UPDATED.length, deleted: DELETED.length, keys: undefined });
    assert.deepEqual(sortIds(byTable.writes!.keys.inserted), newIds);
    assert.deepEqual(sortIds(byTable.writes!.keys.updated), await ids(newDb, UPDATED));
    assert.deepEqual(sortIds(byTable.writes!.keys.deleted), await ids(oldDb, DELETED), 'the deleted rows, still in the old slot\'s database');
    assert.equal((await ids(newDb, DELETED)).length, 0);
    assert.deepEqual({ ...byTable.events!, keys: undefined }, { table: 'events', inserted: EVENTS.length, updated: 0, deleted: 0, keys: undefined });
    assert.deepEqual(sortIds(byTable.events!.keys.inserted), EVENTS.map((id) => ({ id })));
    // The same report in the file (with the rows) and in the history line.
    const file = join(p.project.stateDir, 'changes', `dev-${report.runId}.json`);
    const saved = JSON.parse(await readFile(file, 'utf8')) as ChangeReport;
    assert.equal(saved.services[0]!.changes!.length, N + UPDATED.length + DELETED.length + EVENTS.length);
    const history = JSON.parse((await updateserver(p.project.dir, 'history', 'dev', '--json')).stdout) as HistoryEntry[];
    assert.deepEqual(history.at(-1)!.changes!.services[0]!.tables, svc.tables);

    const before = await rows(oldDb);
    // The new release's table does not exist on the old slot: refused, naming it; nothing changed.
    const refused = await updateserver(p.project.dir, 'replay', 'dev', '--run', report.runId);
    assert.equal(refused.code, 1, explain(refused));
    assert.match(refused.stderr, new RegExp(`nothing was replayed: table events does not exist in ${oldDb}, the database that serves now`));
    assert.match(refused.stderr, /--skip events/);
    assert.deepEqual(await rows(oldDb), before);

    // A row the app wrote on the old slot meanwhile takes the id the first new insert had there: refused, naming it.
    const conflictId = await post('conflict-1');
    assert.ok(inserted.includes(conflictId), `the old slot's sequence gives ${conflictId}, an id the new slot gave too`);
    const beforeConflict = await rows(oldDb);
    const conflict = await updateserver(p.project.dir, 'replay', 'dev', '--run', report.runId, '--skip', 'events');
    assert.equal(conflict.code, 1, explain(conflict));
    assert.match(conflict.stderr, new RegExp(`conflict at change \\d+, table writes, row \\{"id": ${conflictId}\\}: inserted on the slot left, but the database that serves now has this primary key with other values`));
    assert.deepEqual(await rows(oldDb), beforeConflict, 'nothing changed');
    await query(oldDb, "DELETE FROM writes WHERE k = 'conflict-1'");

    const dryRun = await updateserver(p.project.dir, 'replay', 'dev', '--run', report.runId, '--skip', 'events', '--dry-run');
    assert.equal(dryRun.code, 0, explain(dryRun));
    const sqlLines = dryRun.stdout.split('\n').filter((l) => l.startsWith('  sql> '));
    assert.equal(sqlLines.filter((l) => l.startsWith('  sql> INSERT INTO')).length, N);
    assert.equal(sqlLines.filter((l) => l.startsWith('  sql> UPDATE')).length, UPDATED.length);
    assert.equal(sqlLines.filter((l) => l.startsWith('  sql> DELETE FROM')).length, DELETED.length);
    assert.deepEqual(await rows(oldDb), before, 'the dry run changed nothing');

    const replayed = await updateserver(p.project.dir, 'replay', 'dev', '--run', report.runId, '--skip', 'events');
    assert.equal(replayed.code, 0, explain(replayed));
    assert.match(replayed.stdout, new RegExp(`replayed ${N + UPDATED.length + DELETED.length} change\\(s\\) into ${oldDb} in one transaction; left out: events`));
    // The old slot's database now holds what the new one held, on the tables both have.
    assert.deepEqual(await rows(oldDb), await rows(newDb));
    const last = (JSON.parse((await updateserver(p.project.dir, 'history', 'dev', '--json')).stdout) as HistoryEntry[]).at(-1)!;
    assert.equal(last.action, 'replay');
    assert.equal(last.result, 'ok');
    assert.deepEqual(last.replay!.statements.web!.filter((s) => !s.startsWith('SELECT setval')), sqlLines.map((l) => l.slice('  sql> '.length, -1)).filter((s) => !s.startsWith('SELECT setval')));
    assert.deepEqual(last.replay!.tables, { web: ['writes'] });
    // A second replay of the run applies nothing twice: what the first applied is left out, and with
    // nothing else to take it is refused, changing nothing.
    const settled = await rows(oldDb);
    const twice = await updateserver(p.project.dir, 'replay', 'dev', '--run', report.runId, '--skip', 'events');
    assert.equal(twice.code, 1, explain(twice));
    assert.match(twice.stderr, new RegExp(`run ${report.runId} was already replayed`));
    assert.deepEqual(await rows(oldDb), settled);
    // The app's next insert on the old slot does not collide with a replayed row.
    assert.ok(!inserted.includes(await post('after-replay')));

    // Traffic back to the slot left, and away again: the second report holds only what was written since
    // it went live again (the first report left its mark in that log), not the rows reported before.
    const back = await updateserver(p.project.dir, 'flip', 'dev', '--force');
    assert.equal(back.code, 0, explain(back));
    const again = [await post('again-0'), await post('again-1')];
    const away = await updateserver(p.project.dir, 'flip', 'dev', '--json');
    assert.equal(away.code, 0, explain(away));
    const second = (JSON.parse(away.stdout) as { changes: ChangeReport }).changes.services[0]!;
    assert.equal(second.database, newDb);
    assert.deepEqual(second.tables.map((t) => [t.table, t.inserted, t.updated, t.deleted]), [['writes', 2, 0, 0]]);
    assert.deepEqual(sortIds(second.tables[0]!.keys.inserted), again.map((id) => ({ id })).sort((a, b) => a.id - b.id));

    if (engine === 'postgres') {
      // A TRUNCATE fires no row trigger: its statement trigger logs it; the report says the table was
      // emptied (the rows it removed are not listed) and replay refuses the table, changing nothing.
      // (MySQL's TRUNCATE fires no trigger at all: docs/decisions/0015.)
      const back2 = await updateserver(p.project.dir, 'flip', 'dev', '--force');
      assert.equal(back2.code, 0, explain(back2));
      const beforeTruncate = await post('before-truncate');
      await query(newDb, 'TRUNCATE writes');
      const away2 = await updateserver(p.project.dir, 'flip', 'dev', '--json');
      assert.equal(away2.code, 0, explain(away2));
      const third = JSON.parse(away2.stdout) as { runId?: string; changes: ChangeReport };
      const t = third.changes.services[0]!.tables.find((x) => x.table === 'writes')!;
      assert.deepEqual([t.inserted, t.updated, t.deleted, t.truncated], [1, 0, 0, 1]);
      assert.deepEqual(t.keys.inserted, [{ id: beforeTruncate }]);
      const served = await rows(oldDb);
      const refusedTruncate = await updateserver(p.project.dir, 'replay', 'dev', '--run', third.changes.runId);
      assert.equal(refusedTruncate.code, 1, explain(refusedTruncate));
      assert.match(refusedTruncate.stderr, /table writes was truncated on the slot left/);
      assert.deepEqual(await rows(oldDb), served);
    }
  });

  automaticRollbackTest(engine, () => ({ p, post, names: dbs.names }));
}

/** The second test of the file: an automatic rollback (a watch check fails) reports what the new slot took meanwhile. */
export function automaticRollbackTest(engine: Engine, ctx: () => { p: Pipeline; post: (key: string, stage: 'dev' | 'beta') => Promise<number>; names: (stage: string) => { a: string; b: string } }): void {
  test(`${engine}: an automatic rollback after the watch reports the rows written to the new slot meanwhile (history, file, log), under load`, async () => {
    const { p, post, names } = ctx();
    // beta's first release passes (the window is short); the second is watched long enough to take writes.
    const first = await updateserver(p.project.dir, 'beta');
    assert.equal(first.code, 0, explain(first));
    const oldSlot = await recordedLiveSlot(p.project.dir, 'beta');
    await writeFile(join(p.project.dir, 'healthchecks', 'web.yaml'), watchChecks(15000));
    const load = startLoad(`${p.url.beta}/`, { connections: 2 });
    const keys: number[] = [];
    let run;
    try {
      const promotion = updateserver(p.project.dir, 'beta', '--force');
      // Traffic is on the new slot once GET / answers from it.
      const deadline = Date.now() + 30_000;
      while ((await fetch(`${p.url.beta}/`, { headers: { connection: 'close' } })).headers.get('x-slot') === oldSlot) {
        assert.ok(Date.now() < deadline, 'beta never switched');
        await new Promise((r) => setTimeout(r, 100));
      }
      for (let i = 0; i < 5; i++) keys.push(await post(`watched-${i}`, 'beta'));
      keys.push(await post('poison', 'beta'));
      run = await promotion;
    } finally {
      const result = await load.stop();
      assert.equal(result.errors + result.timeouts + result.non2xx, 0, `failed requests under load: ${JSON.stringify(result)}`);
    }
    assert.equal(run.code, 1, explain(run));
    assert.match(run.stderr, /traffic was switched back to the previous slot \(automatic rollback\)/);
    const left = otherSlot(oldSlot);
    assert.ok(run.stderr.includes(`web: slot ${left} (database ${names('beta')[left]}) was left behind; slot ${oldSlot} (${names('beta')[oldSlot]}) serves without what was written to it since it went live: 6 row change(s) in 1 table(s)`), run.stderr);
    const entry = (JSON.parse((await updateserver(p.project.dir, 'history', 'beta', '--json')).stdout) as HistoryEntry[]).at(-1)!;
    assert.equal(entry.result, 'rolled back');
    const report = entry.changes!;
    assert.equal(report.action, 'automatic rollback');
    assert.deepEqual(report.services[0]!.tables.map((t) => [t.table, t.inserted, t.updated, t.deleted]), [['writes', 6, 0, 0]]);
    assert.deepEqual((report.services[0]!.tables[0]!.keys.inserted as Array<{ id: unknown }>).map((k) => Number(k.id)).sort((a, b) => a - b), [...keys].sort((a, b) => a - b));
    const saved = JSON.parse(await readFile(join(p.project.stateDir, 'changes', `beta-${report.runId}.json`), 'utf8')) as ChangeReport;
    assert.equal(saved.services[0]!.changes!.length, 6);
  });
}
