/*
 * `npm run bench`: every benchmark on the lab, one after the other, then BENCHMARKS.md (bench/report.ts).
 *
 *   npm run bench                       (14 min on the 2-core machine under load, 2026-11-29; less when quiet)
 *   BENCH_QUICK=1 npm run bench         (a smoke run: one run each, small sizes; tests the pipeline, not figures)
 *   BENCH_ONLY=flip,fleet npm run bench (only these; the others' earlier results stay in the report)
 *
 * First the lab's packages and databases (test/lab/require-root.mjs, test/lab/ensure-databases.sh:
 * they install what is missing on a fresh machine). Each benchmark runs as its own process with the
 * settings below, so one that fails does not stop the others; its earlier result is removed first, so
 * the report never shows an old figure as this run's. bench/results/run.json records the run: when,
 * the machine (bench/machine.ts), each benchmark's exit status and settings.
 */
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync, mkdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO } from '../test/lab/pipeline.js';
import { readMachine } from './machine.js';
import { BENCHES, writeReport, type RunInfo } from './report.js';
import { RESULTS_DIR } from './result.js';

type Bench = (typeof BENCHES)[number];

/**
 * Settings of the full run, chosen to finish in about 15 min on 2 cores: the snapshot's generated
 * database at SIZE=0.5 (about 670 MB; SIZE=1, 1.3 GB, takes about 4 min more with its generation).
 */
const FULL: Record<Bench, Record<string, string>> = {
  promote: { HOSTS: '1,2,8,32', RUNS: '3' },
  fleet: { HOSTS: '8,32,50', RUNS: '2' },
  flip: { HOSTS: '2', RUNS: '3' },
  rollback: { RUNS: '5' },
  'switch-latency': { SWITCHES: '100', LOAD_CONNECTIONS: '8' },
  transfer: { HOSTS: '1,8', RUNS: '3', FILES: '2000' },
  snapshot: { SIZE: '0.5', RUNS: '3' },
  validate: { SIZES_KB: '16,32,64,128,256', RUNS: '7' },
  versus: { HOSTS: '2,8,32', MODES: 'clean,field', RUNS: '3' },
  startup: { RUNS: '10' },
  'fleet-light': { HOSTS: '200', RUNS: '2', PARALLEL: '64' },
  'write-cost': { SECONDS: '4', CONNECTIONS: '4', RUNS: '3' },
  'console-page': { RUNS: '30' },
};

const QUICK: Record<Bench, Record<string, string>> = {
  promote: { HOSTS: '1,2', RUNS: '1' },
  fleet: { HOSTS: '4', RUNS: '1' },
  flip: { HOSTS: '2', RUNS: '1' },
  rollback: { RUNS: '1' },
  'switch-latency': { SWITCHES: '5', LOAD_CONNECTIONS: '4' },
  transfer: { HOSTS: '1', RUNS: '1', FILES: '400' },
  snapshot: { SIZE: '0.02', RUNS: '1' },
  validate: { SIZES_KB: '16,64,256', RUNS: '3' },
  versus: { HOSTS: '2', MODES: 'clean,field', RUNS: '1' },
  startup: { RUNS: '3' },
  'fleet-light': { HOSTS: '8', RUNS: '1' },
  'write-cost': { SECONDS: '1', CONNECTIONS: '2', RUNS: '1' },
  'console-page': { RUNS: '5' },
};

export function selected(only: string | undefined): Bench[] {
  if (!only) return [...BENCHES];
  const names = only.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = names.filter((n) => !(BENCHES as readonly string[]).includes(n));
  if (unknown.length > 0) throw new Error(`env BENCH_ONLY: unknown benchmark(s) ${unknown.join(', ')}; known: ${BENCHES.join(', ')}`);
  return BENCHES.filter((b) => names.includes(b));
}

function prepare(): void {
  for (const [cmd, args] of [['node', [join(REPO, 'test', 'lab', 'require-root.mjs')]], ['bash', [join(REPO, 'test', 'lab', 'ensure-databases.sh')]]] as const) {
    const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: REPO });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}): the lab cannot run`);
  }
}

function main(): void {
  const quick = process.env.BENCH_QUICK === '1';
  const benches = selected(process.env.BENCH_ONLY);
  prepare();
  const started = Date.now();
  const runFile = join(RESULTS_DIR, 'run.json');
  // A partial run (BENCH_ONLY) keeps what the earlier run recorded about the others.
  const earlier = process.env.BENCH_ONLY && existsSync(runFile) ? (JSON.parse(readFileSync(runFile, 'utf8')) as RunInfo) : {};
  const run: RunInfo = { at: new Date(started).toISOString(), quick, ...(process.env.BENCH_ONLY ? { only: benches } : {}), machine: readMachine(), benches: (earlier.benches ?? []).filter((b) => !benches.includes(b.name as Bench)) };
  mkdirSync(RESULTS_DIR, { recursive: true });
  for (const name of benches) {
    const env = (quick ? QUICK : FULL)[name];
    rmSync(join(RESULTS_DIR, `${name}.json`), { force: true });
    process.stdout.write(`\n=== ${name}: ${Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ')} node dist/bench/${name}.js\n`);
    const t0 = Date.now();
    const r = spawnSync(process.execPath, [join(REPO, 'dist', 'bench', `${name}.js`)], { stdio: 'inherit', cwd: REPO, env: { ...process.env, ...env } });
    const durationMs = Date.now() - t0;
    run.benches!.push({ name, exit: r.status, durationMs, env });
    process.stdout.write(`=== ${name}: exit ${r.status ?? r.signal}, ${Math.round(durationMs / 1000)} s\n`);
    run.durationMs = Date.now() - started;
    writeFileSync(runFile, `${JSON.stringify(run, null, 2)}\n`);
  }
  const { file, text } = writeReport();
  process.stdout.write(`\nwrote ${file} (${Math.round((Date.now() - started) / 1000)} s): ${/^\d+ of \d+ targets met.*$/m.exec(text)?.[0] ?? ''}\n`);
  if (run.benches!.some((b) => benches.includes(b.name as Bench) && b.exit !== 0)) process.exitCode = 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
