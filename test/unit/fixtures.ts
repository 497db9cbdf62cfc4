/* Fixtures shared by the unit tests of the command builders. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SLOTS, type Service } from '../../src/config/model.js';
import { loadProfile } from '../../src/config/load.js';

/**
 * A sample service exactly as src/config/load.ts resolves it from a profile (defaults and derived
 * fields included), with the given start command.
 */
export async function loadSampleService(start: string): Promise<Service> {
  const dir = mkdtempSync(join(tmpdir(), 'updateserver-profile-'));
  try {
    mkdirSync(join(dir, 'profiles'));
    writeFileSync(join(dir, 'profiles', 'staging.yaml'), [
      'from: dev',
      'hosts: { h1: { address: 10.0.0.11 }, h2: { address: 10.0.0.12 } }',
      'loadBalancers: { lb1: { socket: /run/haproxy/lb1.sock, mapFile: /etc/haproxy/live-staging.map } }',
      'services:',
      '  web:',
      '    hosts: [h1, h2]',
      '    root: /srv/web/',
      '    listen: 8080',
      '    slots: { a: { port: 8081 }, b: { port: 8082 } }',
      '    start: START',
      '',
    ].join('\n').replace('START', start));
    const stage = await loadProfile({ dir, stateDir: join(dir, 'state') }, 'staging');
    const web = stage.services.web;
    assert.ok(web);
    return web;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The service moved to another root the way the loader derives slot dirs: {root}/{slot}. */
export function serviceAt(base: Service, rootDir: string, overrides: Partial<Service> = {}): Service {
  const root = rootDir.replace(/\/+$/, '') || '/';
  const slots = Object.fromEntries(SLOTS.map((slot) => [slot, { ...base.slots[slot], dir: `${root}/${slot}` }])) as unknown as Service['slots'];
  return Object.freeze({ ...base, root, slots, ...overrides });
}

/** A process runs: it exists and is not a zombie (pid 1 here may be slow to reap). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] !== 'Z';
  } catch {
    return false;
  }
}

/** A project folder with one beta profile: a one-host service `web` behind one load balancer, plus `service` lines (rollouts, pauses). */
export function betaProfileDir(service: string[], prefix = 'updateserver-beta-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  mkdirSync(join(dir, 'profiles'));
  writeFileSync(join(dir, 'profiles', 'beta.yaml'), [
    'from: dev', 'hosts:', '  h1: { address: 10.0.0.1 }', 'loadBalancers:', '  lb: { socket: /run/haproxy/admin.sock, mapFile: /etc/haproxy/live.map, address: 10.0.0.9 }',
    'services:', '  web:', '    hosts: [h1]', '    root: /srv/web', '    listen: 8080', '    slots: { a: { port: 8001 }, b: { port: 8002 } }', '    start: node server.mjs --port {port}',
    ...service, '',
  ].join('\n'));
  return dir;
}

/** Shells a host's commands may run in: bash (the session), sh (dash), and zsh where installed (a login shell when sessions are off). */
export const SHELLS: readonly string[] = ['bash', 'sh', ...(existsSync('/usr/bin/zsh') ? ['zsh'] : [])];
