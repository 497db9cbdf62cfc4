/*
 * The console's pipeline page at size (issue 22): 4 stages x 10 services x 50 hosts, each stage with a
 * recorded state (both slots' releases and data versions), a lock and a history. Time from the request to
 * the last byte of GET / for a signed-in user, measured at the server (in-process, over loopback HTTP).
 * No lab: the page reads the profiles and the recorded state, never a host.
 *
 *   npm run build && node dist/bench/console-page.js        (STAGES=4 SERVICES=10 HOSTS=50 RUNS=30)
 *
 * Target: median <= 100 ms. Writes bench/results/console-page.json.
 */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Console } from '../src/serve/server.js';
import { hashPassword } from '../src/serve/passwords.js';
import { FileStateStore } from '../src/state/store.js';
import { Knobs, median, startResult } from './result.js';

const knobs = new Knobs();
const STAGES = knobs.number('STAGES', 4);
const SERVICES = knobs.number('SERVICES', 10);
const HOSTS = knobs.number('HOSTS', 50);
const RUNS = knobs.number('RUNS', 30);
const result = startResult('console-page', knobs);
const names = ['dev', 'beta', 'test', 'prod', 'extra1', 'extra2'].slice(0, STAGES);

function profile(stage: string, i: number): string {
  const hosts = Array.from({ length: HOSTS }, (_, h) => `${stage}${h}`);
  return [
    i === 0 ? 'source: { path: app }' : `from: ${names[i - 1]}`,
    'ssh: { user: deploy }',
    `hosts:\n${hosts.map((h, n) => `  ${h}: { address: 10.${i}.${n >> 8}.${n & 255} }`).join('\n')}`,
    `loadBalancers: { lb: { socket: run/${stage}.sock, mapFile: run/${stage}.map } }`,
    'services:',
    ...Array.from({ length: SERVICES }, (_, s) => [
      `  svc${s}:`, `    hosts: [${hosts.join(', ')}]`, `    root: /srv/svc${s}`, `    listen: ${9000 + s}`,
      `    slots: { a: { port: ${10000 + s * 2} }, b: { port: ${10001 + s * 2} } }`, '    start: ./server --port {port}',
    ].join('\n')),
    '',
  ].join('\n');
}

function get(url: string, cookie: string): Promise<{ ms: number; bytes: number; status: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    request(url, { headers: { cookie }, agent: false }, (res) => {
      let bytes = 0;
      res.on('data', (d: Buffer) => { bytes += d.length; });
      res.on('end', () => resolve({ ms: performance.now() - t0, bytes, status: res.statusCode ?? 0 }));
    }).on('error', reject).end();
  });
}

const dir = await mkdtemp(join(tmpdir(), 'updateserver-bench-console-'));
try {
  await mkdir(join(dir, 'profiles'));
  for (const [i, stage] of names.entries()) await writeFile(join(dir, 'profiles', `${stage}.yaml`), profile(stage, i));
  const project = { dir, stateDir: join(dir, '.updateserver') };
  const store = new FileStateStore(project.stateDir);
  for (const stage of names) {
    const at = new Date().toISOString();
    await store.write({ stage, services: Object.fromEntries(Array.from({ length: SERVICES }, (_, s) => [`svc${s}`, {
      live: 'b', updated: at, releases: { a: `2026.12.0${s % 9 + 1}-101010-1.${s}.0-aaaaaaaa`, b: `2026.12.0${s % 9 + 1}-111111-1.${s + 1}.0-bbbbbbbb` },
      data: { a: { database: `svc${s}_${stage}_a`, version: 3 }, b: { database: `svc${s}_${stage}_b`, version: 4 } },
    }])) });
    for (let r = 0; r < 50; r++) await store.appendHistory({ at, stage, action: 'promote', result: 'ok', user: 'bench', services: {}, durationMs: 1000 });
  }
  const users = new Map([['bench', { name: 'bench', passwordHash: await hashPassword('bench-password-x'), stages: { '*': 'release' as const } }]]);
  const console_ = new Console({ project, users, secureCookies: false });
  const server = await console_.listen('127.0.0.1', 0);
  const port = (server.address() as { port: number }).port;
  const session = console_.sessions.create('bench');
  const cookie = `updateserver_session=${session.id}`;
  // Warm-up: module compilation and the first profile reads are not what a user waits for twice.
  for (let i = 0; i < 3; i++) await get(`http://127.0.0.1:${port}/`, cookie);
  const times: number[] = [];
  let bytes = 0;
  for (let i = 0; i < RUNS; i++) {
    const r = await get(`http://127.0.0.1:${port}/`, cookie);
    if (r.status !== 200) throw new Error(`GET / answered ${r.status}`);
    times.push(r.ms);
    bytes = r.bytes;
  }
  await new Promise((r) => server.close(r));
  const med = median(times);
  const figures = { stages: STAGES, services: SERVICES, hosts: HOSTS, runs: RUNS, medianMs: Math.round(med * 10) / 10, maxMs: Math.round(Math.max(...times) * 10) / 10, pageBytes: bytes, targetMs: 100, met: med <= 100 };
  process.stdout.write(`pipeline page, ${STAGES} stages x ${SERVICES} services x ${HOSTS} hosts: median ${figures.medianMs} ms, max ${figures.maxMs} ms, ${bytes} bytes (target <= 100 ms: ${figures.met ? 'met' : 'NOT met'})\n`);
  await result.done(figures);
} finally {
  await rm(dir, { recursive: true, force: true });
}
