/*
 * The write path's cost of the change log (issue 21, docs/decisions/0015-change-log.md): single-row
 * INSERTs per second into a table without the log and into the same table with it, on the lab's
 * PostgreSQL and MariaDB.
 *
 *   npm run build && node dist/bench/write-cost.js     (SECONDS=4 CONNECTIONS=4 RUNS=3 BATCH=1,100 ENGINES=postgres,mysql)
 *
 * Two databases per engine, identical (a table of 5 columns with a bigint key, as an application's), one
 * with the change log installed exactly as a promotion installs it (src/data/changes/log.ts). Each run
 * measures both, one after the other (plain first, then logged, alternating the order each run so a
 * machine getting busier does not favour one): CONNECTIONS clients each send INSERTs of one row, one
 * after the other, for SECONDS: each in its own transaction, then BATCH rows per transaction. The figure is the median over RUNS of rows per second, and the
 * cost is 1 - logged/plain. The log's own rows are counted to show every insert was recorded.
 * Prints a markdown table and writes bench/results/write-cost.json.
 */
import { openDb, type Db } from '../src/data/db.js';
import type { DatabaseConnection, DatabaseEngine } from '../src/config/model.js';
import { installChangeLog, logSize } from '../src/data/changes/log.js';
import { Knobs, startResult } from './result.js';

const knobs = new Knobs();
const seconds = knobs.number('SECONDS', 4);
const connections = knobs.number('CONNECTIONS', 4);
const runs = knobs.number('RUNS', 3);
const engines = knobs.text('ENGINES', 'postgres,mysql').split(',').map((e) => e.trim()) as DatabaseEngine[];
/** Rows per transaction: 1 (autocommit, what a web request does; the commit's fsync dominates) and a batch (the trigger's own cost shows). */
const batches = knobs.numbers('BATCH', '1,100');
const result = startResult('write-cost', knobs);

const conn = (engine: DatabaseEngine, database: string): DatabaseConnection => (engine === 'postgres'
  ? { engine, host: '127.0.0.1', port: 5432, user: 'postgres', database }
  : { engine, host: '127.0.0.1', port: 3306, user: 'root', database }) as DatabaseConnection;

async function recreate(engine: DatabaseEngine, name: string): Promise<void> {
  const admin = await openDb(conn(engine, engine === 'postgres' ? 'postgres' : ''));
  try {
    await admin.exec(engine === 'postgres' ? `DROP DATABASE IF EXISTS ${name} WITH (FORCE)` : `DROP DATABASE IF EXISTS ${name}`);
    await admin.exec(`CREATE DATABASE ${name}`);
  } finally {
    await admin.close();
  }
  const db = await openDb(conn(engine, name));
  try {
    await db.query(engine === 'postgres'
      ? 'CREATE TABLE items (id bigserial PRIMARY KEY, k varchar(64) NOT NULL, n int NOT NULL, payload text NOT NULL, at timestamptz NOT NULL DEFAULT now())'
      : 'CREATE TABLE items (id bigint AUTO_INCREMENT PRIMARY KEY, k varchar(64) NOT NULL, n int NOT NULL, payload text NOT NULL, at datetime(6) NOT NULL DEFAULT NOW(6)) ENGINE=InnoDB');
  } finally {
    await db.close();
  }
}

async function drop(engine: DatabaseEngine, name: string): Promise<void> {
  const admin = await openDb(conn(engine, engine === 'postgres' ? 'postgres' : ''));
  try { await admin.exec(engine === 'postgres' ? `DROP DATABASE IF EXISTS ${name} WITH (FORCE)` : `DROP DATABASE IF EXISTS ${name}`); } finally { await admin.close(); }
}

/** Rows per second: `connections` clients inserting one row per statement for `seconds`. */
async function insertRate(engine: DatabaseEngine, name: string, batch: number): Promise<{ perSecond: number; rows: number }> {
  const clients: Db[] = [];
  for (let i = 0; i < connections; i++) clients.push(await openDb(conn(engine, name)));
  const sql = engine === 'postgres' ? 'INSERT INTO items (k, n, payload) VALUES ($1, $2, $3)' : 'INSERT INTO items (k, n, payload) VALUES (?, ?, ?)';
  const payload = 'x'.repeat(200);
  let rows = 0;
  const t0 = Date.now();
  const end = t0 + seconds * 1000;
  try {
    await Promise.all(clients.map(async (c, i) => {
      for (let j = 0; Date.now() < end;) {
        if (batch === 1) {
          await c.query(sql, [`c${i}-${j++}`, j, payload]);
          rows++;
          continue;
        }
        await c.tx(async () => { for (let k = 0; k < batch; k++) await c.query(sql, [`c${i}-${j++}`, j, payload]); });
        rows += batch;
      }
    }));
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
  return { perSecond: Math.round(rows / ((Date.now() - t0) / 1000)), rows };
}

async function countLog(engine: DatabaseEngine, name: string): Promise<number> {
  const db = await openDb(conn(engine, name));
  try { return await logSize(db); } finally { await db.close(); }
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2]! : Math.round((s[s.length / 2 - 1]! + s[s.length / 2]!) / 2); };

const rowsOut: Array<{ engine: string; batch: number; plain: number[]; logged: number[]; plainMedian: number; loggedMedian: number; costPercent: number; loggedRows: number; logRows: number }> = [];
for (const engine of engines) {
  const plain = `bench_wc_${engine}_plain`;
  const logged = `bench_wc_${engine}_logged`;
  await recreate(engine, plain);
  await recreate(engine, logged);
  const db = await openDb(conn(engine, logged));
  try { await installChangeLog(db); } finally { await db.close(); }
  for (const batch of batches) {
    const p: number[] = [];
    const l: number[] = [];
    let loggedRows = 0;
    const before = await countLog(engine, logged);
    for (let r = 0; r < runs; r++) {
      const order = r % 2 === 0 ? ['plain', 'logged'] : ['logged', 'plain'];
      for (const which of order) {
        const x = await insertRate(engine, which === 'plain' ? plain : logged, batch);
        if (which === 'plain') p.push(x.perSecond);
        else { l.push(x.perSecond); loggedRows += x.rows; }
        process.stdout.write(`${engine} batch ${batch} run ${r + 1} ${which}: ${x.perSecond} inserts/s\n`);
      }
    }
    const logRows = (await countLog(engine, logged)) - before;
    const pm = median(p);
    const lm = median(l);
    rowsOut.push({ engine, batch, plain: p, logged: l, plainMedian: pm, loggedMedian: lm, costPercent: Math.round((1 - lm / pm) * 1000) / 10, loggedRows, logRows });
  }
  await drop(engine, plain);
  await drop(engine, logged);
}

const table = [
  `| engine | rows per transaction | without the change log (inserts/s, median of ${runs}) | with it | cost on the write path | rows inserted with the log / rows in the log |`,
  '|---|---|---|---|---|---|',
  ...rowsOut.map((r) => `| ${r.engine === 'postgres' ? 'PostgreSQL' : 'MariaDB'} | ${r.batch === 1 ? '1 (autocommit)' : r.batch} | ${r.plainMedian} (${r.plain.join(', ')}) | ${r.loggedMedian} (${r.logged.join(', ')}) | ${r.costPercent} % | ${r.loggedRows} / ${r.logRows} |`),
  '',
  `${connections} connections, each sending single-row INSERTs (a bigint key, 4 more columns, 200-byte text) for ${seconds} s per measurement, either each in its own transaction (a web request's write: the commit's flush to disk dominates) or ${batches.filter((b) => b > 1).join(', ')} per transaction (the trigger's own cost shows); plain and logged measured alternately. The logged database has the trigger and the log exactly as a promotion installs them; every row inserted there is in the log (last column).`,
].join('\n');
process.stdout.write(`\n${table}\n`);
process.stdout.write(`wrote ${await result.done({ engines: rowsOut, table })}\n`);
