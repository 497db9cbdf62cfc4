/*
 * Snapshot throughput on the real PostgreSQL of this machine.
 *
 *   npm run build && node dist/bench/snapshot.js        (SIZE=1 RUNS=3 by default; KEEP=1 keeps the source for the next run)
 *
 * The source, bench_snap_src, is generated with SQL (generate_series into three tables with primary
 * keys, two secondary indexes, a foreign key and a view) and reused when it exists complete and of the
 * same SIZE. SIZE scales the row counts: 1 is 8.2 million rows, about 1.3 GB (pg_database_size);
 * `npm run bench` uses a smaller one to keep the whole run short (bench/run-all.ts). Then, in the same run and one after the other (every other run in reverse order, a
 * CHECKPOINT before each), each into a freshly dropped target:
 *   baseline      pg_dump -Fc <src> | pg_restore -d <dst>, in a shell, into a database made by createdb
 *                 (the raw pipeline the issue names: default compression, one restore job);
 *   updateserver  copyDatabase() as a promotion runs it with fastPath off: drop and create the target,
 *                 export one snapshot, count the source's rows in it, pg_dump -Fc -Z0 | pg_restore
 *                 (jobs 1), count the copy's rows and compare; and with jobs 2 (directory format,
 *                 pg_dump -j 2 then pg_restore -j 2);
 *   template      copyDatabase() with fastPath auto, nobody connected: CREATE DATABASE ... TEMPLATE,
 *                 row counts before and after included.
 * MB/s is the source's pg_database_size (MB = 10^6 bytes) over the wall time. Prints a markdown table
 * and writes bench/results/snapshot.json. Drops every bench database at the end unless KEEP=1.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { statfs } from 'node:fs/promises';
import pg from 'pg';
import type { DatabaseConnection } from '../src/config/model.js';
import { copyDatabase } from '../src/data/snapshot.js';
import { createLogger } from '../src/log.js';
import { Knobs, startResult } from './result.js';

const SRC = 'bench_snap_src';
const TARGETS = { baseline: 'bench_snap_raw', updateserver: 'bench_snap_us', updateserverJobs: 'bench_snap_us_j2', template: 'bench_snap_tpl' };
const conn = (database: string): DatabaseConnection => ({ engine: 'postgres', host: '127.0.0.1', port: 5432, user: 'postgres', password: undefined, database });
const PG = ['-h', '127.0.0.1', '-p', '5432', '-U', 'postgres'];

async function sql<T = Record<string, unknown>>(database: string, text: string): Promise<T[]> {
  const c = new pg.Client({ host: '127.0.0.1', user: 'postgres', database });
  await c.connect();
  try { return (await c.query(text)).rows as T[]; } finally { await c.end(); }
}
const size = async (database: string) => Number((await sql<{ n: string }>('postgres', `SELECT pg_database_size('${database}') AS n`))[0]!.n);
const exists = async (database: string) => (await sql('postgres', `SELECT 1 FROM pg_database WHERE datname = '${database}'`)).length > 0;
const drop = (database: string) => sql('postgres', `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);

/**
 * The generation's last statement creates bench_meta (with the SIZE it was made for): a source without
 * it was interrupted, or made for another SIZE, and is made again.
 */
const generate = (scale: number) => {
  const n = (rows: number) => Math.max(10, Math.round(rows * scale));
  return `
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL, created_at timestamptz NOT NULL);
INSERT INTO customers SELECT g, 'customer ' || g, 'c' || g || '@example.com', now() - (g || ' minutes')::interval FROM generate_series(1, ${n(500_000)}) g;
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers(id), amount numeric(12,2) NOT NULL, status text NOT NULL, note text, created_at timestamptz NOT NULL);
INSERT INTO orders (customer_id, amount, status, note, created_at)
  SELECT 1 + (g::bigint * 7919) % ${n(500_000)}, (g % 100000) / 100.0, (ARRAY['new','paid','shipped','done'])[1 + g % 4], md5(g::text) || md5((g * 3)::text), now() - (g || ' seconds')::interval
  FROM generate_series(1, ${n(4_200_000)}) g;
CREATE INDEX orders_customer ON orders (customer_id);
CREATE TABLE events (id bigserial PRIMARY KEY, order_id bigint NOT NULL, kind text NOT NULL, detail text NOT NULL, at timestamptz NOT NULL);
INSERT INTO events (order_id, kind, detail, at) SELECT 1 + g % ${n(4_200_000)}, 'kind' || (g % 17), repeat(md5(g::text), 2), now() - (g || ' seconds')::interval FROM generate_series(1, ${n(3_500_000)}) g;
CREATE INDEX events_order ON events (order_id);
CREATE VIEW paid_orders AS SELECT * FROM orders WHERE status = 'paid';
VACUUM ANALYZE;
CREATE TABLE bench_meta (generated_at timestamptz NOT NULL DEFAULT now(), scale float8 NOT NULL);
INSERT INTO bench_meta (scale) VALUES (${scale});
`;
};

async function ensureSource(scale: number): Promise<{ bytes: number; generatedMs: number | null }> {
  if (await exists(SRC)) {
    const meta = (await sql(SRC, "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('bench_meta') AND attname = 'scale'")).length > 0
      ? await sql<{ scale: number }>(SRC, 'SELECT scale FROM bench_meta') : [];
    if (meta[0]?.scale === scale) return { bytes: await size(SRC), generatedMs: null };
    await drop(SRC);
  }
  const t0 = Date.now();
  await sql('postgres', `CREATE DATABASE ${SRC}`);
  // psql runs the script statement by statement (VACUUM cannot run inside the implicit transaction of one query).
  execFileSync('psql', [...PG, '-d', SRC, '-v', 'ON_ERROR_STOP=1', '-q', '-c', generate(scale).replace('VACUUM ANALYZE;', '')], { stdio: ['ignore', 'ignore', 'inherit'] });
  execFileSync('psql', [...PG, '-d', SRC, '-q', '-c', 'VACUUM ANALYZE'], { stdio: 'inherit' });
  const bytes = await size(SRC);
  return { bytes, generatedMs: Date.now() - t0 };
}

async function totalRows(database: string): Promise<number> {
  const [r] = await sql<{ n: string }>(database, 'SELECT (SELECT count(*) FROM customers) + (SELECT count(*) FROM orders) + (SELECT count(*) FROM events) + (SELECT count(*) FROM bench_meta) AS n');
  return Number(r!.n);
}

interface Measure { name: string; what: string; ms: number; rows: number; method?: string; why?: string }

async function baseline(dst: string): Promise<Measure> {
  await drop(dst);
  execFileSync('createdb', [...PG, dst]);
  const t0 = Date.now();
  const r = spawnSync('bash', ['-o', 'pipefail', '-c', `pg_dump ${PG.join(' ')} -Fc -d ${SRC} | pg_restore ${PG.join(' ')} -d ${dst}`], { stdio: ['ignore', 'inherit', 'inherit'] });
  const ms = Date.now() - t0;
  if (r.status !== 0) throw new Error(`the baseline pipeline failed (exit ${r.status})`);
  return { name: 'baseline', what: `pg_dump -Fc ${SRC} | pg_restore -d ${dst}`, ms, rows: await totalRows(dst) };
}

async function viaUpdateserver(name: string, dst: string, opts: { jobs: number; fastPath: 'off' | 'auto' }): Promise<Measure> {
  const logger = createLogger({ consoleLevel: 'warn' });
  try {
    const t0 = Date.now();
    const r = await copyDatabase(conn(SRC), conn(dst), { jobs: opts.jobs, frozen: false, fastPath: opts.fastPath, protect: [], logger });
    const ms = Date.now() - t0;
    const what = r.method === 'template' ? 'CREATE DATABASE ... TEMPLATE (FILE_COPY), row counts before and after' : opts.jobs > 1
      ? `pg_dump -Fd -j ${opts.jobs} -Z0 (one snapshot), pg_restore -j ${opts.jobs}, row counts compared` : 'pg_dump -Fc -Z0 (one snapshot) | pg_restore, row counts compared';
    return { name, what, ms, rows: r.rows, method: r.method, why: r.why };
  } finally {
    await logger.close();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

async function main(): Promise<void> {
  const knobs = new Knobs();
  const scale = knobs.number('SIZE', 1);
  const runs = knobs.number('RUNS', 3);
  const keep = knobs.text('KEEP', '0') === '1';
  if (scale <= 0) throw new Error('env SIZE: must be more than 0 (1 is about 1.3 GB)');
  const result = startResult('snapshot', knobs);
  const [dataDir] = await sql<{ d: string }>('postgres', "SELECT current_setting('data_directory') AS d");
  const fs = await statfs(dataDir!.d);
  const free = fs.bavail * fs.bsize;
  // The source (~1.3 GB at SIZE=1) plus four copies, and the directory dump of the jobs run.
  const needed = 7 * 1.4e9 * scale;
  if (free < needed) throw new Error(`${(free / 1e9).toFixed(1)} GB free under ${dataDir!.d}; the benchmark needs about ${(needed / 1e9).toFixed(0)} GB (the source and its copies)`);
  process.stdout.write(`free space under ${dataDir!.d}: ${(free / 1e9).toFixed(1)} GB\n`);
  const source = await ensureSource(scale);
  const sourceRows = await totalRows(SRC);
  process.stdout.write(`source ${SRC}: ${(source.bytes / 1e6).toFixed(0)} MB, ${sourceRows} rows${source.generatedMs === null ? ' (reused)' : ` (generated in ${(source.generatedMs / 1000).toFixed(0)} s)`}\n`);
  const all: Measure[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      const paths = [
        [TARGETS.baseline, () => baseline(TARGETS.baseline)],
        [TARGETS.updateserver, () => viaUpdateserver('updateserver (jobs 1)', TARGETS.updateserver, { jobs: 1, fastPath: 'off' })],
        [TARGETS.updateserverJobs, () => viaUpdateserver('updateserver (jobs 2)', TARGETS.updateserverJobs, { jobs: 2, fastPath: 'off' })],
        [TARGETS.template, () => viaUpdateserver('template fast path', TARGETS.template, { jobs: 1, fastPath: 'auto' })],
      ] as const;
      // Every other run in reverse order, so that no path always comes first (or right after the generation).
      for (const [target, measure] of i % 2 === 0 ? paths : [...paths].reverse()) {
        // Each starts with no dirty buffers of the one before to write back.
        await sql('postgres', 'CHECKPOINT');
        const r = await measure();
        if (r.rows !== sourceRows) throw new Error(`${r.name}: the copy has ${r.rows} rows, the source ${sourceRows}`);
        all.push(r);
        process.stdout.write(`${JSON.stringify(r)}\n`);
        // Each copy is dropped before the next one is made: they do not compete for the disk.
        await drop(target);
      }
    }
  } finally {
    for (const t of Object.values(TARGETS)) await drop(t);
    if (!keep) await drop(SRC);
  }
  const names = [...new Set(all.map((m) => m.name))];
  const base = median(all.filter((m) => m.name === 'baseline').map((m) => m.ms));
  const rows = names.map((name) => {
    const ms = median(all.filter((m) => m.name === name).map((m) => m.ms));
    const one = all.find((m) => m.name === name)!;
    return { name, what: one.what, ms, mbPerS: Math.round(source.bytes / 1e6 / (ms / 1000) * 10) / 10, ratioToBaseline: Math.round(ms / base * 1000) / 1000, ...(one.why ? { why: one.why } : {}) };
  });
  const table = [
    `Source: ${(source.bytes / 1e6).toFixed(0)} MB (pg_database_size), ${sourceRows} rows in 4 tables, 3 primary keys, 2 secondary indexes; ${runs} run(s), median.`,
    '',
    '| path | what runs | wall time | MB/s | time vs baseline |',
    '|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.name} | ${r.what.replace(/\|/g, '\\|')} | ${(r.ms / 1000).toFixed(1)} s | ${r.mbPerS} | ${r.ratioToBaseline.toFixed(3)}x |`),
  ].join('\n');
  process.stdout.write(`\n${table}\n`);
  process.stdout.write(`wrote ${await result.done({
    postgres: execFileSync('pg_dump', ['--version']).toString().trim(),
    source: { database: SRC, size: scale, bytes: source.bytes, rows: sourceRows, generatedMs: source.generatedMs }, runs, rows, measurements: all, table,
  })}\n`);
}

await main();
