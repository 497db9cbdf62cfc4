/*
 * Seed 004's system on the lab, scaled down (issue 18): four stages dev -> beta -> test -> prod, each
 * with its own HAProxy, running a "server" tier (zeo.mjs: TCP, data in files), a "client" tier
 * (client.mjs: HTTP, reads from its slot's server; 3 instances on 2 hosts in prod) and a worker with no
 * frontend (worker.mjs). The profiles are written here, and each HAProxy's configuration is rendered
 * from its stage's profile by updateserver itself.
 */
import { cp, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadProfile } from '../../src/config/load.js';
import type { Project } from '../../src/config/model.js';
import { renderHaproxyConfig } from '../../src/lb/config.js';
import { startLab, type Lab, type LabHaproxy, type LabHost } from './lab.js';
import { REPO } from './spawn-cli.js';

export const TIERS_APP = join(REPO, 'test', 'fixtures', 'tiers');
export const STAGES = ['dev', 'beta', 'test', 'prod'] as const;
export type StageName = typeof STAGES[number];

export interface TiersLab {
  lab: Lab;
  project: Project;
  appDir: string;
  lbs: Record<StageName, LabHaproxy>;
  /** The client tier's frontend of each stage. */
  url: Record<StageName, string>;
  host(name: string): LabHost;
  stop(): Promise<void>;
}

interface Placement { server: string; client: Record<string, number>; worker: string }

const PLACEMENT: Record<StageName, Placement> = {
  dev: { server: 'dev1', client: { dev1: 1 }, worker: 'dev1' },
  beta: { server: 'beta1', client: { beta1: 1 }, worker: 'beta1' },
  test: { server: 'test1', client: { test1: 1 }, worker: 'test1' },
  // "8 zeo clients on 5 machines, as well as the zeo server", scaled down: 3 clients on 2 machines.
  prod: { server: 'prod1', client: { prod1: 2, prod2: 1 }, worker: 'prod2' },
};

const HEALTHCHECKS = {
  'healthchecks/zeo.yaml': 'pre:\n  - { name: port, tcp: {}, deadlineMs: 5000, intervalMs: 50 }\npost:\n  - { name: port, tcp: {} }\n',
  // The worker has no port: its beat file names its release and its slot's server, which answered.
  'healthchecks/worker.yaml': 'pre:\n  - name: beat\n    command: { run: \'grep -q "^"{release}" slot="{slot}" " {config}/beat\' }\n    deadlineMs: 5000\n    intervalMs: 50\npost:\n  - name: beat\n    command: { run: \'grep -q "^"{release}" slot="{slot}" " {config}/beat\' }\n',
};

function profile(stage: StageName, lab: Lab, net: number, lbDir: string): string {
  const i = STAGES.indexOf(stage);
  const p = PLACEMENT[stage];
  const hosts = [...new Set([p.server, ...Object.keys(p.client), p.worker])];
  return [
    i === 0 ? 'source:\n  path: app' : `from: ${STAGES[i - 1]}`,
    'ssh:', '  user: root', '  port: 2222', `  key: ${lab.keyFile}`, `  knownHosts: ${lab.knownHosts}`,
    'hosts:', ...hosts.map((h) => `  ${h}: { address: ${lab.hosts.find((x) => x.name === h)!.address} }`),
    'loadBalancers:', '  lb:', `    socket: ${lbDir}/admin.sock`, `    mapFile: ${lbDir}/backends.map`, `    address: 127.0.${net}.${i + 1}`,
    'services:',
    '  server:',
    `    hosts: [${p.server}]`,
    '    root: /srv/zeo',
    '    listen: 8100',
    '    mode: tcp',
    '    slots: { a: { port: 8101 }, b: { port: 8102 } }',
    '    start: node zeo.mjs --host {address} --port {port} --slot {slot} --release {release} --data {files}',
    '    checks: zeo',
    // The "pack": a consistent copy written into {snapshot}, from which the idle slot's copy is taken:
    // dev's from its own live slot, every later stage's from the stage before it (seed 004).
    `    files: { paths: [var], strategy: ${i === 0 ? 'copy-self' : 'copy'}, command: "mkdir -p {snapshot}/var && cp -a var/. {snapshot}/var/" }`,
    '    stopTimeoutMs: 3000',
    '    drainTimeoutMs: 3000',
    '  client:',
    `    hosts: [${Object.keys(p.client).join(', ')}]`,
    `    instances: { ${Object.entries(p.client).map(([h, n]) => `${h}: ${n}`).join(', ')} }`,
    '    root: /srv/client',
    '    listen: 8080',
    '    after: [server]',
    '    currentLink: true',
    '    shared: [var/uploads]',
    '    slots: { a: { port: 8001 }, b: { port: 8011 } }',
    '    start: node client.mjs --host {address} --port {port} --slot {slot} --release {release} --zeo {server.address}:{server.port}',
    '    health: { path: /health, deadlineMs: 5000, intervalMs: 50 }',
    '    stopTimeoutMs: 3000',
    '    drainTimeoutMs: 3000',
    '  worker:',
    `    hosts: [${p.worker}]`,
    '    root: /srv/worker',
    '    after: [server]',
    '    slots: { a: { port: 8201 }, b: { port: 8202 } }',
    '    start: node worker.mjs --slot {slot} --release {release} --zeo {server.servers} --beat {config}/beat',
    '    checks: worker',
    '    stopTimeoutMs: 3000',
    '',
  ].join('\n');
}

export async function startTiersLab(net: number): Promise<TiersLab> {
  const names = ['dev1', 'beta1', 'test1', 'prod1', 'prod2'];
  const lab = await startLab({ hosts: names.map((name, i) => ({ name, address: `127.0.${net}.${11 + i}` })) });
  try {
    const projectDir = join(lab.dir, 'project');
    const appDir = join(projectDir, 'app');
    await mkdir(join(projectDir, 'profiles'), { recursive: true });
    await mkdir(join(projectDir, 'healthchecks'), { recursive: true });
    await cp(TIERS_APP, appDir, { recursive: true });
    for (const [file, text] of Object.entries(HEALTHCHECKS)) await writeFile(join(projectDir, file), text);
    for (const stage of STAGES) await writeFile(join(projectDir, 'profiles', `${stage}.yaml`), profile(stage, lab, net, join(lab.dir, `haproxy-${stage}`)));
    const project: Project = { dir: projectDir, stateDir: join(projectDir, '.updateserver') };
    const lbs = {} as Record<StageName, LabHaproxy>;
    for (const stage of STAGES) {
      const s = await loadProfile(project, stage);
      lbs[stage] = await lab.startHaproxy(stage, () => renderHaproxyConfig(s, s.loadBalancers.lb!));
    }
    const url = Object.fromEntries(STAGES.map((s, i) => [s, `http://127.0.${net}.${i + 1}:8080`])) as Record<StageName, string>;
    return {
      lab, project, appDir, lbs, url,
      host: (name) => lab.hosts.find((h) => h.name === name)!,
      stop: () => lab.stop(),
    };
  } catch (err) {
    await lab.stop();
    throw err;
  }
}
