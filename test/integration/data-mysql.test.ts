/*
 * The data step on the real MariaDB of this machine: per-slot databases, dev's live data copied into
 * beta with mysqldump --single-transaction (row counts checked), migrations under the version table,
 * and the warning that a failed MySQL migration may leave the database half-changed.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { updateserver, type CliResult, explain, recordedLiveSlot } from './cli.js'
import { sql } from '../lab/mysql.js';
import { slotDatabases } from '../lab/databases.js';;

const NET = 69;
const dbs = slotDatabases('mysql', `ustest_${NET}`);
const { names, dropAll } = dbs;
const dbYaml = (stage: string) => dbs.yaml(stage);

let p: Pipeline;



const liveDb = async (stage: 'dev' | 'beta') => names(stage)[await recordedLiveSlot(p.project.dir, stage)];

before(async () => {
  await dropAll();
  p = await startPipeline({ net: NET, devServiceExtra: dbYaml('dev'), betaServiceExtra: dbYaml('beta') });
  const dir = join(p.project.dir, 'migrations', 'web');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'V0001__items.sql'), 'CREATE TABLE items (id int AUTO_INCREMENT PRIMARY KEY, name varchar(100) NOT NULL);\nINSERT INTO items (name) VALUES (\'one\'), (\'two\');\n');
});

after(async () => {
  await p?.stop();
  await dropAll();
});

test('MySQL: slot databases created and migrated; beta gets a checked copy of dev\'s live data', async () => {
  const dev = await updateserver(p.project.dir, 'dev');
  assert.equal(dev.code, 0, explain(dev));
  const devLive = await liveDb('dev');
  assert.deepEqual((await sql<{ version: number; status: string }>(devLive, 'SELECT version, status FROM updateserver_version ORDER BY id')).map((r) => [r.version, r.status]), [[1, 'ok']]);
  await sql(devLive, "INSERT INTO items (name) VALUES ('three'), ('four'), ('five')");
  const beta = await updateserver(p.project.dir, 'beta');
  assert.equal(beta.code, 0, explain(beta));
  assert.match(beta.stderr, /copied 2 table\(s\), 6 row\(s\) .* row counts match/);
  assert.equal(Number((await sql<{ n: number }>(await liveDb('beta'), 'SELECT COUNT(*) AS n FROM items'))[0]!.n), 5);
});

test('MySQL: a failing migration stops before any switch and says the database may be half-changed', async () => {
  await writeFile(join(p.project.dir, 'migrations', 'web', 'V0002__broken.sql'), 'ALTER TABLE items ADD COLUMN note varchar(10);\nALTER TABLE no_such_table ADD COLUMN x int;\n');
  await writeFile(join(p.appDir, 'VERSION'), '1.1.0\n');
  const before = await liveDb('dev');
  const dev = await updateserver(p.project.dir, 'dev');
  assert.equal(dev.code, 1, explain(dev));
  assert.match(dev.stderr, /migration 2 \(broken\) failed: .*no_such_table[\s\S]*may be half-changed/);
  assert.equal(await liveDb('dev'), before, 'live did not move');
});
