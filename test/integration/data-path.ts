/*
 * Issue 23 on one engine, end to end through the CLI on the lab (real sshd, HAProxy, PostgreSQL or
 * MariaDB), shared by data-path-postgres.test.ts and data-path-mysql.test.ts:
 *  1. after every kind of run (promotion with copy-self, copy, a first stage's kept database and shared,
 *     a failed promotion, a rollback, a flip, maintenance) each map file on disk equals `show map`, and
 *     a reload of HAProxy after a copy-self promotion accepts writes;
 *  2. a failed migration's advice per strategy: a copy is fixed in the file and run again (no resolve);
 *     a kept database (first stage, --code-only) refuses until repaired and resolved (seed 000);
 *  3. the dry run shows every pending statement as the plan's SQL steps, in text and --json;
 *  4. the plan and `check` say what the idle database is and where migrations run;
 *  and: phase times in the run's JSON log; a rollback after a copy-self switch says which rows were written (issue 21).
 * Every command of docs/operations.md's "A failed migration" runs here.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Haproxy } from '../../src/lb/haproxy.js';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import type { LabHaproxy } from '../lab/lab.js';
import { slotDatabases, type Engine } from '../lab/databases.js';
import { sql as pgSql } from '../lab/pg.js';
import { sql as mysqlSql } from '../lab/mysql.js';
import { explain, otherSlot, recordedLiveSlot, updateserver } from './cli.js';

export function dataPathTests(engine: Engine, net: number): void {
  const dbs = slotDatabases(engine, `ustest_dp_${net}`);
  const names = dbs.names;
  const query = (database: string, text: string) => (engine === 'postgres' ? pgSql(database, text) : mysqlSql(database, text));
  const dir = () => join(p.project.dir, 'migrations', 'web');
  const profile = (stage: string) => join(p.project.dir, 'profiles', `${stage}.yaml`);
  let p: Pipeline;
  let release = 0;
  const newRelease = () => writeFile(join(p.appDir, 'VERSION'), `1.${++release}.0\n`);

  /** The map file on disk, entry by entry, against HAProxy's runtime map: they must be equal. */
  async function assertMapSynced(lb: LabHaproxy, after: string): Promise<Map<string, string>> {
    const file = (await readFile(lb.mapFile, 'utf8')).split('\n').filter((l) => l.trim() !== '').map((l) => l.split(' ') as [string, string]);
    const runtime = (await Haproxy.forLoadBalancer({ name: lb.name, socket: lb.socket, timeoutMs: 2000 } as never).showMap(lb.mapFile)).map((e) => [e.key, e.value]);
    assert.deepEqual(file, runtime, `after ${after}: ${lb.mapFile} differs from show map`);
    return new Map(file);
  }
  const write = (url: string, key: string) => fetch(`${url}/rows`, { method: 'POST', body: key, headers: { connection: 'close' } });

  before(async () => {
    await dbs.dropAll();
    p = await startPipeline({
      net, betaHosts: 1, appArgs: engine === 'postgres' ? '--db postgres://postgres@127.0.0.1:5432/{database}' : '--db mysql://root@127.0.0.1:3306/{database}',
      devServiceExtra: dbs.yaml('dev', 'copy-self'), betaServiceExtra: dbs.yaml('beta', 'copy'),
    });
    await mkdir(dir(), { recursive: true });
    await writeFile(join(dir(), 'V0001__writes.sql'), `CREATE TABLE writes (id ${engine === 'postgres' ? 'bigserial' : 'bigint AUTO_INCREMENT'} PRIMARY KEY, k varchar(64) NOT NULL UNIQUE);\n`);
  });

  after(async () => {
    await p?.stop();
    await dbs.dropAll();
  });

  test(`${engine}: copy-self and copy promotions leave each map file equal to show map; a reload after copy-self accepts writes; the JSON log has the phase times`, async () => {
    const first = await updateserver(p.project.dir, 'dev');
    assert.equal(first.code, 0, explain(first));
    await assertMapSynced(p.lbs.dev, 'the first copy-self promotion');
    // The second promotion of dev copies its live database under a write freeze.
    await write(p.url.dev, 'before-freeze');
    await newRelease();
    const dev = await updateserver(p.project.dir, 'dev');
    assert.equal(dev.code, 0, explain(dev));
    assert.match(dev.stderr, /copied \d+ table\(s\)/);
    const map = await assertMapSynced(p.lbs.dev, 'a copy-self promotion');
    assert.equal(map.get('web.readonly'), 'off', 'the freeze is lifted in the file too');
    // The proof of issue 23: HAProxy reloaded from its files still accepts writes.
    await p.lbs.dev.reload();
    const res = await write(p.url.dev, 'after-reload');
    assert.equal(res.status, 201, await res.text());
    // Phase times are in the run's JSON log, as in the summary line.
    const logs = (await readdir(join(p.project.stateDir, 'logs'))).filter((f) => f.startsWith('dev-promote-')).sort();
    const lines = (await readFile(join(p.project.stateDir, 'logs', logs[logs.length - 1]!), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { event?: string; timings?: Array<{ phase: string; ms: number }> });
    const times = lines.find((l) => l.event === 'phase-times');
    assert.ok(times, 'a phase-times event in the JSON log');
    assert.deepEqual(times.timings!.map((t) => t.phase).filter((ph) => ['freeze', 'data', 'switch', 'unfreeze'].includes(ph)), ['freeze', 'data', 'switch', 'unfreeze']);
    assert.ok(times.timings!.every((t) => Number.isInteger(t.ms)));
    const summary = /done in \d+ ms \((.*)\); log:/.exec(dev.stdout)?.[1];
    assert.equal(summary, times.timings!.map((t) => `${t.phase} ${t.ms} ms`).join(', '));

    const beta = await updateserver(p.project.dir, 'beta');
    assert.equal(beta.code, 0, explain(beta));
    await assertMapSynced(p.lbs.beta, 'a copy promotion');
  });

  test(`${engine}: maintenance, a rollback after a copy-self switch (with the rows written since, issue 21) and a flip each leave the map file equal to show map`, async () => {
    const maint = await updateserver(p.project.dir, 'maintenance', 'dev', 'read-only');
    assert.equal(maint.code, 0, explain(maint));
    assert.equal((await assertMapSynced(p.lbs.dev, 'maintenance read-only')).get('web.readonly'), 'on');
    const off = await updateserver(p.project.dir, 'maintenance', 'dev', 'off');
    assert.equal(off.code, 0, explain(off));
    assert.equal((await assertMapSynced(p.lbs.dev, 'maintenance off')).get('web.readonly'), 'off');

    const left = await recordedLiveSlot(p.project.dir, 'dev');
    for (let i = 0; i < 5; i++) assert.equal((await write(p.url.dev, `since-switch-${i}`)).status, 201);
    const rollback = await updateserver(p.project.dir, 'rollback', 'dev');
    assert.equal(rollback.code, 0, explain(rollback));
    assert.equal(await recordedLiveSlot(p.project.dir, 'dev'), otherSlot(left));
    await assertMapSynced(p.lbs.dev, 'a rollback');
    // Issue 21: the change log installed on the copy says exactly which rows: the 5 inserts, plus the one
    // write made after the reload check (after-reload) of the test above.
    assert.ok(rollback.stdout.includes(`warning: web: slot ${left} (database ${names('dev')[left]}) was left behind; slot ${otherSlot(left)} (${names('dev')[otherSlot(left)]}) serves without what was written to it since it went live: 6 row change(s) in 1 table(s)\n`), explain(rollback));
    assert.match(rollback.stdout, /warning: {3}writes: inserted 6 \[\d+, \d+, \d+, \d+, \d+, \d+\], updated 0, deleted 0\n/);

    const flip = await updateserver(p.project.dir, 'flip', 'dev', '--force');
    assert.equal(flip.code, 0, explain(flip));
    assert.equal(await recordedLiveSlot(p.project.dir, 'dev'), left);
    await assertMapSynced(p.lbs.dev, 'a flip');
  });

  test(`${engine}: the dry run shows every pending statement as SQL steps (text and --json), and where the migration runs; check says it too`, async () => {
    const v2 = engine === 'postgres'
      ? "ALTER TABLE writes ADD COLUMN note text;\nUPDATE writes SET note = 'n;' || id;\nCREATE INDEX writes_note ON writes (note);\n"
      : "ALTER TABLE writes ADD COLUMN note varchar(40);\nUPDATE writes SET note = CONCAT('n;', id);\nCREATE INDEX writes_note ON writes (note);\n";
    // dev's live release is good again (the rollback marked the other one bad), with no migration pending.
    await newRelease();
    const dev = await updateserver(p.project.dir, 'dev');
    assert.equal(dev.code, 0, explain(dev));
    // V2 is written after dev's promotion: dev's live database does not have it.
    await writeFile(join(dir(), 'V0002__note.sql'), v2);
    const text = await updateserver(p.project.dir, 'beta', '--dry-run');
    assert.equal(text.code, 0, explain(text));
    const statements = v2.trim().split('\n').map((s) => s.replace(/;$/, ''));
    if (engine === 'postgres') {
      // One script in one transaction: the plan shows it as one step, every statement in it.
      // After the version table's begin row (its exact text, plan data too: decision 0011).
      assert.ok(text.stdout.includes(`V2 note (${join(dir(), 'V0002__note.sql')}): one script in one transaction with its ok row\n           sql> INSERT INTO updateserver_version `), text.stdout);
      assert.ok(text.stdout.includes(`\n           sql> ${statements[0]};\n                ${statements[1]};\n                ${statements[2]};\n           sql> UPDATE updateserver_version SET status = 'ok'`), text.stdout);
    } else {
      assert.ok(text.stdout.includes(`V2 note (${join(dir(), 'V0002__note.sql')}): one statement at a time, each committed\n           sql> INSERT INTO updateserver_version `), text.stdout);
      assert.ok(text.stdout.includes(`\n${statements.map((s) => `           sql> ${s}`).join('\n')}\n           sql> UPDATE updateserver_version SET status = 'ok'`), text.stdout);
    }
    // Point 4: beta's copy of dev's live data lacks V2, so beta would run it first.
    const devLive = names('dev')[await recordedLiveSlot(p.project.dir, 'dev')];
    assert.match(text.stdout, new RegExp(`data: copy: ${names('beta').a}|data: copy: ${names('beta').b}`));
    assert.ok(text.stdout.includes(`a copy of dev's live database ${devLive}`), text.stdout);
    assert.ok(text.stdout.includes('dev\'s live database does not have it, so beta runs it first (dev never did; promote dev first to rehearse it there)'), text.stdout);

    const json = await updateserver(p.project.dir, 'beta', '--dry-run', '--json');
    assert.equal(json.code, 0, explain(json));
    const plan = (JSON.parse(json.stdout) as { plan: { phases: Array<{ name: string; items: Array<{ actions: Array<{ kind: string; pending?: Array<{ version: number; statements: string[] }>; copiedFrom?: unknown }> }> }> } }).plan;
    const migrate = plan.phases.find((ph) => ph.name === 'data')!.items.flatMap((i) => i.actions).find((a) => a.kind === 'migrate')!;
    assert.deepEqual(migrate.pending!.map((m) => m.version), [2]);
    assert.deepEqual(migrate.pending![0]!.statements, engine === 'postgres' ? [v2.trim()] : statements);
    assert.deepEqual(migrate.copiedFrom, { stage: 'dev', slot: await recordedLiveSlot(p.project.dir, 'dev'), database: devLive });

    const check = await updateserver(p.project.dir, 'check', 'beta', '--offline', '--json');
    const findings = (JSON.parse(check.stdout) as { findings: Array<{ subject: string; check: string; detail: string }> }).findings;
    const where = findings.find((f) => f.subject === 'migrations web' && f.check === 'where they run');
    assert.match(where?.detail ?? '', /^strategy copy: each promotion copies dev's live database into the idle slot's .* a migration runs in the first stage that receives it and later stages inherit its result through the copy, so one added after dev's last promotion runs first in beta/, check.stdout);
    const devCheck = JSON.parse((await updateserver(p.project.dir, 'check', 'dev', '--offline', '--json')).stdout) as { findings: Array<{ subject: string; check: string; detail: string }> };
    assert.match(devCheck.findings.find((f) => f.check === 'where they run')?.detail ?? '', /^strategy copy-self: each promotion copies dev's live database/);
  });

  test(`${engine}: a failed migration in a copied stage says to fix the file and run again (no resolve); the failed run leaves the map file equal to show map; migrate status says the same`, async () => {
    await writeFile(join(dir(), 'V0003__broken.sql'), 'ALTER TABLE writes ADD COLUMN ok3 int;\nALTER TABLE no_such_table ADD COLUMN x int;\n');
    await newRelease();
    const live = await recordedLiveSlot(p.project.dir, 'dev');
    const failed = await updateserver(p.project.dir, 'dev');
    assert.equal(failed.code, 1, explain(failed));
    assert.match(failed.stderr, /migration 3 \(broken\) failed/);
    assert.match(failed.stderr, /what to do: live traffic was not touched; fix .*V0003__broken\.sql \(or, if dev's data makes it fail, fix that data in dev\), then run again: updateserver dev\. This database is a copy of .* that the next promotion makes afresh, so there is nothing to repair or resolve in it/);
    assert.doesNotMatch(failed.stderr, /fix the cause above|migrate resolve/);
    const map = await assertMapSynced(p.lbs.dev, 'a failed copy-self promotion');
    assert.equal(map.get('web.readonly'), 'off');
    assert.equal(await recordedLiveSlot(p.project.dir, 'dev'), live);

    const status = await updateserver(p.project.dir, 'migrate', 'status', 'dev');
    assert.equal(status.code, 1, explain(status));
    assert.match(status.stdout, new RegExp(`web slot ${otherSlot(live)} .*BLOCKED: version 3 is error — the next promotion replaces this database with a fresh copy of this stage's live database, so do not resolve it: fix the migration file \\(or the data in dev's live database\\) and run again: updateserver dev`), status.stdout);

    // The fix goes into the file; the next run copies afresh and applies it, with no resolve.
    await writeFile(join(dir(), 'V0003__broken.sql'), 'ALTER TABLE writes ADD COLUMN ok3 int;\n');
    const fixed = await updateserver(p.project.dir, 'dev');
    assert.equal(fixed.code, 0, explain(fixed));
    assert.match(fixed.stderr, /migration 3 broken ok/);
    await assertMapSynced(p.lbs.dev, 'the promotion after the fix');
  });

  test(`${engine}: a first stage keeps its database: a failed migration is refused until repaired and resolved (seed 000), --code-only too; so does a shared one`, async () => {
    // dev as a plain first stage (strategy copy, nothing to copy from): each slot keeps its own database.
    const yaml = await readFile(profile('dev'), 'utf8');
    await writeFile(profile('dev'), yaml.replace('strategy: copy-self', 'strategy: copy'));
    const plan = await updateserver(p.project.dir, 'dev', '--dry-run');
    const idle = otherSlot(await recordedLiveSlot(p.project.dir, 'dev'));
    assert.match(plan.stdout, new RegExp(`data: first stage: slot ${idle} keeps its own database ${names('dev')[idle]} \\(created empty at its first promotion; nothing is copied from the other slot`), plan.stdout);
    const check = JSON.parse((await updateserver(p.project.dir, 'check', 'dev', '--offline', '--json')).stdout) as { findings: Array<{ check: string; detail: string }> };
    assert.match(check.findings.find((f) => f.check === 'where they run')?.detail ?? '', /^first stage \(strategy copy, nothing to copy from\): each slot keeps its own database/);

    await writeFile(join(dir(), 'V0004__broken.sql'), 'CREATE TABLE t4 (x int);\nALTER TABLE no_such_table ADD COLUMN x int;\n');
    await newRelease();
    const failed = await updateserver(p.project.dir, 'dev');
    assert.equal(failed.code, 1, explain(failed));
    const resolve = `updateserver migrate resolve dev web 4 --slot ${idle}`;
    assert.ok(failed.stderr.includes(`mark it done: ${resolve}. The database is kept (not copied afresh), so the next run refuses to go on until then`), failed.stderr);
    await assertMapSynced(p.lbs.dev, 'a failed first-stage promotion');
    const status = await updateserver(p.project.dir, 'migrate', 'status', 'dev');
    assert.ok(status.stdout.includes(`BLOCKED: version 4 is error — this database is kept (the next run migrates it as it is): repair it by hand (finish or undo version 4), then: ${resolve}`), status.stdout);

    // --code-only would start the new code on that very database: refused too.
    const codeOnly = await updateserver(p.project.dir, 'dev', '--code-only');
    assert.equal(codeOnly.code, 1, explain(codeOnly));
    assert.match(codeOnly.stderr, new RegExp(`--code-only: slot ${idle}'s database .* has migration 4 in status "error"`));
    assert.ok(codeOnly.stderr.includes(`repair it by hand (finish or undo version 4), then mark it done: ${resolve}`), codeOnly.stderr);

    // Seed 000: the next run refuses until a person repairs the database and resolves.
    await writeFile(join(dir(), 'V0004__broken.sql'), 'CREATE TABLE t4 (x int);\n');
    const refused = await updateserver(p.project.dir, 'dev');
    assert.equal(refused.code, 1, explain(refused));
    assert.match(refused.stderr, /migration 4 has status "error"/);
    const idleDb = names('dev')[idle];
    // The repair by hand: PostgreSQL rolled the failed version back; MariaDB kept its first statement.
    if (engine === 'postgres') await query(idleDb, 'CREATE TABLE t4 (x int)');
    else assert.equal((await query(idleDb, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't4'")).length, 1, 'MariaDB committed the first statement');
    const resolved = await updateserver(p.project.dir, 'migrate', 'resolve', 'dev', 'web', '4', '--slot', idle, '-m', 'created t4 by hand');
    assert.equal(resolved.code, 0, explain(resolved));
    const ok = await updateserver(p.project.dir, 'dev');
    assert.equal(ok.code, 0, explain(ok));
    await assertMapSynced(p.lbs.dev, 'a first-stage promotion');

    // shared: one database for both slots, migrated in place.
    await writeFile(profile('dev'), (await readFile(profile('dev'), 'utf8')).replace(/names: \{ a: (\w+), b: \w+ \}/, 'names: { a: $1, b: $1 }').replace('strategy: copy', 'strategy: shared'));
    await newRelease();
    const shared = await updateserver(p.project.dir, 'dev');
    assert.equal(shared.code, 0, explain(shared));
    await assertMapSynced(p.lbs.dev, 'a shared promotion');

    // A failed migration in the shared database: kept, so repaired and resolved as well.
    await writeFile(join(dir(), 'V0005__broken.sql'), 'CREATE TABLE t5 (x int);\nALTER TABLE no_such_table ADD COLUMN x int;\n');
    await newRelease();
    const sharedFailed = await updateserver(p.project.dir, 'dev');
    assert.equal(sharedFailed.code, 1, explain(sharedFailed));
    const resolveShared = 'updateserver migrate resolve dev web 5 --slot a';
    assert.ok(sharedFailed.stderr.includes(`mark it done: ${resolveShared}. The database is kept (not copied afresh), so the next run refuses to go on until then`), sharedFailed.stderr);
    await assertMapSynced(p.lbs.dev, 'a failed shared promotion');
    const sharedStatus = await updateserver(p.project.dir, 'migrate', 'status', 'dev');
    assert.ok(sharedStatus.stdout.includes(`BLOCKED: version 5 is error — this database is kept (the next run migrates it as it is): repair it by hand (finish or undo version 5), then: ${resolveShared}`), sharedStatus.stdout);
    await writeFile(join(dir(), 'V0005__broken.sql'), 'CREATE TABLE t5 (x int);\n');
    if (engine === 'postgres') await query(names('dev').a, 'CREATE TABLE t5 (x int)');
    assert.equal((await updateserver(p.project.dir, 'migrate', 'resolve', 'dev', 'web', '5', '--slot', 'a', '-m', 'created t5 by hand')).code, 0);
    const sharedOk = await updateserver(p.project.dir, 'dev');
    assert.equal(sharedOk.code, 0, explain(sharedOk));
  });
}
