/*
 * Where a promotion's time goes: per-phase timings (the run's own --json `timings`) of a beta promotion
 * on a lab of HOSTS beta hosts, RUNS times, without load. For finding what to make faster.
 *
 *   npm run build && node dist/bench/phases.js          (HOSTS=2 RUNS=3 by default; root needed)
 */
import { spawn } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startPipeline } from '../test/lab/pipeline.js';
import { CLI, updateserver } from '../test/integration/cli.js';

function timed(project: string, ...args: string[]): Promise<{ wallMs: number; out: string; code: number | null }> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args, '-C', project, '--json', ...(process.env.VERBOSE ? ['--verbose'] : [])], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ wallMs: Date.now() - t0, out, code }));
  });
}

const hosts = Number(process.env.HOSTS ?? 2);
const runs = Number(process.env.RUNS ?? 3);
const p = await startPipeline({ net: 90, betaHosts: hosts });
try {
  for (const stage of ['dev', 'beta']) {
    const r = await updateserver(p.project.dir, stage);
    if (r.code !== 0) throw new Error(`setup ${stage} failed:\n${r.stderr}`);
  }
  for (let k = 0; k < runs; k++) {
    await writeFile(join(p.appDir, 'VERSION'), `3.${k}.0\n`);
    const dev = await updateserver(p.project.dir, 'dev');
    if (dev.code !== 0) throw new Error(`dev failed:\n${dev.stderr}`);
    const r = await timed(p.project.dir, 'beta');
    const j = JSON.parse(r.out) as { timings?: Array<{ phase: string; ms: number }> ; durationMs?: number };
    if (process.env.STEPS) {
      const dir = join(p.project.stateDir, 'journal');
      const last = (await readdir(dir)).filter((f) => f.startsWith('beta.') && f.endsWith('.done.jsonl')).sort().at(-1)!;
      const lines = (await readFile(join(dir, last), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { type: string; at: string; phase?: string; target?: string; title?: string; state?: string });
      const t0 = Date.parse(lines[0]!.at);
      for (const l of lines) process.stdout.write(`  +${Date.parse(l.at) - t0} ${l.type} ${l.phase ?? ''} ${l.target ?? ''} ${l.state ?? ''} ${(l.title ?? '').slice(0, 70)}\n`);
    }
    process.stdout.write(`run ${k + 1}: exit ${r.code}, wall ${r.wallMs} ms, in-process ${j.durationMs} ms; ${(j.timings ?? []).map((t) => `${t.phase} ${t.ms}`).join(', ')}\n`);
  }
} finally {
  await p.stop();
}
