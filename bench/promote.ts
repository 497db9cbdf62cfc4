/*
 * Promotion wall time and orchestrator peak memory on the lab, for 1, 2, 8 and 32 beta hosts, under
 * load through beta's HAProxy (failed requests counted).
 *
 *   npm run build && node dist/bench/promote.js            (HOSTS=1,2,8,32 RUNS=3 by default; root needed)
 *
 * Per host count: a lab with dev1 + N beta hosts; a first promotion of dev and beta (not measured),
 * then RUNS times: a new version in dev (`updateserver dev`), and `updateserver beta` measured from
 * spawning the command to its exit (health checks included, watch window 0). Peak memory is the
 * command's VmHWM from /proc, read every 10 ms while it runs. The tool's own overhead is the wall time
 * minus the time the pre-switch health checks spent waiting for the application to start.
 * Prints a markdown table and writes bench/results/promote.json.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { REPO, startPipeline } from '../test/lab/pipeline.js';
import { startLoad } from '../test/lab/load.js';
import { CLI, updateserver } from '../test/integration/cli.js';

interface Run { wallMs: number; peakMb: number; checkMs: number; ok: boolean }

function measured(project: string, ...args: string[]): Promise<Run> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args, '-C', project, '--json'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    let peakKb = 0;
    const poll = setInterval(() => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) peakKb = Math.max(peakKb, Number(m[1]));
      } catch { /* exited */ }
    }, 10);
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(poll);
      const wallMs = Date.now() - t0;
      let checkMs = 0;
      try {
        const r = JSON.parse(out) as { timings?: Array<{ phase: string; ms: number }> };
        checkMs = r.timings?.find((t) => t.phase === 'check')?.ms ?? 0;
      } catch { /* reported as not ok */ }
      resolve({ wallMs, peakMb: Math.round(peakKb / 102.4) / 10, checkMs, ok: code === 0 });
    });
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

async function main(): Promise<void> {
  const hostCounts = (process.env.HOSTS ?? '1,2,8,32').split(',').map(Number);
  const runs = Number(process.env.RUNS ?? 3);
  const rows: Array<Record<string, number | boolean>> = [];
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
        await new Promise((r) => setTimeout(r, 200));
        results.push(await measured(p.project.dir, 'beta'));
        await new Promise((r) => setTimeout(r, 200));
        const l = await load.stop();
        requests += l.requests;
        failed += l.non2xx + l.errors + l.timeouts;
      }
      const row = {
        hosts: n, runs, ok: results.every((r) => r.ok),
        wallMsMedian: median(results.map((r) => r.wallMs)), wallMsMax: Math.max(...results.map((r) => r.wallMs)),
        overheadMsMedian: median(results.map((r) => r.wallMs - r.checkMs)), peakMb: Math.max(...results.map((r) => r.peakMb)),
        requests, failed,
      };
      rows.push(row);
      process.stdout.write(`${JSON.stringify(row)}\n`);
    } finally {
      await p.stop();
    }
  }
  const table = ['| beta hosts | promotion wall time (median, max) | without health-check wait (median) | orchestrator peak memory | requests during runs | failed |', '|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.hosts} | ${r.wallMsMedian} ms, ${r.wallMsMax} ms | ${r.overheadMsMedian} ms | ${r.peakMb} MB | ${r.requests} | ${r.failed} |`)].join('\n');
  process.stdout.write(`\n${table}\n`);
  await mkdir(join(REPO, 'bench', 'results'), { recursive: true });
  await writeFile(join(REPO, 'bench', 'results', 'promote.json'), `${JSON.stringify({
    benchmark: 'promote', command: 'node dist/bench/promote.js', at: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version }, rows, table,
  }, null, 2)}\n`);
}

await main();
