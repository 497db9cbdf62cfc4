/*
 * Start-up of the command (issue 17): `updateserver --version`, and from spawning `updateserver dev
 * --dry-run` to its first TCP connection to a host (the time before any remote work can start).
 *
 *   npm run build && node dist/bench/startup.js        (RUNS=10 by default; root needed for the lab)
 *
 * The first connection is seen by a TCP relay of this process standing for dev1 (127.0.<NET>.99:2222,
 * forwarding to dev1's sshd; dev's profile and known_hosts name the relay), which records when it
 * accepts. Medians of RUNS. Writes bench/results/startup.json.
 */
import { spawn } from 'node:child_process';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { startPipeline } from '../test/lab/pipeline.js';
import { CLI, updateserver } from '../test/integration/cli.js';
import { Knobs, median, startResult } from './result.js';

const knobs = new Knobs();
const runs = knobs.number('RUNS', 10);
const net = knobs.number('NET', 245);
const result = startResult('startup', knobs);

function timedSpawn(args: string[], cwd?: string): Promise<{ code: number | null; ms: number; startedAt: number }> {
  const startedAt = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: 'ignore', env: { ...process.env, NO_COLOR: '1' }, ...(cwd ? { cwd } : {}) });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, ms: performance.now() - startedAt, startedAt }));
  });
}

const version: number[] = [];
for (let k = 0; k < runs; k++) version.push((await timedSpawn(['--version'])).ms);

const p = await startPipeline({ net, betaHosts: 1 });
const firstConnection: number[] = [];
try {
  const r = await updateserver(p.project.dir, 'dev');
  if (r.code !== 0) throw new Error(`setup dev failed:\n${r.stderr}`);
  const dev1 = p.lab.hosts.find((h) => h.name === 'dev1')!;
  const relay = `127.0.${net}.99`;
  let acceptedAt: number | undefined;
  const server = createServer((socket) => {
    acceptedAt ??= performance.now();
    const upstream = connect({ host: dev1.address, port: dev1.port });
    socket.pipe(upstream).pipe(socket);
    socket.on('error', () => upstream.destroy());
    upstream.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(dev1.port, relay, resolve));
  try {
    const known = await readFile(p.lab.knownHosts, 'utf8');
    const line = known.split('\n').find((l) => l.startsWith(`[${dev1.address}]:${dev1.port} `))!;
    await appendFile(p.lab.knownHosts, `${line.replace(`[${dev1.address}]`, `[${relay}]`)}\n`);
    const profile = join(p.project.dir, 'profiles', 'dev.yaml');
    await writeFile(profile, (await readFile(profile, 'utf8')).replace(`address: ${dev1.address}`, `address: ${relay}`));
    for (let k = 0; k < runs; k++) {
      acceptedAt = undefined;
      const run = await timedSpawn(['dev', '--dry-run', '-C', p.project.dir]);
      if (run.code !== 0) process.stderr.write(`dry run ${k + 1}: exit ${run.code}\n`);
      firstConnection.push(acceptedAt === undefined ? NaN : acceptedAt - run.startedAt);
    }
  } finally {
    server.close();
  }
} finally {
  await p.stop();
}
const round = (x: number) => Math.round(x * 10) / 10;
const figures = {
  runs,
  versionMsMedian: round(median(version)), versionMsMax: round(Math.max(...version)),
  firstConnectionMsMedian: round(median(firstConnection)), firstConnectionMsMax: round(Math.max(...firstConnection)),
  detail: { version: version.map(round), firstConnection: firstConnection.map(round) },
};
const table = [
  '| what | median | max |', '|---|---|---|',
  `| \`updateserver --version\` | ${figures.versionMsMedian} ms | ${figures.versionMsMax} ms |`,
  `| spawn of \`updateserver dev --dry-run\` -> first TCP connection to a host | ${figures.firstConnectionMsMedian} ms | ${figures.firstConnectionMsMax} ms |`,
].join('\n');
process.stdout.write(`${JSON.stringify(figures)}\n\n${table}\n`);
process.stdout.write(`wrote ${await result.done({ ...figures, table })}\n`);
