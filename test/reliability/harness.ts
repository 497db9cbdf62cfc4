/*
 * The reliability suite's harness (issue 9): one lab pipeline (dev -> beta) per test file whose app
 * writes to PostgreSQL, and withFault(), which runs one promotion of beta with one fault injected and
 * asserts the same five properties for every fault:
 *   1. live keeps serving: load through beta's HAProxy during the whole run, 0 failed requests (and a
 *      minimum number sent);
 *   2. no acknowledged write lost: writers POST keys through beta's HAProxy during the run; every key
 *      answered 201 is in the live database afterwards, and no write failed;
 *   3. the output names the cause (a regex per fault: the host, load balancer, check, migration ...);
 *   4. the exit status;
 *   5. live is where it was (slot and release, through HAProxy and in `status`), and once the fault is
 *      healed the next `updateserver beta` exits 0 and serves what dev runs.
 *
 * Databases: dev has one shared database. beta's strategy is chosen per file:
 *  - `shared` (default): both slots use one database, so a write acknowledged by either slot at any
 *    moment (also by the new slot in the seconds before an automatic rollback) must be in it;
 *  - `copy`: the idle slot gets a snapshot of dev's live database (the data faults need a real copy and
 *    restore); the live slot's own database must then hold every write acknowledged through HAProxy.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { TestContext } from 'node:test';
import { startLoad, type LoadResult } from '../lab/load.js';
import { sql } from '../lab/pg.js';
import { startPipeline, type Pipeline, type PipelineOptions } from '../lab/pipeline.js';
import { startWriters, type WriteResult } from '../lab/writers.js';
import { CLI, updateserver, type CliResult } from '../integration/cli.js';

export { updateserver, type CliResult };

export const explain = (r: CliResult) => `exit ${r.code}\nstdout:\n${r.stdout.slice(-3000)}\nstderr:\n${r.stderr.slice(-5000)}`;
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Fewest requests the load must have sent during a faulty run for "0 failed" to mean something. */
const MIN_REQUESTS = 50;
/** Fewest acknowledged writes during a faulty run. */
const MIN_WRITES = 5;

export interface FaultLabOptions extends Omit<PipelineOptions, 'net' | 'appArgs' | 'devServiceExtra' | 'betaServiceExtra'> {
  net: number;
  /** beta's database strategy (see above); default shared. */
  betaStrategy?: 'shared' | 'copy';
  /** Extra lines under beta's `database:` (6 spaces), e.g. `      fastPath: off`. */
  betaDatabaseExtra?: string;
  /** Extra service lines for beta (4 spaces), e.g. `    checks: web`. */
  betaServiceExtra?: string;
  /** Runs once the lab is up, before the first promotions (e.g. to start a proxy the profile names). */
  setUp?: (p: Pipeline) => Promise<void>;
}

export interface Served { slot: string; release: string; version: string }

export interface FaultLab {
  p: Pipeline;
  /** Database names: dev's, and beta's per slot (one name for both with shared). */
  dbs: { dev: string; a: string; b: string };
  prefix: string;
  /**
   * Makes a new release in dev: VERSION and the given files (by path under the app); files given to an
   * earlier release() are removed first, so each release holds exactly what it was asked to.
   */
  release(version: string, files?: Record<string, string>): Promise<void>;
  /** What beta serves now through its load balancer, on a new connection. */
  served(url?: string): Promise<Served>;
  status(): Promise<StatusJson>;
  stop(): Promise<void>;
}

export interface StatusJson {
  services: Array<{ service: string; loadBalancers: Record<string, string>; recorded: string; hosts: Record<string, { running: Record<string, boolean> }> }>;
  problems: string[];
}

async function dropDatabases(prefix: string): Promise<void> {
  const rows = await sql<{ datname: string }>('postgres', `SELECT datname FROM pg_database WHERE datname LIKE '${prefix}%'`);
  for (const { datname } of rows) await sql('postgres', `DROP DATABASE IF EXISTS ${datname} WITH (FORCE)`);
}

const databaseYaml = (strategy: string, a: string, b: string, extra?: string) => [
  '    database:',
  '      engine: postgres',
  `      strategy: ${strategy}`,
  '      host: 127.0.0.1',
  `      names: { a: ${a}, b: ${b} }`,
  ...(extra ? [extra] : []),
].join('\n');

/** Starts the pipeline, creates the `writes` table by migration and brings dev and beta to a first live release. */
export async function startFaultLab(opts: FaultLabOptions): Promise<FaultLab> {
  const prefix = `us_rel_${opts.net}`;
  const strategy = opts.betaStrategy ?? 'shared';
  const dbs = strategy === 'shared'
    ? { dev: `${prefix}_dev`, a: `${prefix}_beta`, b: `${prefix}_beta` }
    : { dev: `${prefix}_dev`, a: `${prefix}_beta_a`, b: `${prefix}_beta_b` };
  await dropDatabases(prefix);
  const { net, betaStrategy: _s, betaDatabaseExtra, betaServiceExtra, setUp, ...rest } = opts;
  const p = await startPipeline({
    ...rest, net,
    appArgs: '--db postgres://postgres@127.0.0.1:5432/{database}',
    devServiceExtra: databaseYaml('shared', dbs.dev, dbs.dev),
    betaServiceExtra: [databaseYaml(strategy, dbs.a, dbs.b, betaDatabaseExtra), ...(betaServiceExtra ? [betaServiceExtra] : [])].join('\n'),
  });
  let extraFiles: string[] = [];
  const fl: FaultLab = {
    p, dbs, prefix,
    async release(version, files = {}) {
      for (const f of extraFiles) await rm(join(p.appDir, f), { force: true });
      extraFiles = Object.keys(files);
      for (const [f, text] of Object.entries(files)) {
        await mkdir(dirname(join(p.appDir, f)), { recursive: true });
        await writeFile(join(p.appDir, f), text);
      }
      await writeFile(join(p.appDir, 'VERSION'), `${version}\n`);
      const dev = await updateserver(p.project.dir, 'dev');
      assert.equal(dev.code, 0, `dev release ${version}: ${explain(dev)}`);
    },
    async served(url = p.url.beta) {
      const res = await fetch(`${url}/`, { headers: { connection: 'close' }, signal: AbortSignal.timeout(5000) });
      assert.equal(res.status, 200);
      return await res.json() as Served;
    },
    async status() {
      const r = await updateserver(p.project.dir, 'status', 'beta', '--json');
      assert.equal(r.code, 0, explain(r));
      return JSON.parse(r.stdout) as StatusJson;
    },
    async stop() {
      await p.stop();
      await dropDatabases(prefix);
    },
  };
  try {
    await setUp?.(p);
    await mkdir(join(p.project.dir, 'migrations', 'web'), { recursive: true });
    // Versions of good releases start with ok- (a post check may look for it).
    await writeFile(join(p.appDir, 'VERSION'), 'ok-0\n');
    await writeFile(join(p.project.dir, 'migrations', 'web', 'V0001__writes.sql'), 'CREATE TABLE writes (id bigserial PRIMARY KEY, k text NOT NULL UNIQUE);\n');
    for (const stage of ['dev', 'beta']) {
      const r = await updateserver(p.project.dir, stage);
      assert.equal(r.code, 0, `first promotion of ${stage}: ${explain(r)}`);
    }
  } catch (err) {
    await fl.stop();
    throw err;
  }
  return fl;
}

/** `updateserver <args>` with extra environment (a PATH shim, UPDATESERVER_KILL_AT); also reports a signal. */
export function updateserverWith(project: string, env: Record<string, string>, ...args: string[]): Promise<CliResult & { signal: NodeJS.Signals | null }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args, '-C', project], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, ms: Date.now() - started }));
  });
}

export interface FaultSpec {
  /** The release beta is asked to promote (made in dev before the load starts). */
  release: { version: string; files?: Record<string, string> };
  /** Breaks something before the run (may also start something that breaks it during the run). */
  inject?: () => Promise<void>;
  /** The faulty run; default `updateserver beta`. */
  run?: (fl: FaultLab) => Promise<CliResult>;
  expect: {
    exit: number;
    /** Must match the run's stderr: the cause, with the host / load balancer / check / migration named. */
    message: RegExp;
    /** More the output must say (each must match stderr). */
    also?: RegExp[];
  };
  /** Undoes the fault; may make a fixed release. Returns the arguments of the next run (default ['beta']). */
  heal: () => Promise<string[] | void>;
  /** Said by the next run (e.g. that it took over a stale lock). */
  nextMessage?: RegExp;
}

export interface FaultOutcome { r: CliResult; load: LoadResult; writes: WriteResult; before: Served; next: CliResult }

async function missingKeys(database: string, keys: readonly string[]): Promise<string[]> {
  const present = new Set((await sql<{ k: string }>(database, 'SELECT k FROM writes')).map((row) => row.k));
  return keys.filter((k) => !present.has(k));
}

let writerRun = 0;
const other = (slot: string) => (slot === 'a' ? 'b' : 'a');

/**
 * One promotion of beta with a fault, under load and writes; asserts the five properties (see the
 * top of this file), heals the fault and asserts that the next run promotes.
 */
export async function withFault(fl: FaultLab, t: TestContext, spec: FaultSpec): Promise<FaultOutcome> {
  const { p } = fl;
  await fl.release(spec.release.version, spec.release.files);
  const before = await fl.served();
  const beforeStatus = await fl.status();
  assert.deepEqual(beforeStatus.problems, [], 'a clean stage before the fault');

  // Load through every load balancer of beta (an HA pair has two), writes through the first.
  const loads = Object.entries(p.betaUrls).map(([lb, url]) => [lb, startLoad(`${url}/`, { connections: 2, maxDurationMs: 120_000 })] as const);
  const writers = startWriters(p.url.beta, `w${fl.p.lab.hosts[0]!.address.split('.')[2]}x${++writerRun}`, 2);
  let r: CliResult;
  let byLb: Record<string, LoadResult>;
  let writes: WriteResult;
  // Whatever fails from here on, the fault is healed (once), so the next test starts from a working lab.
  let healed: Promise<string[] | void> | undefined;
  const heal = () => (healed ??= spec.heal());
  try {
    await sleep(300);
    await spec.inject?.();
    r = await (spec.run ?? ((f) => updateserver(f.p.project.dir, 'beta')))(fl);
    await sleep(300);
  } catch (err) {
    await heal().catch(() => undefined);
    throw err;
  } finally {
    byLb = Object.fromEntries(await Promise.all(loads.map(async ([lb, l]) => [lb, await l.stop()] as const)));
    writes = await writers.stop();
  }
  const loadResult = byLb['lb']!;
  if (byLb['lb2']) t.diagnostic(`load through lb2: ${JSON.stringify(byLb['lb2'])}`);
  t.diagnostic(`exit ${r.code} after ${r.ms} ms; load ${loadResult.requests} requests (${loadResult.non2xx} non-2xx, ${loadResult.errors} errors, ${loadResult.timeouts} timeouts), by release ${JSON.stringify(loadResult.byRelease)}; writes ${JSON.stringify(writes.statuses)} by slot ${JSON.stringify(writes.bySlot)}`);
  const cause = r.stderr.split('\n').find((l) => l.startsWith('updateserver: ')) ?? '';
  t.diagnostic(`message: ${cause}`);

  try {
    return await assertFault(fl, t, spec, { r, byLb, writes, before, heal });
  } finally {
    await heal().catch(() => undefined);
  }
}

async function assertFault(fl: FaultLab, t: TestContext, spec: FaultSpec, run: { r: CliResult; byLb: Record<string, LoadResult>; writes: WriteResult; before: Served; heal: () => Promise<string[] | void> }): Promise<FaultOutcome> {
  const { p } = fl;
  const { r, byLb, writes, before } = run;
  const loadResult = byLb['lb']!;
  const cause = r.stderr.split('\n').find((l) => l.startsWith('updateserver: ')) ?? '';
  // 4. and 3.: the exit status, and a message that names the cause.
  assert.equal(r.code, spec.expect.exit, explain(r));
  assert.match(r.stderr, spec.expect.message, explain(r));
  for (const also of spec.expect.also ?? []) assert.match(r.stderr, also, explain(r));

  // 1. Live kept serving, through every load balancer.
  for (const [lb, l] of Object.entries(byLb)) {
    assert.ok(l.requests >= MIN_REQUESTS, `${lb}: only ${l.requests} requests during the run`);
    assert.equal(l.non2xx + l.errors + l.timeouts, 0, `${lb}: failed requests: ${JSON.stringify(l)}`);
  }

  // 5. (first half) Live is where it was, on every load balancer; or, for a fault the run must
  // overcome (exit 0, e.g. a stale lock), on the new release.
  const dev = await fl.served(p.url.dev);
  let live = before.slot;
  for (const [lb, url] of Object.entries(p.betaUrls)) {
    const after = await fl.served(url);
    if (spec.expect.exit === 0) {
      assert.deepEqual({ slot: after.slot, release: after.release }, { slot: other(before.slot), release: dev.release }, `${lb}: the run promoted dev's release`);
      live = after.slot;
    } else {
      assert.deepEqual({ slot: after.slot, release: after.release }, { slot: before.slot, release: before.release }, `${lb}: live slot and release unchanged`);
    }
  }

  // 2. No acknowledged write lost: all in the live slot's database (the one database, with shared).
  assert.deepEqual(Object.keys(writes.statuses), ['201'], `every write acknowledged: ${JSON.stringify(writes.statuses)}`);
  assert.ok(writes.acked.length >= MIN_WRITES, `only ${writes.acked.length} writes during the run`);
  const liveDb = fl.dbs[live as 'a' | 'b'];
  assert.deepEqual(await missingKeys(liveDb, writes.acked), [], `acknowledged writes missing from ${liveDb}`);

  // 5. (second half) Heal; the stage is consistent; the next run promotes what dev runs.
  const args = (await run.heal()) ?? ['beta'];
  const healed = await fl.status();
  assert.deepEqual(healed.problems, [], 'status after healing');
  for (const s of healed.services) {
    assert.equal(s.recorded, live, 'the record names the live slot');
    for (const [lb, slot] of Object.entries(s.loadBalancers)) assert.equal(slot, live, `${lb} serves the live slot`);
  }
  const next = await updateserver(p.project.dir, ...args);
  assert.equal(next.code, 0, `the next run (${args.join(' ')}): ${explain(next)}`);
  if (spec.nextMessage) assert.match(next.stderr + next.stdout, spec.nextMessage);
  const devNow = await fl.served(p.url.dev);
  for (const [lb, url] of Object.entries(p.betaUrls)) {
    const now = await fl.served(url);
    assert.equal(now.release, devNow.release, `${lb}: beta serves the release dev runs`);
    assert.notEqual(now.slot, live, `${lb}: the next run switched slots`);
  }
  const now = await fl.served();
  console.log(`${t.name}: exit ${r.code} in ${r.ms} ms, "${cause.slice(0, 240)}"; ${loadResult.requests} requests 0 failed; ${writes.acked.length} writes acknowledged, 0 lost; next run exit 0 -> ${now.version}`);
  return { r, load: loadResult, writes, before, next };
}
