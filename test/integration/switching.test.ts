/*
 * Traffic switching through HAProxy (issue 3) on the real lab, under sustained load with every failed
 * request counted: a promotion, a manual flip and a flip back; an HAProxy reload (hitless) and restart
 * right after a switch; maintenance and read-only modes; draining the old slot (a request in flight is
 * waited for; one still running at the drain deadline is shut down and reported); the rendered
 * configuration checked by haproxy -c; flip's refusals and its dry run.
 * The HA pair (two load balancers, one failing mid-switch) is in ha-pair.test.ts.
 *
 * The load for the switches is wrk (C, keep-alive; 2 threads and 64 connections, WRK_THREADS and
 * WRK_CONNECTIONS change that) with a Lua script that records every response by the millisecond it
 * completed, its status, its X-Slot and its Retry-After. Failures are exact: any status but 2xx, and
 * wrk's own connect/read/write errors and timeouts (no response within 5 s), are each a failed request;
 * wrk has no retry of its own, so a request lost on a connection closed by HAProxy is a read error.
 *
 * Requests inside the operation vs the whole window: the timestamps say how many responses completed
 * during the operation itself (from spawning the CLI to its exit) and how many in the whole load
 * window, which starts 300 ms before the operation and goes on after it until it holds at least
 * 20,000 requests; both are printed. On this 2-core machine a promotion or a flip lasts 2-4 s under
 * this load and 20,000-32,000 requests fall inside it (the node load generator, test/lab/load.ts, gets
 * 4,000-8,000 per operation here: it shares the test's process and the cores with the CLI); the
 * assertion is on the window (>= 20,000), the count inside the operation is reported.
 *
 * The reload test uses test/lab/load.ts instead: HAProxy 2.6 closes idle keep-alive client connections
 * when a reload soft-stops the old worker, and a GET caught on its way on such a connection is retried
 * by every real HTTP client (RFC 9112 9.3.1); load.ts counts those apart (`retried`) and everything else
 * as a failure, where wrk would call them read errors.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseShowStat } from '../../src/lb/stat.js';
import { haproxyCommand } from '../lab/lab-haproxy.js';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { assertLoopback, startLoad, type LoadResult } from '../lab/load.js';
import { CLI, updateserver, type CliResult, explain } from './cli.js';

let p: Pipeline;
const MIN_REQUESTS = 20_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Answer { status: number; slot: string | null; release: string | null; retryAfter: string | null; body: string }

async function answer(url: string, init: { method?: string; path?: string; body?: string } = {}): Promise<Answer> {
  const method = init.method ?? 'GET';
  const res = await fetch(`${url}${init.path ?? '/'}`, { method, headers: { connection: 'close' }, ...(init.body === undefined ? {} : { body: init.body }) });
  const body = await res.text();
  return { status: res.status, slot: res.headers.get('x-slot'), release: res.headers.get('x-release'), retryAfter: res.headers.get('retry-after'), body };
}

/** n requests one after another: every status and slot seen. */
async function answers(url: string, n: number, init: { method?: string; path?: string; body?: string } = {}): Promise<{ statuses: number[]; slots: string[] }> {
  const seen = { statuses: new Set<number>(), slots: new Set<string>() };
  for (let i = 0; i < n; i++) {
    const a = await answer(url, init);
    seen.statuses.add(a.status);
    seen.slots.add(a.slot ?? '-');
  }
  return { statuses: [...seen.statuses].sort(), slots: [...seen.slots].sort() };
}

async function liveSlot(): Promise<string> {
  const a = await answer(p.url.beta);
  assert.equal(a.status, 200);
  return a.slot!;
}

async function newRelease(version: string): Promise<void> {
  await writeFile(join(p.appDir, 'VERSION'), `${version}\n`);
  const dev = await updateserver(p.project.dir, 'dev');
  assert.equal(dev.code, 0, explain(dev));
}

/** HTTP requests beta's frontend has received so far (its req_tot), to know when a load window is full. */
async function frontendRequests(): Promise<number> {
  const rows = parseShowStat(await haproxyCommand(p.lbs.beta.socket, 'show stat'));
  return Number(rows.find((r) => r.proxy === 'web' && r.type === 'frontend')?.raw.req_tot ?? 0);
}

// ---- wrk with a Lua script that records every response ----

const WRK_SCRIPT = String.raw`
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } us_timespec;
int clock_gettime(int clk, us_timespec *tp);
]]
local ts = ffi.new("us_timespec")
local function now_ms()
  ffi.C.clock_gettime(0, ts) -- CLOCK_REALTIME, the clock of Date.now()
  return tonumber(ts.tv_sec) * 1000 + math.floor(tonumber(ts.tv_nsec) / 1000000)
end

wrk.method = os.getenv("WRK_METHOD") or "GET"
wrk.body = os.getenv("WRK_BODY")

local threads = {}
function setup(thread) table.insert(threads, thread) end

-- per thread: "<ms> <status> <x-slot> <retry-after>" -> responses
counts = {}
function response(status, headers, body)
  local slot = headers["x-slot"] or headers["X-Slot"] or "-"
  local ra = headers["retry-after"] or headers["Retry-After"] or "-"
  local key = now_ms() .. " " .. status .. " " .. string.gsub(slot, "%s", "_") .. " " .. string.gsub(ra, "%s", "_")
  counts[key] = (counts[key] or 0) + 1
end

function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    for k, n in pairs(t:get("counts")) do io.write("WRK ", k, " ", n, "\n") end
  end
  local e = summary.errors
  io.write(string.format("WRKSUMMARY %d %d %d %d %d %d\n", summary.requests, e.connect, e.read, e.write, e.timeout, summary.duration))
end
`;

interface Bucket { at: number; status: number; slot: string; retryAfter: string; n: number }
interface Counts { requests: number; byStatus: Record<string, number>; bySlot: Record<string, number>; byRetryAfter: Record<string, number>; first?: number; last?: number }
interface WrkResult extends Counts {
  /** wrk's own count of completed requests (equals requests: the script sees every response) */
  wrkRequests: number;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
  buckets: Bucket[];
}

function tally(buckets: readonly Bucket[], from = -Infinity, to = Infinity): Counts {
  const c: Counts = { requests: 0, byStatus: {}, bySlot: {}, byRetryAfter: {} };
  for (const b of buckets) {
    if (b.at < from || b.at > to) continue;
    c.requests += b.n;
    c.byStatus[b.status] = (c.byStatus[b.status] ?? 0) + b.n;
    c.bySlot[b.slot] = (c.bySlot[b.slot] ?? 0) + b.n;
    c.byRetryAfter[b.retryAfter] = (c.byRetryAfter[b.retryAfter] ?? 0) + b.n;
    c.first = Math.min(c.first ?? Infinity, b.at);
    c.last = Math.max(c.last ?? -Infinity, b.at);
  }
  return c;
}

const failedOf = (r: WrkResult) => r.requests - (r.byStatus['200'] ?? 0) + r.socketErrors.connect + r.socketErrors.read + r.socketErrors.write + r.socketErrors.timeout;

/** Starts wrk (bounded by maxSeconds in any case); stop() ends it with SIGINT, by its pid, and reads what it counted. */
function startWrk(url: string, opts: { path?: string; method?: string; body?: string; connections?: number; maxSeconds?: number } = {}): { stop(): Promise<WrkResult> } {
  assertLoopback(url);
  const script = join(p.lab.dir, 'wrk-count.lua');
  const ready = writeFile(script, WRK_SCRIPT);
  let stdout = '';
  let stderr = '';
  const exited = ready.then(() => new Promise<number | null>((resolve, reject) => {
    const child = spawn('wrk', [`-t${process.env.WRK_THREADS ?? 2}`, `-c${opts.connections ?? Number(process.env.WRK_CONNECTIONS ?? 64)}`, `-d${opts.maxSeconds ?? 60}s`, '--timeout', '5s', '-s', script, `${url}${opts.path ?? '/'}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, WRK_METHOD: opts.method ?? 'GET', ...(opts.body === undefined ? {} : { WRK_BODY: opts.body }) },
    });
    started = child;
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('close', resolve);
  }));
  let started: ReturnType<typeof spawn> | undefined;
  return {
    async stop() {
      await ready;
      if (started?.exitCode === null && started.pid !== undefined) process.kill(started.pid, 'SIGINT');
      const code = await exited;
      const summary = /^WRKSUMMARY (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)$/m.exec(stdout);
      if (code !== 0 || !summary) throw new Error(`wrk exit ${code}:\n${stdout.split('\n').filter((l) => !l.startsWith('WRK ')).join('\n')}\n${stderr}`);
      const buckets = [...stdout.matchAll(/^WRK (\d+) (\d+) (\S+) (\S+) (\d+)$/gm)].map((m) => ({ at: Number(m[1]), status: Number(m[2]), slot: m[3]!, retryAfter: m[4]!, n: Number(m[5]) }));
      const [, requests, connect, read, write, timeout] = summary.map(Number) as [number, number, number, number, number, number];
      return { ...tally(buckets), wrkRequests: requests, socketErrors: { connect, read, write, timeout }, buckets };
    },
  };
}

interface Window<T> { value: T; run: WrkResult; t0: number; t1: number; inside: Counts; before: Counts; after: Counts }

/**
 * Runs op under wrk: the load starts 300 ms before it, and goes on for at least 300 ms after it and
 * until beta's frontend has seen MIN_REQUESTS (plus a margin) since the load started.
 */
async function duringOperation<T>(op: () => Promise<T>, opts: Parameters<typeof startWrk>[1] = {}): Promise<Window<T>> {
  const base = await frontendRequests();
  const wrk = startWrk(p.url.beta, opts);
  let timed: { value: T; t0: number; t1: number };
  try {
    await sleep(300);
    const t0 = Date.now();
    const value = await op();
    timed = { value, t0, t1: Date.now() };
    await sleep(300);
    const deadline = Date.now() + 30_000;
    while ((await frontendRequests()) - base < MIN_REQUESTS + 1000 && Date.now() < deadline) await sleep(100);
  } catch (err) {
    await wrk.stop().catch(() => undefined);
    throw err;
  }
  const run = await wrk.stop();
  const { t0, t1 } = timed;
  return { ...timed, run, inside: tally(run.buckets, t0, t1), before: tally(run.buckets, -Infinity, t0 - 1), after: tally(run.buckets, t1 + 1) };
}

function assertNoFailures(w: Window<unknown>): void {
  const { run } = w;
  assert.equal(run.requests, run.wrkRequests, 'the script saw every response wrk counted');
  assert.ok(run.requests >= MIN_REQUESTS, `only ${run.requests} requests in the load window`);
  assert.deepEqual(run.socketErrors, { connect: 0, read: 0, write: 0, timeout: 0 }, `socket errors or timeouts: ${JSON.stringify(run.socketErrors)}`);
  assert.deepEqual(Object.keys(run.byStatus), ['200'], `statuses: ${JSON.stringify(run.byStatus)}`);
  assert.equal(failedOf(run), 0);
  // The window really surrounds the operation.
  assert.ok(w.before.requests > 0 && w.after.requests > 0 && w.inside.requests > 0, `load before/inside/after: ${w.before.requests}/${w.inside.requests}/${w.after.requests}`);
}

function describeWindow(what: string, w: Window<CliResult>): string {
  return `${what}: ${w.run.requests} requests in the load window (${w.inside.requests} during the operation itself, ${w.t1 - w.t0} ms; ` +
    `${w.before.requests} before, ${w.after.requests} after), ${failedOf(w.run)} failed; by slot inside the operation ${JSON.stringify(w.inside.bySlot)}`;
}

// ---- the CLI, line by line (to act at a given phase of a run) ----

function updateserverWatching(args: string[], onLine: (line: string) => void): Promise<CliResult & { exitedAt: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args, '-C', p.project.dir], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    createInterface({ input: child.stderr }).on('line', (line) => { stderr += `${line}\n`; onLine(line); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - started, exitedAt: Date.now() }));
  });
}

/** The per-phase timings of the CLI's last line: "done in N ms (copy 1 ms, ..., drain 12 ms, ...)". */
function phaseMs(stdout: string, phase: string): number | undefined {
  const m = new RegExp(`[(,] ?${phase} (\\d+) ms`).exec(/^done in .*$/m.exec(stdout)?.[0] ?? '');
  return m ? Number(m[1]) : undefined;
}

async function withDrainTimeout<T>(ms: number, fn: () => Promise<T>): Promise<T> {
  const file = join(p.project.dir, 'profiles', 'beta.yaml');
  const original = await readFile(file, 'utf8');
  assert.match(original, /^ {4}drainTimeoutMs: \d+$/m);
  await writeFile(file, original.replace(/^ {4}drainTimeoutMs: \d+$/m, `    drainTimeoutMs: ${ms}`));
  try {
    return await fn();
  } finally {
    await writeFile(file, original);
  }
}

before(async () => {
  p = await startPipeline({ net: 67 });
  // The first promotion of an empty stage: beta serves 1.0.0 from slot b; slot a holds nothing yet.
  for (const stage of ['dev', 'beta']) {
    const r = await updateserver(p.project.dir, stage);
    assert.equal(r.code, 0, explain(r));
  }
});

after(async () => {
  await p?.stop();
});

test('lb render beta --check: haproxy -c accepts the rendered configuration; it has the frontend and both backends', async () => {
  const r = await updateserver(p.project.dir, 'lb', 'render', 'beta', '--check');
  assert.equal(r.code, 0, explain(r));
  assert.match(r.stdout, /^frontend web$/m);
  assert.match(r.stdout, new RegExp(`^ +bind ${p.url.beta.replace('http://', '').replaceAll('.', '\\.')}$`, 'm'));
  assert.match(r.stdout, /^ +use_backend %\[str\(web\),map\(\S+\/backends\.map,web_a\)\]$/m);
  for (const [backend, port] of [['web_a', 8001], ['web_b', 8002]] as const) {
    assert.match(r.stdout, new RegExp(`^backend ${backend}$`, 'm'));
    for (const host of p.lab.hosts.filter((h) => h.name.startsWith('beta'))) {
      assert.match(r.stdout, new RegExp(`^ +server ${host.name} ${host.address.replaceAll('.', '\\.')}:${port} check$`, 'm'));
    }
  }
});

test('flip refuses when the other slot holds no release: exit 1, says to promote first, nothing changes', async () => {
  const mapBefore = await readFile(p.lbs.beta.mapFile, 'utf8');
  const r = await updateserver(p.project.dir, 'flip', 'beta');
  assert.equal(r.code, 1, explain(r));
  assert.match(r.stderr, /cannot flip web to slot a: it holds no release on beta1, beta2/);
  assert.match(r.stderr, /what to do: promote a release into beta first: updateserver beta/);
  assert.equal(await readFile(p.lbs.beta.mapFile, 'utf8'), mapBefore);
  assert.deepEqual(await answers(p.url.beta, 5), { statuses: [200], slots: ['b'] });
});

test('promotion under sustained load: >= 20,000 requests in the window, 0 failed; the new slot serves after it', async () => {
  await newRelease('1.1.0');
  const w = await duringOperation(() => updateserver(p.project.dir, 'beta'));
  assert.equal(w.value.code, 0, explain(w.value));
  assert.match(w.value.stdout, /web now serves \S*1\.1\.0\S* from slot a/);
  assertNoFailures(w);
  assert.deepEqual(Object.keys(w.before.bySlot), ['b'], 'before the promotion only the old slot answered');
  assert.deepEqual(Object.keys(w.after.bySlot), ['a'], 'after it only the new slot');
  assert.ok((w.inside.bySlot.a ?? 0) > 0 && (w.inside.bySlot.b ?? 0) > 0, 'the switch happened under the load');
  const now = await answer(p.url.beta);
  assert.equal(now.slot, 'a');
  assert.match(now.body, /"version":"1\.1\.0"/);
  console.log(describeWindow('promotion b -> a', w));
});

test('manual flip under sustained load: >= 20,000 requests in the window, 0 failed', async () => {
  const w = await duringOperation(() => updateserver(p.project.dir, 'flip', 'beta'));
  assert.equal(w.value.code, 0, explain(w.value));
  assertNoFailures(w);
  assert.deepEqual(Object.keys(w.before.bySlot), ['a']);
  assert.deepEqual(Object.keys(w.after.bySlot), ['b']);
  const now = await answer(p.url.beta);
  assert.equal(now.slot, 'b');
  assert.match(now.body, /"version":"1\.0\.0"/, 'slot b kept its release');
  console.log(describeWindow('flip a -> b', w));
});

test('flip back under sustained load: >= 20,000 requests in the window, 0 failed', async () => {
  const w = await duringOperation(() => updateserver(p.project.dir, 'flip', 'beta'));
  assert.equal(w.value.code, 0, explain(w.value));
  assertNoFailures(w);
  assert.deepEqual(Object.keys(w.before.bySlot), ['b']);
  assert.deepEqual(Object.keys(w.after.bySlot), ['a']);
  const now = await answer(p.url.beta);
  assert.equal(now.slot, 'a');
  assert.match(now.body, /"version":"1\.1\.0"/);
  console.log(describeWindow('flip back b -> a', w));
});

test('flip --dry-run prints the plan (start, check, switch, drain, stop) without a copy phase, and changes nothing', async () => {
  const mapBefore = await readFile(p.lbs.beta.mapFile, 'utf8');
  const r = await updateserver(p.project.dir, 'flip', 'beta', '--dry-run');
  assert.equal(r.code, 0, explain(r));
  assert.match(r.stdout, /^Plan: flip beta to its other slot$/m);
  assert.match(r.stdout, /web: slot a \(\S*1\.1\.0\S*\) stays live until the switch; slot b gets \S*1\.0\.0\S* on beta1, beta2/);
  for (const phase of ['Start the idle slot', 'Health-check the idle slot on every host', 'Switch traffic on every load balancer', 'Drain the old slot', 'Stop the old slot']) {
    assert.match(r.stdout, new RegExp(`^\\d+\\. ${phase}`, 'm'));
  }
  assert.match(r.stdout, /haproxy> set map \S+backends\.map web web_b/);
  assert.doesNotMatch(r.stdout, /Copy the release/);
  assert.doesNotMatch(r.stdout, /rsync/);
  assert.match(r.stdout, /Dry run: nothing was changed\. Run `updateserver flip beta` to apply this plan\./);
  assert.equal(await readFile(p.lbs.beta.mapFile, 'utf8'), mapBefore);
  assert.deepEqual(await answers(p.url.beta, 5), { statuses: [200], slots: ['a'] });
});

test('right after a switch, an HAProxy reload under load (0 failed) and a restart keep traffic on the new slot', async () => {
  // Load from before the switch to well after the reload; the reload follows the switch at once.
  const load = startLoad(`${p.url.beta}/`, { connections: 8, maxDurationMs: 60_000 });
  let result: LoadResult;
  let flip: CliResult;
  const masterBefore = p.lbs.beta.pid;
  try {
    await sleep(300);
    flip = await updateserver(p.project.dir, 'flip', 'beta');
    await p.lbs.beta.reload();
    const deadline = Date.now() + 30_000;
    while (load.snapshot().requests < MIN_REQUESTS && Date.now() < deadline) await sleep(100);
  } finally {
    result = await load.stop();
  }
  assert.equal(flip.code, 0, explain(flip));
  assert.equal(p.lbs.beta.pid, masterBefore, 'a reload, not a restart');
  assert.ok(result.requests >= MIN_REQUESTS, `only ${result.requests} requests`);
  assert.equal(result.non2xx + result.errors + result.timeouts, 0, JSON.stringify(result));
  assert.match(await readFile(p.lbs.beta.mapFile, 'utf8'), /^web web_b$/m, 'the map file on disk names the new slot');
  assert.deepEqual(await answers(p.url.beta, 20), { statuses: [200], slots: ['b'] }, 'after the reload');
  console.log(`flip + reload: ${result.requests} requests through HAProxy, 0 failed (${result.retried} idempotent requests on keep-alive connections closed by the old worker's soft stop were retried), by release ${JSON.stringify(result.byRelease)}`);

  await p.lbs.beta.restart();
  assert.notEqual(p.lbs.beta.pid, masterBefore);
  assert.deepEqual(await answers(p.url.beta, 20), { statuses: [200], slots: ['b'] }, 'after the restart');
  const status = JSON.parse((await updateserver(p.project.dir, 'status', 'beta', '--json')).stdout) as { services: Array<{ loadBalancers: Record<string, string>; recorded: string }>; problems: string[] };
  assert.deepEqual(status.services[0]!.loadBalancers, { lb: 'b' });
  assert.equal(status.services[0]!.recorded, 'b');
  assert.deepEqual(status.problems, []);
});

test('maintenance on under load: every request gets the maintenance page (503 + Retry-After), none fails at the socket level; off: 200 again', async () => {
  let on: CliResult | undefined;
  let off: CliResult | undefined;
  let onDone = 0;
  let offStart = 0;
  const w = await (async () => {
    const wrk = startWrk(p.url.beta);
    try {
      await sleep(300);
      on = await updateserver(p.project.dir, 'maintenance', 'beta', 'on');
      onDone = Date.now();
      await sleep(1500);
      offStart = Date.now();
      off = await updateserver(p.project.dir, 'maintenance', 'beta', 'off');
      await sleep(500);
    } finally {
      // Never leave beta in maintenance for the tests after this one.
      if (off?.code !== 0) await updateserver(p.project.dir, 'maintenance', 'beta', 'off');
    }
    return await wrk.stop();
  })();
  assert.equal(on?.code, 0, on && explain(on));
  assert.equal(off?.code, 0, off && explain(off));
  assert.match(on!.stdout, /web in maintenance .* on lb/);
  const offDone = offStart + off!.ms;
  const during = tally(w.buckets, onDone, offStart);
  const afterOff = tally(w.buckets, offDone + 1);
  assert.deepEqual(w.socketErrors, { connect: 0, read: 0, write: 0, timeout: 0 });
  assert.ok(during.requests > 1000, `only ${during.requests} requests while maintenance was on`);
  assert.deepEqual(during.byStatus, { 503: during.requests }, 'every request during "on" got 503');
  assert.deepEqual(during.byRetryAfter, { 120: during.requests }, 'with Retry-After: 120');
  assert.deepEqual(during.bySlot, { '-': during.requests }, 'none reached the application');
  assert.ok(afterOff.requests > 100);
  assert.deepEqual(afterOff.byStatus, { 200: afterOff.requests }, 'after "off" every request is served again');
  const page = await answer(p.url.beta);
  assert.equal(page.status, 200);
  console.log(`maintenance: ${w.requests} requests, ${during.requests} while on (all 503 with Retry-After), ${afterOff.requests} after off (all 200), 0 socket errors or timeouts`);
});

test('read-only: POST /echo gets 503 while GET / is served 200, under load; off: POST works again', async () => {
  const r = await updateserver(p.project.dir, 'maintenance', 'beta', 'read-only');
  assert.equal(r.code, 0, explain(r));
  try {
    const reads = startWrk(p.url.beta, { connections: 4 });
    const writes = startWrk(p.url.beta, { connections: 4, method: 'POST', path: '/echo', body: 'hello' });
    await sleep(1500);
    const [get, post] = await Promise.all([reads.stop(), writes.stop()]);
    assert.deepEqual(get.socketErrors, { connect: 0, read: 0, write: 0, timeout: 0 });
    assert.deepEqual(post.socketErrors, { connect: 0, read: 0, write: 0, timeout: 0 });
    assert.ok(get.requests > 500 && post.requests > 500, `GET ${get.requests}, POST ${post.requests}`);
    assert.deepEqual(get.byStatus, { 200: get.requests }, 'reads are served');
    assert.deepEqual(post.byStatus, { 503: post.requests }, 'writes are refused');
    assert.deepEqual(post.byRetryAfter, { 5: post.requests });
    const refused = await answer(p.url.beta, { method: 'POST', path: '/echo', body: 'x' });
    assert.match(refused.body, /Read-only for a moment/);
    console.log(`read-only: ${get.requests} GET all 200, ${post.requests} POST /echo all 503`);
  } finally {
    const offR = await updateserver(p.project.dir, 'maintenance', 'beta', 'off');
    assert.equal(offR.code, 0, explain(offR));
  }
  const echo = await answer(p.url.beta, { method: 'POST', path: '/echo', body: 'back' });
  assert.deepEqual([echo.status, echo.body], [200, 'back']);
  assert.match(await readFile(p.lbs.beta.mapFile, 'utf8'), /^web\.readonly off$/m);
});

test('drain: a 1.5 s request started on the old slot just before the switch completes with 200 from it; the promotion waits for it', async () => {
  await newRelease('1.2.0');
  const old = await liveSlot();
  let slow: Promise<{ answer: Answer; startedAt: number; endedAt: number }> | undefined;
  let switchSeenAt = 0;
  const r = await updateserverWatching(['beta'], (line) => {
    // While the idle slot starts (before its checks and the switch), the old slot still takes new requests.
    if (!slow && /Start the idle slot\.\.\.$/.test(line)) {
      const startedAt = Date.now();
      slow = answer(p.url.beta, { path: '/slow?ms=1500' }).then((a) => ({ answer: a, startedAt, endedAt: Date.now() }));
    }
    if (/Switch traffic on every load balancer\.\.\.$/.test(line)) switchSeenAt = Date.now();
  });
  assert.equal(r.code, 0, explain(r));
  assert.ok(slow, 'the start phase was seen');
  const s = await slow;
  assert.equal(s.answer.status, 200);
  assert.equal(s.answer.slot, old, 'answered by the old slot');
  assert.equal(s.answer.body, 'slept 1500 ms\n');
  assert.ok(s.startedAt < switchSeenAt && switchSeenAt < s.endedAt, 'the request was in flight at the switch');
  assert.ok(s.endedAt <= r.exitedAt, 'the promotion ended after the request');
  const drain = phaseMs(r.stdout, 'drain');
  assert.ok(drain !== undefined && drain >= 300, `the drain waited for the request (drain ${drain} ms)\n${r.stdout}`);
  assert.doesNotMatch(r.stdout + r.stderr, /shut down/);
  assert.notEqual(await liveSlot(), old);
  console.log(`drain: the 1500 ms request on slot ${old} ended ${s.endedAt - switchSeenAt} ms after the switch began; drain phase ${drain} ms`);
});

test('drain deadline: with drainTimeoutMs 1000, a 20 s request in flight is shut down, the promotion finishes and says so', async () => {
  await newRelease('1.3.0');
  const old = await liveSlot();
  await withDrainTimeout(1000, async () => {
    const startedAt = Date.now();
    const slow = fetch(`${p.url.beta}/slow?ms=20000`).then(async (res) => ({ status: res.status, slot: res.headers.get('x-slot'), body: await res.text() }), (err: unknown) => ({ error: String((err as Error).cause ?? err) }))
      .then((x) => ({ ...x, endedAt: Date.now() }));
    // It is on the old slot's backend before the promotion starts.
    const deadline = Date.now() + 5000;
    for (;;) {
      const rows = parseShowStat(await haproxyCommand(p.lbs.beta.socket, 'show stat'));
      if ((rows.find((x) => x.proxy === `web_${old}` && x.type === 'backend')?.scur ?? 0) > 0) break;
      assert.ok(Date.now() < deadline, 'the slow request never reached the old slot');
      await sleep(20);
    }
    let drainSeenAt = 0;
    const r = await updateserverWatching(['beta'], (line) => {
      if (/Drain the old slot\.\.\.$/.test(line)) drainSeenAt = Date.now();
    });
    assert.equal(r.code, 0, explain(r));
    assert.match(r.stdout, new RegExp(`^warning: lb: 1 session\\(s\\) on web_${old} were still open after the 1000 ms drain deadline and were shut down$`, 'm'));
    const s = await slow;
    assert.ok(!('status' in s) || s.status !== 200, `the long request was cut: ${JSON.stringify(s)}`);
    // Ended by the drain deadline itself, not 20 s later, nor by the old slot being killed at its stop timeout.
    assert.ok(drainSeenAt > 0 && s.endedAt - drainSeenAt < 1000 + 1000,
      `the long request ended ${s.endedAt - drainSeenAt} ms after the drain began (deadline 1000 ms): ${JSON.stringify(s)}\n${r.stdout}`);
    assert.ok(s.endedAt <= r.exitedAt);
    const stopOld = phaseMs(r.stdout, 'stop-old');
    assert.ok(stopOld !== undefined && stopOld < 4000, `stopping the old slot took ${stopOld} ms (its stop timeout is 5000 ms): the request was still running on it\n${r.stdout}`);
    assert.notEqual(await liveSlot(), old);
    console.log(`drain deadline: the 20 s request ended ${s.endedAt - drainSeenAt} ms after the drain began, ${s.endedAt - startedAt} ms after it was sent (${'status' in s ? `status ${s.status}` : s.error}); promotion ${r.ms} ms, drain ${phaseMs(r.stdout, 'drain')} ms, stop-old ${stopOld} ms`);
  });
});
