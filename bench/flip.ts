/*
 * Failed requests during a manual flip and a manual rollback, under load through beta's HAProxy.
 *
 *   npm run build && node dist/bench/flip.js            (RUNS=3 HOSTS=2 by default; root needed)
 *
 * On a lab with dev1 + HOSTS beta hosts (net 153): a first promotion of dev and beta. Then RUNS times:
 *   - a new version through dev and beta (not measured): both slots now hold a good release;
 *   - `updateserver flip beta` measured, then `updateserver flip beta` again (back): each flip starts
 *     the other slot where it is stopped, checks it, switches, drains and stops the old one;
 *   - a new version through dev and beta (not measured), then `updateserver rollback beta` measured:
 *     back to the slot live before that promotion (the release left is marked bad, so the next run's
 *     promotion replaces it).
 * Each measured command runs while a load generator (4 keep-alive connections, in this process) sends
 * GET / through beta's HAProxy from 200 ms before it until 200 ms after it; every request is counted,
 * and a failure is any answer other than 2xx, a connection error or a timeout.
 * Prints a markdown table and writes bench/results/flip.json. Target: 0 failed requests.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startPipeline, type Pipeline } from '../test/lab/pipeline.js';
import { startLoad } from '../test/lab/load.js';
import { updateserver } from '../test/integration/cli.js';
import { mb, measuredCli } from './measure.js';
import { Knobs, median, sleep, startResult } from './result.js';

const knobs = new Knobs();
const runs = knobs.number('RUNS', 3);
const hosts = knobs.number('HOSTS', 2);
const result = startResult('flip', knobs);

interface Op { command: 'flip' | 'rollback'; code: number | null; wallMs: number; peakMb: number; requests: number; failed: number; releasesServed: number }

async function promoteNew(p: Pipeline, version: string): Promise<void> {
  await writeFile(join(p.appDir, 'VERSION'), `${version}\n`);
  for (const stage of ['dev', 'beta']) {
    const r = await updateserver(p.project.dir, stage);
    if (r.code !== 0) throw new Error(`updateserver ${stage} (${version}) failed: exit ${r.code}\n${r.stderr}`);
  }
}

async function underLoad(p: Pipeline, command: 'flip' | 'rollback'): Promise<Op> {
  const load = startLoad(`${p.url.beta}/`, { connections: 4 });
  await sleep(200);
  const r = await measuredCli(p.project.dir, [command, 'beta']);
  await sleep(200);
  const l = await load.stop();
  if (r.code !== 0) process.stderr.write(`${command} beta: exit ${r.code}\n${r.stderr.slice(-3000)}\n`);
  const op = { command, code: r.code, wallMs: r.wallMs, peakMb: mb(r.peakKb), requests: l.requests, failed: l.non2xx + l.errors + l.timeouts, releasesServed: Object.keys(l.byRelease).length };
  process.stderr.write(`${JSON.stringify(op)}\n`);
  return op;
}

const ops: Op[] = [];
const p = await startPipeline({ net: 153, betaHosts: hosts });
try {
  await promoteNew(p, '1.0.0');
  for (let k = 0; k < runs; k++) {
    await promoteNew(p, `6.${k}.0`);
    ops.push(await underLoad(p, 'flip'));
    ops.push(await underLoad(p, 'flip'));
    await promoteNew(p, `6.${k}.1`);
    ops.push(await underLoad(p, 'rollback'));
  }
} finally {
  await p.stop();
}
const summary = (['flip', 'rollback'] as const).map((command) => {
  const xs = ops.filter((o) => o.command === command);
  return {
    command, count: xs.length, ok: xs.every((o) => o.code === 0),
    requests: xs.reduce((n, o) => n + o.requests, 0), failed: xs.reduce((n, o) => n + o.failed, 0),
    // Traffic moved in each: the load saw both releases answer.
    switchedEveryTime: xs.every((o) => o.releasesServed >= 2),
    wallMsMedian: median(xs.map((o) => o.wallMs)), peakMb: Math.max(...xs.map((o) => o.peakMb)),
  };
});
const table = [
  `| command (beta, ${hosts} hosts) | runs | exit 0 every time | traffic moved every time | wall (median) | requests during the runs | failed |`,
  '|---|---|---|---|---|---|---|',
  ...summary.map((s) => `| updateserver ${s.command} | ${s.count} | ${s.ok ? 'yes' : 'NO'} | ${s.switchedEveryTime ? 'yes' : 'NO'} | ${s.wallMsMedian} ms | ${s.requests} | ${s.failed} |`),
].join('\n');
process.stdout.write(`\n${table}\n`);
process.stdout.write(`wrote ${await result.done({ hosts, summary, ops, table })}\n`);
