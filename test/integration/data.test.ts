/*
 * The data step on the real PostgreSQL of this machine: a database per slot, dev's live data copied
 * into beta's idle slot at promotion (row counts checked), migrations applied under the version table,
 * a failing migration that leaves live untouched and blocks until resolved.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { startLoad } from '../lab/load.js';
import { updateserver, type CliResult, explain, recordedLiveSlot } from './cli.js';
import { sql } from '../lab/pg.js';
import { schemaChecks, slotDatabases } from '../lab/databases.js';

const NET = 66;
const dbs = slotDatabases('postgres', `ustest_${NET}`);
const { names, dropAll } = dbs;
const dbYaml = (stage: string) => dbs.yaml(stage);
/** beta's checks: the app's /health, and an sql check that the slot's database has the expected schema version. */
const CHECKS = schemaChecks;

let p: Pipeline;


const liveSlot = (stage: 'dev' | 'beta') => recordedLiveSlot(p.project.dir, stage);

before(async () => {
  await dropAll();
  p = await startPipeline({
    net: NET, devServiceExtra: dbYaml('dev'), betaServiceExtra: `${dbYaml('beta')}\n    checks: web`,
    projectFiles: { 'healthchecks/web.yaml': CHECKS('2') },
  });
  const dir = join(p.project.dir, 'migrations', 'web');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'V0001__items.sql'), 'CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);\nINSERT INTO items (name) VALUES (\'one\'), (\'two\'), (\'three\');\n');
  await writeFile(join(dir, 'V0002__note.sql'), 'ALTER TABLE items ADD COLUMN note text;\n');
});

after(async () => {
  await p?.stop();
  await dropAll();
});

test('first promotions create and migrate each stage\'s slot database; beta gets a checked copy of dev\'s live data', async () => {
  const dev = await updateserver(p.project.dir, 'dev');
  assert.equal(dev.code, 0, explain(dev));
  const devLive = names('dev')[await liveSlot('dev')];
  const versions = await sql<{ version: number; status: string; checksum: string; applied_by: string }>(devLive, 'SELECT version, status, checksum, applied_by FROM updateserver_version ORDER BY id');
  assert.deepEqual(versions.map((v) => [v.version, v.status]), [[1, 'ok'], [2, 'ok']]);
  assert.ok(versions.every((v) => /^[0-9a-f]{64}$/.test(v.checksum) && v.applied_by.includes('updateserver')));
  // Users write to dev.
  await sql(devLive, "INSERT INTO items (name) SELECT 'row ' || g FROM generate_series(1, 1000) g");

  const beta = await updateserver(p.project.dir, 'beta');
  assert.equal(beta.code, 0, explain(beta));
  assert.match(beta.stderr, /copied 2 table\(s\), 1005 row\(s\) .* row counts match/);
  const betaLive = names('beta')[await liveSlot('beta')];
  assert.equal(Number((await sql<{ n: string }>(betaLive, 'SELECT count(*) AS n FROM items'))[0]!.n), 1003);
  assert.match(beta.stderr, /pre check schema on beta1 slot [ab] .*: ok/, 'the sql check ran against the slot\'s database and passed');
  // The same check expecting another schema version fails, naming the query and what it returned.
  await writeFile(join(p.project.dir, 'healthchecks', 'web.yaml'), CHECKS('99'));
  try {
    const flip = await updateserver(p.project.dir, 'beta', '--force');
    assert.equal(flip.code, 1, explain(flip));
    assert.match(flip.stderr, /health check schema \(pre, sql\) .*returned "2", expected "99"/);
  } finally {
    await writeFile(join(p.project.dir, 'healthchecks', 'web.yaml'), CHECKS('3'));
  }
});

test('a new migration is rehearsed on a copy: dev applies it to its idle copy; beta copies the result; live databases untouched, under load', async () => {
  await writeFile(join(p.project.dir, 'migrations', 'web', 'V0003__index.sql'), 'CREATE INDEX items_name ON items (name);\n');
  await writeFile(join(p.appDir, 'VERSION'), '1.1.0\n');
  // dev rehearses V3 on the copy of its own live data (copy-self) ...
  const devRun = await updateserver(p.project.dir, 'dev');
  assert.equal(devRun.code, 0, explain(devRun));
  assert.match(devRun.stderr, /migration 3 index ok/);
  const before = names('beta')[await liveSlot('beta')];
  const load = startLoad(`${p.url.beta}/`, { connections: 4 });
  // ... so beta's copy of dev's live data arrives at version 3 with nothing left to apply.
  const r = await updateserver(p.project.dir, 'beta', '--dry-run');
  assert.match(r.stdout, new RegExp(`snapshot ustest_${NET}_dev_[ab] \\([\\d.]+ [KMG]iB\\) into ustest_${NET}_beta_[ab]`));
  assert.match(r.stdout, /no pending migration/);
  const beta = await updateserver(p.project.dir, 'beta');
  const result = await load.stop();
  assert.equal(beta.code, 0, explain(beta));
  assert.equal(result.non2xx + result.errors + result.timeouts, 0, JSON.stringify(result));
  const after = names('beta')[await liveSlot('beta')];
  assert.notEqual(after, before);
  const versions = await sql<{ version: number; status: string }>(after, 'SELECT version, status FROM updateserver_version ORDER BY id');
  assert.deepEqual(versions.map((v) => v.version), [1, 2, 3]);
  // The previous live database, kept for rollback, was not migrated.
  assert.deepEqual((await sql<{ version: number }>(before, 'SELECT version FROM updateserver_version ORDER BY id')).map((v) => v.version), [1, 2]);
});

test('a failing migration stops the promotion before any switch and records error; in a copied stage the fix goes into the file, with no resolve', async () => {
  await writeFile(join(p.project.dir, 'migrations', 'web', 'V0004__broken.sql'), 'ALTER TABLE items ADD COLUMN ok2 text;\nALTER TABLE no_such_table ADD COLUMN x int;\n');
  await writeFile(join(p.appDir, 'VERSION'), '1.2.0\n');
  const dev = await updateserver(p.project.dir, 'dev');
  assert.equal(dev.code, 1, explain(dev));
  assert.match(dev.stderr, /migration 4 \(broken\) failed: .*no_such_table.*\(rolled back: the schema is as before\)/);
  const devLive = names('dev')[await liveSlot('dev')];
  const idle = devLive === names('dev').a ? names('dev').b : names('dev').a;
  const rows = await sql<{ version: number; status: string; comments: string }>(idle, 'SELECT version, status, comments FROM updateserver_version ORDER BY id');
  assert.deepEqual(rows.at(-1)!.status, 'error');
  assert.match(rows.at(-1)!.comments, /no_such_table/);
  // The transaction was rolled back: the first statement of the failed version left no column.
  assert.equal((await sql(idle, "SELECT 1 FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'ok2'")).length, 0);
  // dev still serves from its live slot.
  const res = await fetch(`${p.url.dev}/`, { headers: { connection: 'close' } });
  assert.equal(res.status, 200);
  // migrate status shows the blocked version with the way out: dev is copy-self, so its idle database
  // is copied afresh at the next promotion and a resolve there would be wiped (issue 23).
  const idleSlot = idle.endsWith('_a') ? 'a' : 'b';
  const status = await updateserver(p.project.dir, 'migrate', 'status', 'dev');
  assert.equal(status.code, 1, `a blocked database is something to attend to: ${explain(status)}`);
  assert.match(status.stdout, new RegExp(`web slot ${idleSlot} .*BLOCKED: version 4 is error — the next promotion replaces this database with a fresh copy .* do not resolve it: fix the migration file`));
  // With the migration fixed, the next promotion takes a fresh copy of live and applies it: no resolve.
  await writeFile(join(p.project.dir, 'migrations', 'web', 'V0004__broken.sql'), 'ALTER TABLE items ADD COLUMN ok2 text;\n');
  const again = await updateserver(p.project.dir, 'dev');
  assert.equal(again.code, 0, explain(again));
});
