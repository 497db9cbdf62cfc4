/*
 * Automatic rollback, measured on the lab under load: how long after the failing watch check is
 * beta's traffic back on the old slot?
 *
 *   npm run build && node dist/bench/rollback.js          (RUNS=5 by default; root needed, like the lab)
 *
 * Each run makes a new release in dev, promotes it into beta with a watch window (6000 ms, a check
 * through HAProxy every 100 ms) while a load generator and a poller send requests through beta's
 * HAProxy. One second after the poller sees the new slot answer (the post checks have passed, the
 * watch is on), `health-status` (500) is written into the new release's directory on every beta host,
 * so /health of the new slot starts failing; the watch check fails and updateserver switches back.
 * Measured per run:
 *   - check -> old slot: from the time updateserver logs the failing watch check (its console
 *     timestamp) to the first answer of the old slot seen by the poller after the switch;
 *   - updateserver's own "automatic rollback done in N ms" (the switch back and the map rewrite);
 *   - knob -> check: from writing the knob files to the failing check (detection latency);
 *   - requests of the load generator, failures, and answers from the new release.
 * Prints a markdown table and writes bench/results/rollback.json. Target: check -> old slot <= 500 ms.
 *
 * The helpers are exported for test/integration/healthchecks.test.ts, which asserts the same thing once.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { request, Agent } from 'node:http';
import { startPipeline, type Pipeline } from '../test/lab/pipeline.js';
import { startLoad, type LoadResult } from '../test/lab/load.js';
import { updateserver, type CliResult } from '../test/integration/cli.js';
import { Knobs, startResult } from './result.js';

/** healthchecks/web.yaml for a watched promotion: the new slot is checked through HAProxy every 100 ms for 6 s. */
export const WATCH_CHECKS = `pre:
  - name: health
    http: { path: /health }
    deadlineMs: 8000
post:
  - name: via-lb
    http: { path: /health, expectHeaders: { X-Slot: "{slot}" } }
    deadlineMs: 2000
watch:
  windowMs: 6000
  intervalMs: 100
  checks:
    - name: live-health
      http: { path: /health, expectHeaders: { X-Slot: "{slot}" } }
`;

export interface Sample { sent: number; received: number; status: number; slot: string; release: string }

/**
 * Sends GET / through the load balancer one request after another (one keep-alive connection, a
 * pause of `pauseMs` between requests) and records which slot answered when.
 */
export function pollSlots(url: string, pauseMs = 5): { samples: Sample[]; stop(): Promise<Sample[]>; waitFor(pred: (s: Sample) => boolean, timeoutMs: number): Promise<Sample | undefined> } {
  const samples: Sample[] = [];
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const target = new URL('/', url);
  let running = true;
  const once = () => new Promise<Sample>((resolve) => {
    const sent = Date.now();
    const req = request(target, { agent, timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({
        sent, received: Date.now(), status: res.statusCode ?? 0,
        slot: String(res.headers['x-slot'] ?? ''), release: String(res.headers['x-release'] ?? ''),
      }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ sent, received: Date.now(), status: 0, slot: '', release: '' }));
    req.end();
  });
  const loop = (async () => {
    while (running) {
      samples.push(await once());
      await new Promise((r) => setTimeout(r, pauseMs));
    }
  })();
  return {
    samples,
    async stop() {
      running = false;
      await loop;
      agent.destroy();
      return samples;
    },
    async waitFor(pred, timeoutMs) {
      const end = Date.now() + timeoutMs;
      for (let seen = 0; Date.now() < end; await new Promise((r) => setTimeout(r, 2))) {
        for (; seen < samples.length; seen++) if (pred(samples[seen]!)) return samples[seen];
      }
      return undefined;
    },
  };
}

/**
 * The time of the first console line of the CLI that matches `pattern`, as epoch milliseconds. The
 * console shows UTC `HH:MM:SS.mmm`; the day is the one that puts it closest to `near`.
 */
export function loggedAt(stderr: string, pattern: RegExp, near: number): number | undefined {
  const line = stderr.split('\n').find((l) => pattern.test(l));
  const m = line?.match(/^(\d\d):(\d\d):(\d\d)\.(\d\d\d) /);
  if (!m) return undefined;
  const day = new Date(near);
  const base = Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), day.getUTCDate(), Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4]));
  return [base - 86_400_000, base, base + 86_400_000].reduce((best, t) => (Math.abs(t - near) < Math.abs(best - near) ? t : best));
}

export const WATCH_FAILED = /error .*watch check \S+ on .* FAILED/;

export interface RollbackRun {
  version: string;
  newRelease: string;
  oldSlot: string;
  newSlot: string;
  cli: CliResult;
  load: LoadResult;
  samples: Sample[];
  /** epoch ms: poller first saw the new slot, knob files written, failing watch check logged, first old-slot answer after it */
  at: { switchSeen: number; knobWritten: number; checkFailed: number | undefined; oldSlotBack: number | undefined };
  /** first old-slot answer after the failing check, minus the failing check's log time */
  checkToOldSlotMs: number | undefined;
  knobToCheckMs: number | undefined;
  /** updateserver's own figure: "automatic rollback done in N ms" */
  cliRollbackMs: number | undefined;
  /** answers from the new slot seen by the poller after the first old-slot answer (must be 0) */
  newSlotAfterBack: number;
}

/** Writes a knob file of the sample app into a release directory on every beta host. */
export async function writeKnob(p: Pipeline, release: string, knob: string, value: string): Promise<void> {
  for (const name of p.betaHosts) {
    const host = p.lab.hosts.find((h) => h.name === name);
    if (!host) throw new Error(`no lab host ${name}`);
    await writeFile(join(host.srv, 'web', 'releases', release, knob), `${value}\n`);
  }
}

/**
 * One measured rollback: a new release `version` goes into dev, then into beta (whose checks must be
 * WATCH_CHECKS or similar, with a watch window) under load; `knobDelayMs` (default 1000) after traffic
 * is on the new slot, so once the post checks have passed and the watch has begun, its /health starts
 * answering 500.
 */
export async function measureRollback(p: Pipeline, version: string, opts: { connections?: number; knobDelayMs?: number } = {}): Promise<RollbackRun> {
  await writeFile(join(p.appDir, 'VERSION'), `${version}\n`);
  const dev = await updateserver(p.project.dir, 'dev');
  if (dev.code !== 0) throw new Error(`updateserver dev failed: exit ${dev.code}\n${dev.stderr}`);

  const load = startLoad(p.url.beta, { connections: opts.connections ?? 4 });
  const poller = pollSlots(p.url.beta);
  try {
    await new Promise((r) => setTimeout(r, 300));
    const old = poller.samples.find((s) => s.status === 200);
    if (!old) throw new Error('beta does not answer before the run');
    const started = Date.now();
    let cliDone = false;
    const cliRun = updateserver(p.project.dir, 'beta', '--json').finally(() => { cliDone = true; });
    let first: Sample | undefined;
    while (!first && !cliDone) first = await poller.waitFor((s) => s.sent >= started && s.status === 200 && s.slot !== old.slot, 200);
    if (!first) {
      const r = await cliRun;
      throw new Error(`the new slot never took traffic: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    }
    const switchSeen = first.received;
    await new Promise((r) => setTimeout(r, opts.knobDelayMs ?? 1000));
    await writeKnob(p, first.release, 'health-status', '500');
    const knobWritten = Date.now();
    const cli = await cliRun;
    await new Promise((r) => setTimeout(r, 300));
    const samples = await poller.stop();
    const result = await load.stop();

    const checkFailed = loggedAt(cli.stderr, WATCH_FAILED, knobWritten);
    const afterSwitch = samples.filter((s) => s.sent >= first.sent);
    const backIndex = afterSwitch.findIndex((s) => s.status === 200 && s.slot === old.slot);
    const back = afterSwitch[backIndex];
    const rolledBack = cli.stderr.match(/automatic rollback \S+ in (\d+) ms/);
    return {
      version, newRelease: first.release, oldSlot: old.slot, newSlot: first.slot, cli, load: result, samples,
      at: { switchSeen, knobWritten, checkFailed, oldSlotBack: back?.received },
      checkToOldSlotMs: checkFailed !== undefined && back ? back.received - checkFailed : undefined,
      knobToCheckMs: checkFailed !== undefined ? checkFailed - knobWritten : undefined,
      cliRollbackMs: rolledBack ? Number(rolledBack[1]) : undefined,
      newSlotAfterBack: backIndex < 0 ? 0 : afterSwitch.slice(backIndex).filter((s) => s.slot === first.slot).length,
    };
  } finally {
    await poller.stop();
    await load.stop();
  }
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0], median: s[Math.floor((s.length - 1) / 2)], max: s[s.length - 1] };
};

async function main(): Promise<void> {
  const knobs = new Knobs();
  const runs = knobs.number('RUNS', 5);
  const result = startResult('rollback', knobs);
  const targetMs = 500;
  const p = await startPipeline({
    net: 89, devHealthPath: '/', betaServiceExtra: '    checks: web', projectFiles: { 'healthchecks/web.yaml': WATCH_CHECKS },
  });
  const rows: Array<Record<string, unknown>> = [];
  try {
    for (const stage of ['dev', 'beta']) {
      const r = await updateserver(p.project.dir, stage);
      if (r.code !== 0) throw new Error(`updateserver ${stage} failed: exit ${r.code}\n${r.stderr}`);
    }
    for (let i = 1; i <= runs; i++) {
      const run = await measureRollback(p, `2.0.${i}`);
      const row = {
        run: i, release: run.newRelease, slots: `${run.oldSlot} -> ${run.newSlot} -> ${run.oldSlot}`, exit: run.cli.code,
        checkToOldSlotMs: run.checkToOldSlotMs, cliRollbackMs: run.cliRollbackMs, knobToCheckMs: run.knobToCheckMs,
        switchToKnobMs: run.at.knobWritten - run.at.switchSeen, newSlotAnswersAfterBack: run.newSlotAfterBack,
        pollerSamples: run.samples.length,
        load: { requests: run.load.requests, ok: run.load.ok, non2xx: run.load.non2xx, errors: run.load.errors, timeouts: run.load.timeouts, byRelease: run.load.byRelease },
      };
      rows.push(row);
      process.stderr.write(`run ${i}: ${JSON.stringify(row)}\n`);
      if (run.cli.code !== 1 || run.checkToOldSlotMs === undefined) {
        process.stderr.write(`run ${i}: unexpected outcome\n${run.cli.stdout}\n${run.cli.stderr}\n`);
      }
    }
  } finally {
    await p.stop();
  }
  const measured = rows.map((r) => r.checkToOldSlotMs).filter((x): x is number => typeof x === 'number');
  const cli = rows.map((r) => r.cliRollbackMs).filter((x): x is number => typeof x === 'number');
  const failed = rows.reduce((n, r) => { const l = r.load as LoadResult; return n + l.non2xx + l.errors + l.timeouts; }, 0);
  const summary = {
    runs: rows.length, checkToOldSlotMs: stats(measured), cliRollbackMs: stats(cli), failedRequests: failed,
    requests: rows.reduce((n, r) => n + (r.load as LoadResult).requests, 0),
    targetMs, met: measured.length === rows.length && measured.every((x) => x <= targetMs) && failed === 0,
  };
  const lines = [
    `Automatic rollback under load (${rows.length} runs; watch every 100 ms through HAProxy; load: 4 connections + 1 poller on GET /)`,
    '',
    '| run | slots | exit | failing check -> old slot answers (ms) | updateserver "rollback done in" (ms) | knob -> failing check (ms) | requests | failed | new release answered |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => {
      const l = r.load as LoadResult;
      const answeredByNew = l.byRelease[String(r.release)] ?? 0;
      return `| ${String(r.run)} | ${String(r.slots)} | ${String(r.exit)} | ${String(r.checkToOldSlotMs ?? 'n/a')} | ${String(r.cliRollbackMs ?? 'n/a')} | ${String(r.knobToCheckMs ?? 'n/a')} | ${l.requests} | ${l.non2xx + l.errors + l.timeouts} | ${answeredByNew} |`;
    }),
    '',
    `failing check -> old slot: min ${summary.checkToOldSlotMs.min} ms, median ${summary.checkToOldSlotMs.median} ms, max ${summary.checkToOldSlotMs.max} ms (target <= ${targetMs} ms: ${summary.met ? 'met' : 'NOT met'}); ${summary.requests} requests, ${failed} failed`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  const out = await result.done({ summary, runs: rows, table: lines.join('\n') });
  process.stdout.write(`wrote ${out}\n`);
  if (!summary.met) process.exitCode = 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
