/*
 * Switch latency: from sending the runtime `set map` to the first request answered by the new slot,
 * through beta's HAProxy, with both slots running and healthy; plus failed requests of a load
 * generator during all the switches.
 *
 *   npm run build && node dist/bench/switch-latency.js        (SWITCHES=20 by default; root needed)
 *
 * A poller keeps one keep-alive connection busy with back-to-back GETs through the frontend and notes
 * the X-Slot of each answer; each switch flips the map entry with updateserver's own runtime client
 * (src/lb/haproxy.ts) and measures until the poller sees the other slot. Writes bench/results/switch-latency.json.
 */
import { Agent, request } from 'node:http';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { loadProfile } from '../src/config/load.js';
import { Haproxy } from '../src/lb/haproxy.js';
import { REPO, startPipeline } from '../test/lab/pipeline.js';
import { startLoad } from '../test/lab/load.js';
import { startSampleApp } from '../test/lab/remote.js';
import { updateserver } from '../test/integration/cli.js';

const agent = new Agent({ keepAlive: true, maxSockets: 1 });

function get(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent }, (res) => { res.resume(); res.on('end', () => resolve(String(res.headers['x-slot'] ?? ''))); });
    req.on('error', reject);
    req.end();
  });
}

async function main(): Promise<void> {
  const switches = Number(process.env.SWITCHES ?? 20);
  const p = await startPipeline({ net: 110 });
  try {
    for (const stage of ['dev', 'beta']) if ((await updateserver(p.project.dir, stage)).code !== 0) throw new Error(`${stage} failed`);
    const stage = await loadProfile(p.project, 'beta');
    const live = (await get(`${p.url.beta}/`)) as 'a' | 'b';
    const idle = live === 'a' ? 'b' : 'a';
    // Both slots running: the idle one gets the live one's release directory started on its port.
    for (const h of p.lab.hosts.filter((x) => x.name.startsWith('beta'))) {
      await startSampleApp(p.lab, h, { dir: `/srv/web/${live}/`, port: stage.services.web!.slots[idle].port, slot: idle, release: 'bench', logFile: `/srv/web/run/bench-${idle}.log` });
    }
    const lb = stage.loadBalancers.lb!;
    const haproxy = Haproxy.forLoadBalancer(lb);
    for (const h of ['beta1', 'beta2']) await haproxy.serverHealth(`web_${idle}`, h, 'up');
    const load = startLoad(`${p.url.beta}/`, { connections: 4 });
    const latencies: number[] = [];
    let current = live as string;
    for (let i = 0; i < switches; i++) {
      const next = current === 'a' ? 'b' : 'a';
      const t0 = process.hrtime.bigint();
      await haproxy.setMap(lb.mapFile, 'web', `web_${next}`);
      while ((await get(`${p.url.beta}/`)) !== next) { /* keep asking */ }
      latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      current = next;
      await new Promise((r) => setTimeout(r, 100));
    }
    const result = await load.stop();
    await haproxy.setMap(lb.mapFile, 'web', `web_${live}`);
    const sorted = [...latencies].sort((a, b) => a - b);
    const pick = (q: number) => Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! * 100) / 100;
    const summary = { switches, minMs: pick(0), medianMs: pick(0.5), p95Ms: pick(0.95), maxMs: pick(1), requests: result.requests, failed: result.non2xx + result.errors + result.timeouts, targetMs: 5 };
    const table = `| switches | min | median | p95 | max | requests during the switches | failed |\n|---|---|---|---|---|---|---|\n| ${switches} | ${summary.minMs} ms | ${summary.medianMs} ms | ${summary.p95Ms} ms | ${summary.maxMs} ms | ${summary.requests} | ${summary.failed} |`;
    process.stdout.write(`${table}\n`);
    await mkdir(join(REPO, 'bench', 'results'), { recursive: true });
    await writeFile(join(REPO, 'bench', 'results', 'switch-latency.json'), `${JSON.stringify({ benchmark: 'switch-latency', command: 'node dist/bench/switch-latency.js', at: new Date().toISOString(), machine: { cpus: cpus().length, node: process.version }, summary, latencies, table }, null, 2)}\n`);
  } finally {
    agent.destroy();
    await p.stop();
  }
}

await main();
