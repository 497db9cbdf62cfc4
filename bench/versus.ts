/*
 * updateserver against a bare shell script (bench/baseline/promote.sh), side by side in the same run,
 * on clean and on "field" lab hosts (issue 17: a login shell costing SHELL_MS, RTT_MS away).
 *
 *   npm run build && node dist/bench/versus.js     (HOSTS=2,8,32 MODES=clean,field RUNS=3 SHELL_MS=300 RTT_MS=20)
 *
 * Per host count and mode, two pipelines of the same shape on lab nets 200, 201, ... : one promoted by
 * `updateserver beta`, the other by the script. Both are set up by updateserver (dev and beta, not
 * measured); then RUNS times, alternately: a new version through dev and `updateserver beta --json`
 * measured from spawn to exit, and the script promoting the same app (from the project's app dir) into
 * its idle slot, measured the same way. Each under load through its beta HAProxy (4 keep-alive
 * connections, test/lab/load.ts), failed requests counted. The ratio is updateserver's median wall
 * time over the script's. Writes bench/results/versus.json.
 */
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO, startPipeline, type Pipeline } from '../test/lab/pipeline.js';
import { startLoad } from '../test/lab/load.js';
import { updateserver } from '../test/integration/cli.js';
import { measuredCli } from './measure.js';
import { Knobs, median, sleep, startResult } from './result.js';

const knobs = new Knobs();
const hostCounts = knobs.numbers('HOSTS', '2,8,32');
const modes = knobs.text('MODES', 'clean,field').split(',').map((m) => m.trim()) as Array<'clean' | 'field'>;
const runs = knobs.number('RUNS', 3);
const shellMs = knobs.number('SHELL_MS', 300);
const rttMs = knobs.number('RTT_MS', 20);
const firstNet = knobs.number('NET', 200);
const result = startResult('versus', knobs);

export const BASELINE = join(REPO, 'bench', 'baseline', 'promote.sh');

interface Timed { wallMs: number; ok: boolean; failed: number; requests: number; stderr: string }

/** Runs the script's promotion of p's beta stage; resolves with its wall time. */
function script(p: Pipeline, release: string): Promise<{ code: number | null; wallMs: number; stderr: string }> {
  const beta = p.lab.hosts.filter((h) => p.betaHosts.includes(h.name));
  const env = {
    ...process.env, SSH_KEY: p.lab.keyFile, KNOWN_HOSTS: p.lab.knownHosts, SOCKET: p.lbs.beta.socket, MAP_FILE: p.lbs.beta.mapFile,
    HOST_NAMES: beta.map((h) => h.name).join(' '), SSH_PORT: String(beta[0]!.port),
  };
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [BASELINE, p.appDir, release, ...beta.map((h) => h.address)], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, wallMs: Date.now() - started, stderr }));
  });
}

async function underLoad(p: Pipeline, run: () => Promise<{ code: number | null; wallMs: number; stderr: string }>): Promise<Timed> {
  const load = startLoad(`${p.url.beta}/`, { connections: 4 });
  await sleep(200);
  const r = await run();
  await sleep(200);
  const l = await load.stop();
  return { wallMs: r.wallMs, ok: r.code === 0, failed: l.non2xx + l.errors + l.timeouts, requests: l.requests, stderr: r.code === 0 ? '' : r.stderr.slice(-3000) };
}

const rows: Array<Record<string, unknown>> = [];
let net = firstNet;
for (const n of hostCounts) {
  for (const mode of modes) {
    const field = mode === 'field' ? { shellMs, rttMs } : undefined;
    const ours = await startPipeline({ net: net++, betaHosts: n, ...(field ? { field } : {}) });
    const theirs = await startPipeline({ net: net++, betaHosts: n, ...(field ? { field } : {}) }).catch(async (err: unknown) => { await ours.stop(); throw err; });
    try {
      for (const p of [ours, theirs]) {
        for (const stage of ['dev', 'beta']) {
          const r = await updateserver(p.project.dir, stage);
          if (r.code !== 0) throw new Error(`setup ${stage} failed:\n${r.stderr}`);
        }
      }
      const us: Timed[] = [];
      const sh: Timed[] = [];
      for (let k = 0; k < runs; k++) {
        await writeFile(join(ours.appDir, 'VERSION'), `7.${k}.${n}\n`);
        const dev = await updateserver(ours.project.dir, 'dev');
        if (dev.code !== 0) throw new Error(`dev failed:\n${dev.stderr}`);
        us.push(await underLoad(ours, async () => {
          const r = await measuredCli(ours.project.dir, ['beta', '--json']);
          return { code: r.code, wallMs: r.wallMs, stderr: r.stderr };
        }));
        await writeFile(join(theirs.appDir, 'VERSION'), `7.${k}.${n}\n`);
        sh.push(await underLoad(theirs, () => script(theirs, `script-${k}`)));
        for (const [who, t] of [['updateserver', us.at(-1)!], ['script', sh.at(-1)!]] as const) {
          process.stderr.write(`versus ${mode} ${n} hosts run ${k + 1}: ${who} ${t.wallMs} ms${t.ok ? '' : ` FAILED\n${t.stderr}`}, ${t.failed} failed of ${t.requests}\n`);
        }
      }
      const usMs = median(us.map((t) => (t.ok ? t.wallMs : NaN)));
      const shMs = median(sh.map((t) => (t.ok ? t.wallMs : NaN)));
      const row = {
        hosts: n, mode, runs, ...(field ? { shellMs, rttMs } : {}),
        ok: us.every((t) => t.ok) && sh.every((t) => t.ok),
        updateserverMsMedian: usMs, scriptMsMedian: shMs, ratio: Math.round((usMs / shMs) * 100) / 100,
        failed: { updateserver: us.reduce((a, t) => a + t.failed, 0), script: sh.reduce((a, t) => a + t.failed, 0) },
        requests: { updateserver: us.reduce((a, t) => a + t.requests, 0), script: sh.reduce((a, t) => a + t.requests, 0) },
        runsDetail: { updateserver: us.map((t) => t.wallMs), script: sh.map((t) => t.wallMs) },
      };
      rows.push(row);
      process.stdout.write(`${JSON.stringify(row)}\n`);
    } finally {
      await Promise.all([ours.stop(), theirs.stop()]);
    }
  }
}
const table = [
  '| beta hosts | hosts | updateserver (median) | shell script (median) | ratio | failed requests (updateserver / script) |',
  '|---|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.hosts} | ${r.mode === 'field' ? `field (${shellMs} ms shell, ${rttMs} ms rtt)` : 'clean'} | ${r.updateserverMsMedian} ms | ${r.scriptMsMedian} ms | ${r.ratio}x | ${(r.failed as { updateserver: number }).updateserver} / ${(r.failed as { script: number }).script} |`),
].join('\n');
process.stdout.write(`\n${table}\n`);
process.stdout.write(`wrote ${await result.done({ rows, table })}\n`);
