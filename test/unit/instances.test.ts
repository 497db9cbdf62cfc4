/*
 * `instances` on a host entry (issue 18: "instances: 4 on a host or for the service"): a service's
 * `hosts` list takes `{ name, instances }` beside plain names; the count there wins over the service's
 * number, and a host given a count both ways is a profile error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { instancesPerHost, hostNamesOf } from '../../src/config/instances.js';
import { loadProfile } from '../../src/config/load.js';
import { checkStage } from '../../src/config/cross-checks.js';
import { profile, type ProfileInput } from '../../src/config/schema.js';
import { serverNames } from '../../src/config/instances.js';

test('instancesPerHost: a host entry\'s own count, else the service\'s number or map, else 1', () => {
  assert.deepEqual({ ...instancesPerHost(['h1', { name: 'h2', instances: 3 }], 2) }, { h1: 2, h2: 3 });
  assert.deepEqual({ ...instancesPerHost(['h1', { name: 'h2', instances: 3 }, 'h3'], { h1: 4 }) }, { h1: 4, h2: 3, h3: 1 });
  assert.deepEqual(hostNamesOf(['h1', { name: 'h2', instances: 3 }]), ['h1', 'h2']);
});

const base = (hosts: unknown, extra: Record<string, unknown> = {}) => ({
  source: { path: 'app' }, hosts: { h1: { address: '10.0.0.1' }, h2: { address: '10.0.0.2' } },
  loadBalancers: { lb: { socket: 'run/admin.sock', mapFile: 'run/slots.map' } },
  services: { web: { hosts, root: '/srv/web', listen: 8080, slots: { a: { port: 8001 }, b: { port: 8011 } }, start: './server --port {port}', ...extra } },
}) as unknown as ProfileInput;
const issues = (p: ProfileInput) => checkStage('prod', profile.parse(p)).map((i) => `${i.path}: ${i.message}`);

test('profile: { name, instances } in hosts; counted twice, unknown, out of range or with a port clash is refused', () => {
  assert.deepEqual(issues(base(['h1', { name: 'h2', instances: 3 }])), []);
  assert.deepEqual(issues(base([{ name: 'h1', instances: 2 }], { instances: { h1: 2 } })), ['services.web.instances.h1: host "h1" gets its number of instances twice (instances: 2 in hosts, 2 here); keep one']);
  assert.match(issues(base([{ name: 'h9', instances: 2 }])).join('\n'), /services\.web\.hosts\.0: unknown host "h9"/);
  assert.match(issues(base(['h1', { name: 'h1', instances: 2 }])).join('\n'), /services\.web\.hosts\.1: host "h1" is listed twice/);
  // 11 instances from 8001 reach slot b's 8011 on the same host.
  assert.match(issues(base([{ name: 'h1', instances: 11 }])).join('\n'), /port 8011 on host "h1" is already used by services\.web\.slots\.a instance 11/);
  assert.equal(profile.safeParse(base([{ name: 'h1', instances: 0 }])).success, false);
  assert.equal(profile.safeParse(base([{ name: 'h1', count: 2 }])).success, false);
});

test('load: hosts are names again, each with its instances and server lines', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'updateserver-instances-'));
  try {
    mkdirSync(join(dir, 'profiles'));
    writeFileSync(join(dir, 'profiles', 'prod.yaml'), [
      'source: { path: app }',
      'hosts: { h1: { address: 10.0.0.1 }, h2: { address: 10.0.0.2 } }',
      'loadBalancers: { lb: { socket: run/admin.sock, mapFile: run/slots.map } }',
      'services:',
      '  web:',
      '    hosts: [h1, { name: h2, instances: 3 }]',
      '    root: /srv/web', '    listen: 8080',
      '    slots: { a: { port: 8001 }, b: { port: 8011 } }',
      '    start: ./server --port {port}', '',
    ].join('\n'));
    const stage = await loadProfile({ dir, stateDir: join(dir, '.us') }, 'prod');
    const web = stage.services.web!;
    assert.deepEqual(web.hosts, ['h1', 'h2']);
    assert.deepEqual({ ...web.instances }, { h1: 1, h2: 3 });
    assert.deepEqual(serverNames(web), ['h1', 'h2', 'h2-2', 'h2-3']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
