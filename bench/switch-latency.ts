/*
 * Switch latency: from sending the runtime `set map` to the first request answered by the new slot,
 * through beta's HAProxy, with both slots running and healthy.
 *
 *   npm run build && node dist/bench/switch-latency.js      (root needed, like the lab)
 *
 * Environment: SWITCHES (default 20), LOAD_CONNECTIONS (default 8; 0 skips the run under load).
 *
 * On a lab (2 beta hosts, one HAProxy), beta gets a release through updateserver itself; then the idle
 * slot is started on both hosts (the same release directory, on the idle slot's port) and the bench
 * waits until HAProxy's own health checks report its servers UP. A tight client loop, one keep-alive
 * connection sending GET / back to back through the frontend (a minimal HTTP/1.1 client on a raw
 * socket, so the client adds as little as possible), notes the X-Slot of every answer. Each switch
 * flips the map entry with updateserver's own runtime client (Haproxy.forLoadBalancer(...).setMap,
 * src/lb/haproxy.ts, a new UNIX-socket connection per command, as during a promotion) and measures,
 * on one monotonic clock (performance.now()):
 *   - latency: from just before setMap sends `set map` to the first answer from the other slot;
 *   - set map reply: from the same instant to HAProxy's (empty) reply to the command.
 * Switches alternate a -> b -> a ..., 150 ms apart. Two runs: the client loop alone, then the same with
 * wrk (a separate process, LOAD_CONNECTIONS keep-alive connections, a Lua script counting statuses) as
 * background traffic. Failed requests during all switches: answers other than 200, and connection errors
 * or timeouts, of the client loop and of wrk.
 *
 * Prints a markdown table and writes bench/results/switch-latency.json. Target: <= 5 ms per load balancer.
 */
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { execFileSync } from 'node:child_process';
import { loadProfile } from '../src/config/load.js';
import type { SlotName } from '../src/config/model.js';
import { Haproxy } from '../src/lb/haproxy.js';
import { startPipeline, type Pipeline } from '../test/lab/pipeline.js';
import { assertLoopback } from '../test/lab/load.js';
import { startSampleApp } from '../test/lab/remote.js';
import { updateserver } from '../test/integration/cli.js';
import { Knobs, startResult } from './result.js';

const knobs = new Knobs();
const SWITCHES = knobs.number('SWITCHES', 20);
const LOAD_CONNECTIONS = knobs.number('LOAD_CONNECTIONS', 8);
const result = startResult('switch-latency', knobs);
const TARGET_MS = 5;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * One keep-alive connection, GET / back to back, every answer's status and X-Slot noted. The answers
 * of the sample app always carry Content-Length, which is all this parser needs.
 */
class TightLoop {
  requests = 0;
  failures: string[] = [];
  private socket: Socket | undefined;
  private buffer: Buffer = Buffer.alloc(0);
  private inFlight = false;
  private stopped = false;
  private waiter: { slot: string; resolve: (at: number) => void } | undefined;
  private readonly request: Buffer;

  constructor(private readonly host: string, private readonly port: number) {
    assertLoopback(`http://${host}:${port}/`);
    this.request = Buffer.from(`GET / HTTP/1.1\r\nHost: ${host}:${port}\r\nUser-Agent: switch-latency\r\n\r\n`);
  }

  start(): void {
    this.stopped = false;
    this.open();
  }

  /** Resolves with the performance.now() of the first answer from `slot` (register before switching). */
  next(slot: string): Promise<number> {
    return new Promise((resolve) => { this.waiter = { slot, resolve }; });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.socket?.destroy();
    await sleep(10);
  }

  private open(): void {
    const socket = connect({ host: this.host, port: this.port, noDelay: true });
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    socket.on('connect', () => this.send());
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (err) => { if (!this.stopped) this.lost(`error: ${err.message}`); });
    socket.on('close', () => {
      if (this.stopped || this.socket !== socket) return;
      if (this.inFlight) this.lost('connection closed with a request in flight');
      this.open();
    });
  }

  private lost(why: string): void {
    if (!this.inFlight) return;
    this.inFlight = false;
    this.requests += 1;
    this.failures.push(why);
  }

  private send(): void {
    if (this.stopped) return;
    this.inFlight = true;
    this.socket!.write(this.request);
  }

  private receive(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const end = this.buffer.indexOf('\r\n\r\n');
      if (end === -1) return;
      const head = this.buffer.subarray(0, end).toString('latin1');
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (this.buffer.length < end + 4 + length) return;
      this.buffer = this.buffer.subarray(end + 4 + length);
      const at = performance.now();
      const status = Number(head.slice(9, 12));
      const slot = /\r\nx-slot: *(\S+)/i.exec(head)?.[1] ?? '-';
      this.inFlight = false;
      this.requests += 1;
      if (status !== 200) this.failures.push(`status ${status}`);
      if (this.waiter && slot === this.waiter.slot) {
        this.waiter.resolve(at);
        this.waiter = undefined;
      }
      if (/\r\nconnection: *close/i.test(head)) {
        this.socket?.destroy();
        this.open();
        return;
      }
      this.send();
    }
  }
}

const WRK_SCRIPT = `
counts = {}
local threads = {}
function setup(thread) table.insert(threads, thread) end
function response(status, headers, body) counts[status] = (counts[status] or 0) + 1 end
function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("counts")) do io.write("STATUS ", status, " ", n, "\\n") end
  end
  local e = summary.errors
  io.write(string.format("ERRORS %d %d %d %d %d\\n", summary.requests, e.connect, e.read, e.write, e.timeout))
end
`;

interface WrkCount { requests: number; byStatus: Record<string, number>; socketErrors: number }

/** wrk in its own process as background traffic; stopped with SIGINT by its pid; bounded by -d in any case. */
async function startWrk(dir: string, url: string, connections: number): Promise<{ stop(): Promise<WrkCount> }> {
  assertLoopback(url);
  const script = join(dir, 'bench-wrk.lua');
  await writeFile(script, WRK_SCRIPT);
  const child = spawn('wrk', ['-t1', `-c${connections}`, '-d120s', '--timeout', '5s', '-s', script, url], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<number | null>((resolve, reject) => { child.on('error', reject); child.on('close', resolve); });
  return {
    async stop() {
      if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGINT');
      await exited;
      const errors = /^ERRORS (\d+) (\d+) (\d+) (\d+) (\d+)$/m.exec(out);
      if (!errors) throw new Error(`wrk said:\n${out}`);
      const byStatus = Object.fromEntries([...out.matchAll(/^STATUS (\d+) (\d+)$/gm)].map((m) => [m[1]!, Number(m[2])]));
      const [, requests, ...socket] = errors.map(Number) as number[];
      return { requests: requests!, byStatus, socketErrors: socket.reduce((a, b) => a + b, 0) };
    },
  };
}

interface Run {
  condition: string;
  latenciesMs: number[];
  setMapReplyMs: number[];
  loopRequests: number;
  loopFailures: string[];
  background?: WrkCount;
}

async function measure(p: Pipeline, haproxy: Haproxy, mapFile: string, live: SlotName, condition: string, loadConnections: number): Promise<Run> {
  const address = new URL(p.url.beta);
  const loop = new TightLoop(address.hostname, Number(address.port));
  const wrk = loadConnections > 0 ? await startWrk(p.lab.dir, `${p.url.beta}/`, loadConnections) : undefined;
  const run: Run = { condition, latenciesMs: [], setMapReplyMs: [], loopRequests: 0, loopFailures: [] };
  let current: SlotName = live;
  loop.start();
  try {
    await sleep(500);
    for (let i = 0; i < SWITCHES; i++) {
      const next: SlotName = current === 'a' ? 'b' : 'a';
      const seen = loop.next(next);
      const t0 = performance.now();
      await haproxy.setMap(mapFile, 'web', `web_${next}`);
      run.setMapReplyMs.push(performance.now() - t0);
      const first = await Promise.race([seen, sleep(5000).then(() => undefined)]);
      if (first === undefined) throw new Error(`switch ${i + 1} to slot ${next}: no answer from it within 5 s`);
      run.latenciesMs.push(first - t0);
      current = next;
      await sleep(150);
    }
  } finally {
    await loop.stop();
    if (wrk) run.background = await wrk.stop();
    // Back where it was, so the map file (rewritten by updateserver before) tells the truth again.
    if (current !== live) await haproxy.setMap(mapFile, 'web', `web_${live}`);
  }
  run.loopRequests = loop.requests;
  run.loopFailures = loop.failures;
  return run;
}

function stats(values: readonly number[]): { min: number; median: number; p95: number; max: number } {
  const s = [...values].sort((a, b) => a - b);
  const round = (x: number) => Math.round(x * 100) / 100;
  // Nearest rank: p95 of 20 samples is the 19th smallest.
  const rank = (q: number) => s[Math.min(s.length, Math.max(1, Math.ceil(q * s.length))) - 1]!;
  const mid = s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  return { min: round(s[0]!), median: round(mid), p95: round(rank(0.95)), max: round(s[s.length - 1]!) };
}

async function main(): Promise<void> {
  const p = await startPipeline({ net: 110 });
  try {
    for (const stage of ['dev', 'beta']) {
      const r = await updateserver(p.project.dir, stage);
      if (r.code !== 0) throw new Error(`updateserver ${stage} failed:\n${r.stderr}`);
    }
    const stage = await loadProfile(p.project, 'beta');
    const lb = stage.loadBalancers.lb!;
    const haproxy = Haproxy.forLoadBalancer(lb);
    const live = (await haproxy.showMap(lb.mapFile)).find((e) => e.key === 'web')?.value === 'web_a' ? 'a' : 'b';
    const idle: SlotName = live === 'a' ? 'b' : 'a';
    // The idle slot started on every beta host: the live release's directory, on the idle slot's port.
    for (const h of p.lab.hosts.filter((x) => x.name.startsWith('beta'))) {
      await startSampleApp(p.lab, h, { dir: `/srv/web/${live}/`, port: stage.services.web!.slots[idle].port, slot: idle, release: 'bench', logFile: `/srv/web/run/bench-${idle}.log` });
    }
    // Healthy in HAProxy's own eyes: its checks have marked every server of the idle backend UP.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const servers = (await haproxy.showStat()).filter((r) => r.proxy === `web_${idle}` && r.type === 'server');
      if (servers.length === 2 && servers.every((r) => r.status.startsWith('UP'))) break;
      if (Date.now() > deadline) throw new Error(`the idle slot's servers are not UP: ${JSON.stringify(servers.map((r) => [r.server, r.status]))}`);
      await sleep(100);
    }

    const runs = [await measure(p, haproxy, lb.mapFile, live, 'client loop alone', 0)];
    if (LOAD_CONNECTIONS > 0) runs.push(await measure(p, haproxy, lb.mapFile, live, `with wrk, ${LOAD_CONNECTIONS} connections`, LOAD_CONNECTIONS));

    const summaries = runs.map((r) => {
      const background = r.background;
      const wrkFailed = background ? background.requests - (background.byStatus['200'] ?? 0) + background.socketErrors : 0;
      return {
        condition: r.condition, switches: r.latenciesMs.length,
        latencyMs: stats(r.latenciesMs), setMapReplyMs: stats(r.setMapReplyMs),
        requests: r.loopRequests + (background?.requests ?? 0),
        failed: r.loopFailures.length + wrkFailed,
        withinTarget: r.latenciesMs.filter((x) => x <= TARGET_MS).length,
      };
    });
    const header = '| condition | switches | min | median | p95 | max | switches <= 5 ms | `set map` reply (median) | requests during the switches | failed |\n|---|---|---|---|---|---|---|---|---|---|';
    const rows = summaries.map((s) => `| ${s.condition} | ${s.switches} | ${s.latencyMs.min} ms | ${s.latencyMs.median} ms | ${s.latencyMs.p95} ms | ${s.latencyMs.max} ms | ${s.withinTarget}/${s.switches} | ${s.setMapReplyMs.median} ms | ${s.requests} | ${s.failed} |`);
    const table = [header, ...rows].join('\n');
    process.stdout.write(`\nSwitch latency through one HAProxy (${execFileSync('haproxy', ['-v']).toString().split('\n')[0]}), target <= ${TARGET_MS} ms:\n\n${table}\n`);
    const failures = runs.flatMap((r) => r.loopFailures);
    if (failures.length > 0) process.stdout.write(`client loop failures: ${JSON.stringify(failures.slice(0, 10))}\n`);
    await result.done({
      haproxy: execFileSync('haproxy', ['-v']).toString().split('\n')[0],
      targetMs: TARGET_MS, summaries,
      runs: runs.map((r) => ({ condition: r.condition, latenciesMs: r.latenciesMs.map((x) => Math.round(x * 1000) / 1000), setMapReplyMs: r.setMapReplyMs.map((x) => Math.round(x * 1000) / 1000), loopRequests: r.loopRequests, loopFailures: r.loopFailures, background: r.background })),
      table,
    });
  } finally {
    await p.stop();
  }
}

await main();
