/*
 * Issue 21's SQL and rules, without a database: the change log's install statements, the replay's
 * statements per engine, its schema rules and conflict rules, and the report built from a log.
 */
import { alreadyReplayed } from '../../src/replay/replay.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PG_INSTALL, changesQuery, installStatements, markStatement, mysqlTriggerName, literal } from '../../src/data/changes/log-sql.js';
import { applyStatement, currentRowQuery, decide, mysqlValue, schemaProblem } from '../../src/data/changes/replay-sql.js';
import { countsOf, reportLines, summarize, withoutRows, type ChangeReport } from '../../src/data/changes/report.js';
import type { LoggedChange } from '../../src/data/changes/log.js';

const ins: LoggedChange = { seq: '1', at: 'x', table: 'writes', op: 'I', pk: '{"id": 4}', old: null, new: '{"id": 4, "k": "d", "n": 4}' };
const upd: LoggedChange = { seq: '2', at: 'x', table: 'writes', op: 'U', pk: '{"id": 2}', old: '{"id": 2, "k": "b", "n": 2}', new: '{"id": 2, "k": "b", "n": 20}' };
const del: LoggedChange = { seq: '3', at: 'x', table: 'writes', op: 'D', pk: '{"id": 3}', old: '{"id": 3, "k": "c", "n": 3}', new: null };

test('PostgreSQL install: one fixed statement (plan text) that creates the log and its function in the current schema, empties it and puts a trigger with its key on every table found then', () => {
  const st = installStatements('postgres', [{ name: 'writes', pk: ['id'], columns: ['id', 'k'] }]);
  assert.deepEqual(st, [...PG_INSTALL], 'the tables found when it runs, not those given: the same text whatever the migrations add');
  assert.equal(st.length, 1);
  const [install] = st;
  assert.match(install!, /^DO \$install\$\nDECLARE s text := current_schema\(\); t record;/);
  assert.match(install!, /EXECUTE format\('CREATE TABLE IF NOT EXISTS %I\.updateserver_changes \(seq bigserial PRIMARY KEY, .* pk jsonb, old_row jsonb, new_row jsonb\)', s\);/);
  assert.match(install!, /CREATE OR REPLACE FUNCTION %1\$I\.updateserver_log_change\(\) RETURNS trigger/);
  assert.match(install!, /r := COALESCE\(o, n\)/, 'the key the row had before the change');
  assert.match(install!, /EXECUTE format\('TRUNCATE %I\.updateserver_changes', s\);/);
  assert.match(install!, /string_agg\(quote_literal\(a\.attname\), ', ' ORDER BY k\.i\)/, 'the primary key columns, in key order, as the trigger\'s arguments');
  assert.match(install!, /EXECUTE format\('CREATE TRIGGER updateserver_changes AFTER INSERT OR UPDATE OR DELETE ON %I\.%I FOR EACH ROW EXECUTE FUNCTION %I\.updateserver_log_change\(%s\)', s, t\.name, s, t\.args\);/);
  assert.match(install!, /c\.relname NOT LIKE 'updateserver\\_%'/, 'never its own tables');
});

test('MySQL install: three triggers per table spelling out every column; the key from NEW on insert, from OLD otherwise', () => {
  const st = installStatements('mysql', [{ name: 'writes', pk: ['id'], columns: ['id', 'k'] }]);
  assert.equal(st[1], 'TRUNCATE TABLE `updateserver_changes`');
  assert.deepEqual(st.slice(2), [
    'DROP TRIGGER IF EXISTS `us_chg_i_writes`',
    "CREATE TRIGGER `us_chg_i_writes` AFTER INSERT ON `writes` FOR EACH ROW INSERT INTO `updateserver_changes` (tbl, op, pk, old_row, new_row) VALUES ('writes', 'I', JSON_OBJECT('id', NEW.`id`), NULL, JSON_OBJECT('id', NEW.`id`, 'k', NEW.`k`))",
    'DROP TRIGGER IF EXISTS `us_chg_u_writes`',
    "CREATE TRIGGER `us_chg_u_writes` AFTER UPDATE ON `writes` FOR EACH ROW INSERT INTO `updateserver_changes` (tbl, op, pk, old_row, new_row) VALUES ('writes', 'U', JSON_OBJECT('id', OLD.`id`), JSON_OBJECT('id', OLD.`id`, 'k', OLD.`k`), JSON_OBJECT('id', NEW.`id`, 'k', NEW.`k`))",
    'DROP TRIGGER IF EXISTS `us_chg_d_writes`',
    "CREATE TRIGGER `us_chg_d_writes` AFTER DELETE ON `writes` FOR EACH ROW INSERT INTO `updateserver_changes` (tbl, op, pk, old_row, new_row) VALUES ('writes', 'D', JSON_OBJECT('id', OLD.`id`), JSON_OBJECT('id', OLD.`id`, 'k', OLD.`k`), NULL)",
  ]);
  const long = mysqlTriggerName('t'.repeat(64), 'U');
  assert.equal(long.length, 64);
  assert.notEqual(long, mysqlTriggerName(`${'t'.repeat(63)}u`, 'U'), 'two long names stay apart');
});

test('the log is read in the order of its sequence as a number, not of its text ("10" before "9"), after the last report\'s mark', () => {
  for (const engine of ['postgres', 'mysql'] as const) {
    assert.match(changesQuery(engine), / ORDER BY c\.seq$/);
    assert.match(changesQuery(engine), /WHERE c\.op IN \('I', 'U', 'D', 'T'\) AND c\.seq > COALESCE\(\(SELECT .*upTo.* WHERE op = 'R' ORDER BY seq DESC LIMIT 1\), 0\)/);
  }
});

test('literals: quotes doubled; MySQL doubles backslashes too; the report mark carries the last sequence covered', () => {
  assert.equal(literal('postgres', "it's \\x"), "'it''s \\x'");
  assert.equal(literal('mysql', "it's \\x"), "'it''s \\\\x'");
  // Fixed text, plan data; the last sequence covered and the run id are its parameters.
  assert.equal(markStatement('postgres'), 'INSERT INTO "updateserver_changes" (tbl, op, new_row) VALUES (\'\', \'R\', jsonb_build_object(\'upTo\', $1::bigint, \'run\', $2::text))');
  assert.equal(markStatement('mysql'), "INSERT INTO `updateserver_changes` (tbl, op, new_row) VALUES ('', 'R', JSON_OBJECT('upTo', CAST(? AS UNSIGNED), 'run', ?))");
  assert.equal(mysqlValue(null), 'NULL');
  assert.equal(mysqlValue(3.5), '3.5');
  assert.equal(mysqlValue({ x: [1] }), '\'{"x":[1]}\'');
});

test('PostgreSQL replay statements go through jsonb_populate_record: the live table\'s own types convert the logged text', () => {
  assert.equal(applyStatement('postgres', ins),
    'INSERT INTO "writes" ("id", "k", "n") OVERRIDING SYSTEM VALUE SELECT "id", "k", "n" FROM jsonb_populate_record(NULL::"writes", \'{"id": 4, "k": "d", "n": 4}\'::jsonb)');
  assert.equal(applyStatement('postgres', upd),
    'UPDATE "writes" SET ("n") = (SELECT "n" FROM jsonb_populate_record(NULL::"writes", \'{"id": 2, "k": "b", "n": 20}\'::jsonb)) WHERE ("id") = (SELECT "id" FROM jsonb_populate_record(NULL::"writes", \'{"id": 2}\'::jsonb))');
  assert.equal(applyStatement('postgres', del), 'DELETE FROM "writes" WHERE ("id") = (SELECT "id" FROM jsonb_populate_record(NULL::"writes", \'{"id": 3}\'::jsonb))');
  assert.equal(applyStatement('postgres', { ...upd, new: upd.old }), undefined, 'an update that changed nothing sends nothing');
  assert.match(currentRowQuery('postgres', upd, true), /^SELECT \(SELECT jsonb_object_agg\(e\.key, e\.value\) FROM jsonb_each\(to_jsonb\(updateserver_row\)\) .* AS same_old, .* AS same_new FROM "writes" AS updateserver_row WHERE .* FOR UPDATE$/);
});

test('MySQL replay statements use literals; the live row is read as the trigger wrote it, as text', () => {
  assert.equal(applyStatement('mysql', ins), "INSERT INTO `writes` (`id`, `k`, `n`) VALUES (4, 'd', 4)");
  assert.equal(applyStatement('mysql', upd), 'UPDATE `writes` SET `n` = 20 WHERE `id` = 2');
  assert.equal(applyStatement('mysql', del), 'DELETE FROM `writes` WHERE `id` = 3');
  assert.equal(currentRowQuery('mysql', upd, false),
    "SELECT CAST(JSON_OBJECT('id', `id`, 'k', `k`, 'n', `n`) AS CHAR) AS old_now, CAST(JSON_OBJECT('id', `id`, 'k', `k`, 'n', `n`) AS CHAR) AS new_now FROM `writes` WHERE `id` = 2");
});

test('schema rules: a table missing on the live side (the new release\'s) is named; so is a missing column and a table without a key', () => {
  assert.equal(schemaProblem('writes', [ins, upd], { columns: ['id', 'k', 'n', 'extra'], pk: ['id'] }, 'db_a'), undefined, 'an extra live column is fine');
  assert.match(schemaProblem('events', [{ ...ins, table: 'events' }], undefined, 'db_a')!, /^table events does not exist in db_a, the database that serves now/);
  assert.match(schemaProblem('writes', [ins], { columns: ['id', 'k'], pk: ['id'] }, 'db_a')!, /^table writes in db_a has no column n/);
  assert.match(schemaProblem('writes', [{ ...ins, pk: null }], { columns: ['id', 'k', 'n'], pk: [] }, 'db_a')!, /has no primary key/);
});

test('conflict rules: insert over other values, update or delete of a row changed since are refused naming table and row; rows already so are skipped', () => {
  assert.deepEqual(decide(ins, { present: false }), { apply: true });
  assert.deepEqual(decide(ins, { present: true, sameAsOld: false, sameAsNew: true }), { apply: false, skip: 'table writes, row {"id": 4}: already present with the same values' });
  assert.deepEqual(decide(ins, { present: true, sameAsOld: false, sameAsNew: false }), { apply: false, conflict: 'table writes, row {"id": 4}: inserted on the slot left, but the database that serves now has this primary key with other values' });
  assert.deepEqual(decide(upd, { present: true, sameAsOld: true, sameAsNew: false }), { apply: true });
  assert.deepEqual(decide(upd, { present: true, sameAsOld: false, sameAsNew: false }), { apply: false, conflict: 'table writes, row {"id": 2}: updated on the slot left, but changed since in the database that serves now' });
  assert.deepEqual(decide(upd, { present: false }), { apply: false, conflict: 'table writes, row {"id": 2}: updated on the slot left, but deleted since in the database that serves now' });
  assert.deepEqual(decide(upd, { present: true, sameAsOld: false, sameAsNew: true }), { apply: false, skip: 'table writes, row {"id": 2}: already has the updated values' });
  assert.deepEqual(decide(del, { present: true, sameAsOld: true, sameAsNew: false }), { apply: true });
  assert.deepEqual(decide(del, { present: true, sameAsOld: false, sameAsNew: false }), { apply: false, conflict: 'table writes, row {"id": 3}: deleted on the slot left, but changed since in the database that serves now' });
  assert.deepEqual(decide(del, { present: false }), { apply: false, skip: 'table writes, row {"id": 3}: already absent' });
});

test('the report: per table counts and keys (a row changed twice listed once), the webhook counts, and the terminal lines', () => {
  const changes = [ins, upd, { ...upd, seq: '4', old: upd.new, new: '{"id": 2, "k": "b", "n": 21}' }, del, { ...ins, seq: '5', table: 'events', pk: '{"id": 1}' }];
  const tables = summarize(changes);
  assert.deepEqual(tables, [
    { table: 'events', inserted: 1, updated: 0, deleted: 0, keys: { inserted: [{ id: 1 }], updated: [], deleted: [] } },
    { table: 'writes', inserted: 1, updated: 2, deleted: 1, keys: { inserted: [{ id: 4 }], updated: [{ id: 2 }], deleted: [{ id: 3 }] } },
  ]);
  const report: ChangeReport = { stage: 'dev', runId: 'r1', action: 'rollback', at: 'x', services: [{ service: 'web', engine: 'postgres', slot: 'b', database: 'd_b', servingSlot: 'a', servingDatabase: 'd_a', tables, untracked: ['tmp'], changes }] };
  assert.deepEqual(countsOf(report), { web: { inserted: 2, updated: 2, deleted: 1, tables: { events: { inserted: 1, updated: 0, deleted: 0 }, writes: { inserted: 1, updated: 2, deleted: 1 } } } });
  assert.equal(withoutRows(report).services[0]!.changes, undefined);
  assert.deepEqual(reportLines(report, '/s/changes/dev-r1.json'), [
    'web: slot b (database d_b) was left behind; slot a (d_a) serves without what was written to it since it went live: 5 row change(s) in 2 table(s); NOT recorded (no change-log trigger): table(s) tmp',
    '  events: inserted 1 [1], updated 0, deleted 0',
    '  writes: inserted 1 [4], updated 2 [2], deleted 1 [3]',
    'the rows are in /s/changes/dev-r1.json; to apply them to the database that serves now: updateserver replay dev --run r1 --dry-run',
  ]);
});

test('alreadyReplayed: the tables earlier successful replays of a run applied, per service; failed ones and other runs do not count', () => {
  const entry = (run: string, result: 'ok' | 'failed', tables: Record<string, string[]>) => ({
    at: '', stage: 'dev', action: 'replay' as const, result, user: 'u', services: {}, durationMs: 1, replay: { run, skip: [], statements: {}, tables },
  });
  const done = alreadyReplayed([
    entry('r1', 'ok', { web: ['writes'] }), entry('r1', 'failed', { web: ['events'] }), entry('r2', 'ok', { web: ['events'] }),
    entry('r1', 'ok', { web: ['events'], api: ['jobs'] }), { at: '', stage: 'dev', action: 'rollback' as const, result: 'ok' as const, user: 'u', services: {}, durationMs: 1 },
  ], 'r1');
  assert.deepEqual(Object.fromEntries(done), { web: ['writes', 'events'], api: ['jobs'] });
  assert.equal(alreadyReplayed([], 'r1').size, 0);
});

test('TRUNCATE (PostgreSQL): a statement trigger logs it; the report counts it apart and says so; replay refuses the table', () => {
  assert.match(PG_INSTALL[0]!, /IF TG_LEVEL = 'STATEMENT' THEN\n\s+INSERT INTO %1\$I\.updateserver_changes \(tbl, op\) VALUES \(TG_TABLE_NAME, 'T'\);/);
  assert.match(PG_INSTALL[0]!, /CREATE TRIGGER updateserver_changes_truncate AFTER TRUNCATE ON %I\.%I FOR EACH STATEMENT EXECUTE FUNCTION %I\.updateserver_log_change\(\)/);
  assert.match(changesQuery('postgres'), /c\.op IN \('I', 'U', 'D', 'T'\)/);
  const trunc: LoggedChange = { seq: '6', at: 'x', table: 'writes', op: 'T', pk: null, old: null, new: null };
  const tables = summarize([ins, trunc, { ...ins, seq: '7', pk: '{"id": 9}' }]);
  assert.deepEqual(tables.map((x) => [x.table, x.inserted, x.updated, x.deleted, x.truncated]), [['writes', 2, 0, 0, 1]]);
  const report: ChangeReport = { stage: 'dev', runId: 'r', action: 'rollback', at: 'x', services: [{ service: 'web', engine: 'postgres', slot: 'b', database: 'app_b', servingSlot: 'a', servingDatabase: 'app_a', tables, untracked: [] }] };
  const lines = reportLines(report, undefined);
  assert.match(lines[0]!, /2 row change\(s\) in 1 table\(s\); TRUNCATED: writes \(the rows it removed are not listed\)$/);
  assert.match(lines[1]!, /^ {2}writes: inserted 2 \[4, 9\], updated 0, deleted 0, truncated 1 time\(s\)$/);
  const refused = schemaProblem('writes', [ins, trunc], { columns: ['id', 'k', 'n'], pk: ['id'] }, 'app_a');
  assert.match(refused ?? '', /^table writes was truncated on the slot left \(the rows it removed are not in the log\): its 1 change\(s\) cannot be replayed$/);
});
