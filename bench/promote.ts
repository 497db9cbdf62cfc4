/*
 * Promotion wall time and orchestrator peak memory on the lab, for 1, 2, 8 and 32 beta hosts, under
 * load through beta's HAProxy (failed requests counted).
 *
 *   npm run build && node dist/bench/promote.js            (HOSTS=1,2,8,32 RUNS=3 by default; root needed)
 *
 * Per host count: a lab with dev1 + N beta hosts on net 100, 101, ...; a first promotion of dev and beta
 * (not measured), then RUNS times: a new version in dev (`updateserver dev`), and `updateserver beta
 * --json` measured from spawning the command to its exit (health checks included, watch window 0),
 * while a load generator (4 keep-alive connections, in this process) sends GET / through beta's
 * HAProxy. Peak memory is the command's VmHWM (bench/measure.ts).
 * The tool's own overhead is the wall time minus the time the run waited for the application: per
 * host from spawning the new slot's process to its checks passing, plus the post-switch checks, as a
 * union over hosts (bench/timeline.ts, from the run's journal).
 * Prints a markdown table and writes bench/results/promote.json.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startPipeline } from '../test/lab/pipeline.js';
import { startLoad } from '../test/lab/load.js';
import { updateserver } from '../test/integration/cli.js';
import { mb, measuredCli } from './measure.js';
import { Knobs, median, sleep, startResult } from './result.js';
import { applicationWaiting, lastJournal } from './timeline.js';

interface Run { wallMs: number; peakKb: number; checkPhaseMs: number; waitingMs: number; overheadMs: number; appStartMsMax: number; ok: boolean }

const knobs = new Knobs();
const hostCounts = knobs.numbers('HOSTS', '1,2,8,32');
const runs = knobs.number('RUNS', 3);
const result = startResult('promote', knobs);

const rows: Array<Record<string, unknown>> = [];
for (const [i, n] of hostCounts.entries()) {
  const p = await startPipeline({ net: 100 + i, betaHosts: n });
  try {
    for (const stage of ['dev', 'beta']) {
      const r = await updateserver(p.project.dir, stage);
      if (r.code !== 0) throw new Error(`setup ${stage} failed:\n${r.stderr}`);
    }
    const results: Run[] = [];
    let requests = 0;
    let failed = 0;
    for (let k = 0; k < runs; k++) {
      await writeFile(join(p.appDir, 'VERSION'), `2.${k}.${n}\n`);
      const dev = await updateserver(p.project.dir, 'dev');
      if (dev.code !== 0) throw new Error(`dev failed:\n${dev.stderr}`);
      const load = startLoad(`${p.url.beta}/`, { connections: 4 });
      await sleep(200);
      const r = await measuredCli(p.project.dir, ['beta', '--json']);
      await sleep(200);
      const l = await load.stop();
      requests += l.requests;
      failed += l.non2xx + l.errors + l.timeouts;
      if (r.code !== 0) process.stderr.write(`promote ${n} hosts run ${k + 1}: exit ${r.code}\n${r.stderr.slice(-3000)}\n`);
      let checkPhaseMs = 0;
      try {
        checkPhaseMs = (JSON.parse(r.stdout) as { timings?: Array<{ phase: string; ms: number }> }).timings?.find((t) => t.phase === 'check')?.ms ?? 0;
      } catch { /* not ok: reported by `ok` */ }
      const waiting = r.code === 0 ? applicationWaiting(await lastJournal(p.project.stateDir, 'beta')) : { waitingMs: NaN, appStartMs: {} };
      results.push({
        wallMs: r.wallMs, peakKb: r.peakKb, checkPhaseMs, waitingMs: waiting.waitingMs, overheadMs: r.wallMs - waiting.waitingMs,
        appStartMsMax: Math.max(0, ...Object.values(waiting.appStartMs)), ok: r.code === 0,
      });
    }
    const row = {
      hosts: n, runs, ok: results.every((r) => r.ok),
      wallMsMedian: median(results.map((r) => r.wallMs)), wallMsMax: Math.max(...results.map((r) => r.wallMs)),
      overheadMsMedian: median(results.map((r) => r.overheadMs)), waitingMsMedian: median(results.map((r) => r.waitingMs)),
      appStartMsMedian: median(results.map((r) => r.appStartMsMax)), checkPhaseMsMedian: median(results.map((r) => r.checkPhaseMs)),
      peakMb: mb(Math.max(...results.map((r) => r.peakKb))), requests, failed, runsDetail: results,
    };
    rows.push(row);
    process.stdout.write(`${JSON.stringify({ ...row, runsDetail: undefined })}\n`);
  } finally {
    await p.stop();
  }
}
const table = [
  '| beta hosts | promotion wall time (median, max) | tool overhead (median) | waiting for the app (median) | orchestrator peak memory | requests during runs | failed |',
  '|---|---|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.hosts} | ${r.wallMsMedian} ms, ${r.wallMsMax} ms | ${r.overheadMsMedian} ms | ${r.waitingMsMedian} ms | ${r.peakMb} MB | ${r.requests} | ${r.failed} |`),
].join('\n');
process.stdout.write(`\n${table}\n`);
process.stdout.write(`wrote ${await result.done({ rows, table })}\n`);
