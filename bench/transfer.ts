/*
 * Code transfer on the lab: a release of 2,000 files (1-4 KB each, varied content), promoted dev -> beta
 * on 1 and 8 beta hosts.
 *
 *   npm run build && node dist/bench/transfer.js            (HOSTS=1,8 RUNS=3 FILES=2000 by default; root needed)
 *
 * Per host count: a lab with dev1 + N beta hosts; `updateserver dev`, then the first `updateserver beta`
 * (every byte travels) is measured; then RUNS times: 1% of the files get new content, `updateserver dev`,
 * and `updateserver beta` measured again. Bytes are rsync's own statistics ("Total bytes sent", the
 * `transfers` of `--json`) per beta host; disk per extra release is `du -sk` over the first two releases
 * minus `du -sk` of the first on beta1 (hard links count once). Wall time is from spawning the command
 * to its exit; the copy phase is the apply's own timing. Prints a markdown table and writes
 * bench/results/transfer.json.
 */
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { appDataFile, appDataPath, startPipeline, type Pipeline } from '../test/lab/pipeline.js';
import { updateserver } from '../test/integration/cli.js';
import { Knobs, startResult } from './result.js';

interface Promotion { release: string; wallMs: number; copyMs: number; bytes: Record<string, number> }

async function promote(p: Pipeline, stage: 'dev' | 'beta'): Promise<Promotion> {
  const r = await updateserver(p.project.dir, stage, '--json');
  if (r.code !== 0) throw new Error(`updateserver ${stage} failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  const json = JSON.parse(r.stdout) as { plan: { services: Array<{ release: string }> }; timings?: Array<{ phase: string; ms: number }>; transfers: Array<{ host: string; bytesSent: number }> };
  return {
    release: json.plan.services[0]!.release, wallMs: r.ms, copyMs: json.timings?.find((t) => t.phase === 'copy')?.ms ?? 0,
    bytes: Object.fromEntries(json.transfers.map((t) => [t.host, t.bytesSent])),
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const du = (...dirs: string[]) => Number(execFileSync('du', ['-sk', '-c', ...dirs]).toString().trim().split('\n').pop()!.split('\t')[0]);

async function main(): Promise<void> {
  const knobs = new Knobs();
  const hostCounts = knobs.numbers('HOSTS', '1,8');
  const runs = knobs.number('RUNS', 3);
  const files = knobs.number('FILES', 2000);
  if (files < 100 || files % 100 !== 0) throw new Error(`env FILES=${files}: a multiple of 100 (1% of the files change)`);
  const result = startResult('transfer', knobs);
  const rows: Array<Record<string, number>> = [];
  for (const [i, n] of hostCounts.entries()) {
    const p = await startPipeline({ net: 76 + i, betaHosts: n, appDataFiles: files });
    try {
      await promote(p, 'dev');
      const first = await promote(p, 'beta');
      const deltas: Promotion[] = [];
      for (let k = 0; k < runs; k++) {
        // 1% of the files, a different set each run, get new content.
        for (let j = 0; j < files / 100; j++) {
          const f = j * 100 + 11 + k;
          await writeFile(join(p.appDir, appDataPath(f)), appDataFile(f, k + 1));
        }
        await promote(p, 'dev');
        deltas.push(await promote(p, 'beta'));
      }
      const perHost = (x: Promotion) => median(p.betaHosts.map((h) => x.bytes[h] ?? NaN));
      const beta1 = p.lab.hosts.find((h) => h.name === 'beta1')!;
      const rel = (r: string) => join(beta1.srv, 'web', 'releases', r);
      const one = du(rel(first.release));
      const extra = du(rel(first.release), rel(deltas[0]!.release)) - one;
      const row = {
        hosts: n, files, runs,
        firstBytesPerHost: perHost(first), firstBytesAllHosts: Object.values(first.bytes).reduce((a, b) => a + b, 0),
        deltaBytesPerHost: median(deltas.map(perHost)),
        ratioPct: Math.round(10000 * median(deltas.map(perHost)) / perHost(first)) / 100,
        releaseKb: one, extraReleaseKb: extra, extraReleasePct: Math.round(10000 * extra / one) / 100,
        firstWallMs: first.wallMs, firstCopyMs: first.copyMs,
        deltaWallMsMedian: median(deltas.map((d) => d.wallMs)), deltaWallMsMax: Math.max(...deltas.map((d) => d.wallMs)), deltaCopyMsMedian: median(deltas.map((d) => d.copyMs)),
      };
      rows.push(row);
      process.stdout.write(`${JSON.stringify(row)}\n`);
    } finally {
      await p.stop();
    }
  }
  const kb = (n: number) => `${(n / 1024).toFixed(0)} KB`;
  const table = [
    '| beta hosts | files | first transfer, per host | after a 1% change, per host (median) | ratio | disk: one release / each extra release | first promotion: wall (copy phase) | 1% promotion: wall median, max (copy phase) |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.hosts} | ${r.files} | ${r.firstBytesPerHost} B (${kb(r.firstBytesPerHost!)}) | ${r.deltaBytesPerHost} B (${kb(r.deltaBytesPerHost!)}) | ${r.ratioPct}% | ${r.releaseKb} KB / +${r.extraReleaseKb} KB (${r.extraReleasePct}%) | ${r.firstWallMs} ms (${r.firstCopyMs} ms) | ${r.deltaWallMsMedian} ms, ${r.deltaWallMsMax} ms (${r.deltaCopyMsMedian} ms) |`),
  ].join('\n');
  const lo = rows.find((r) => r.hosts === 1);
  const hi = rows.find((r) => r.hosts === Math.max(...hostCounts));
  const scaling = lo && hi && hi !== lo
    ? `${hi.hosts} hosts vs 1: first promotion ${(hi.firstWallMs! / lo.firstWallMs!).toFixed(2)}x the wall time (copy phase ${(hi.firstCopyMs! / lo.firstCopyMs!).toFixed(2)}x), 1% promotion ${(hi.deltaWallMsMedian! / lo.deltaWallMsMedian!).toFixed(2)}x (copy phase ${(hi.deltaCopyMsMedian! / lo.deltaCopyMsMedian!).toFixed(2)}x)`
    : '';
  process.stdout.write(`\n${table}\n${scaling ? `\n${scaling}\n` : ''}`);
  process.stdout.write(`wrote ${await result.done({ rows, table, scaling })}\n`);
}

await main();
