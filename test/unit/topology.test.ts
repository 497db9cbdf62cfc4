/*
 * Issue 18 on its own, without a lab: the profile errors of instances, tiers, files and shared; the
 * plan of a tiered system (order of start, check, switch and stop, instances, peers, files, the
 * current link); the HAProxy configuration of instances, TCP services and services without a frontend.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkStage, type CrossIssue } from '../../src/config/cross-checks.js';
import { profile, type ProfileInput } from '../../src/config/schema.js';
import { loadProfile } from '../../src/config/load.js';
import type { Stage } from '../../src/config/model.js';
import { buildPlan, type HostSlots, type ServiceFacts } from '../../src/plan/build.js';
import type { Action, Plan } from '../../src/plan/plan.js';
import { renderHaproxyConfig } from '../../src/lb/config.js';
import { findCycle, tiersOf } from '../../src/config/tiers.js';
import { renderPlan } from '../../src/plan/render.js';

type Service = NonNullable<ProfileInput['services']>[string];
const svc = (over: Partial<Service> = {}): Service => ({
  hosts: ['h1'], root: '/srv/web', listen: 8080, slots: { a: { port: 8001 }, b: { port: 8002 } }, start: './server --port {port}', ...over,
});
function check(services: Record<string, Service>): CrossIssue[] {
  return checkStage('prod', profile.parse({
    source: { path: 'app' }, hosts: { h1: { address: '10.0.0.1' }, h2: { address: '10.0.0.2' } },
    loadBalancers: { lb: { socket: 'run/admin.sock', mapFile: 'run/slots.map' } }, services,
  } satisfies ProfileInput));
}
const issues = (services: Record<string, Service>) => check(services).map((i) => `${i.path}: ${i.message}`);

test('instances: duplicate ports between instances of one service, and with another service, are refused', () => {
  assert.deepEqual(check({ web: svc({ instances: 3, slots: { a: { port: 8001 }, b: { port: 8011 } } }) }), []);
  const clash = issues({ web: svc({ instances: 2, slots: { a: { port: 8001 }, b: { port: 8002 } } }) });
  assert.equal(clash.length, 1);
  assert.match(clash[0]!, /services\.web\.slots\.b\.port: port 8002 on host "h1" is already used by services\.web\.slots\.a instance 2/);
  const other = issues({ web: svc({ instances: { h1: 2 }, slots: { a: { port: 8001 }, b: { port: 8011 } } }), api: svc({ root: '/srv/api', listen: 9090, slots: { a: { port: 8002 }, b: { port: 8020 } } }) });
  assert.match(other.join('\n'), /services\.api\.slots\.a\.port: port 8002 on host "h1" is already used by services\.web\.slots\.a instance 2/);
  const listed = issues({ web: svc({ instances: 3, slots: { a: { ports: [8001, 8005] }, b: { ports: [8002, 8002, 8003] } } }) });
  assert.match(listed.join('\n'), /slots\.a\.ports: 2 port\(s\) listed for 3 instance\(s\)/);
  assert.match(listed.join('\n'), /slots\.b\.ports: port 8002 is listed twice/);
  assert.match(issues({ web: svc({ instances: { h9: 2 } }) }).join('\n'), /services\.web\.instances\.h9: "h9" is not one of the service's hosts/);
});

test('after: unknown services and cycles are refused, the cycle named', () => {
  const cyc = issues({
    a: svc({ after: ['c'] }), b: svc({ root: '/srv/b', listen: 8081, slots: { a: { port: 8101 }, b: { port: 8102 } }, after: ['a'] }),
    c: svc({ root: '/srv/c', listen: 8082, slots: { a: { port: 8201 }, b: { port: 8202 } }, after: ['b'] }),
  });
  assert.deepEqual(cyc, ['services.a.after: "after" makes a cycle: a -> c -> b -> a; tiers need an order (remove one of these)']);
  assert.match(issues({ web: svc({ after: ['zeo'] }) }).join('\n'), /services\.web\.after\.0: unknown service "zeo"/);
  assert.match(issues({ web: svc({ after: ['web'] }) }).join('\n'), /cannot start after itself/);
  // A peer placeholder names a service of `after` only.
  const zeo = svc({ root: '/srv/zeo', listen: undefined, slots: { a: { port: 8100 }, b: { port: 8200 } } });
  assert.deepEqual(check({ zeo, web: svc({ after: ['zeo'], start: './client --zeo {zeo.address}:{zeo.port}' }) }), []);
  assert.match(issues({ zeo, web: svc({ start: './client --zeo {zeo.address}' }) }).join('\n'), /placeholder \{zeo\.address\} names service "zeo", which is not in services\.web\.after/);
  assert.match(issues({ zeo, web: svc({ after: ['zeo'], start: './client --zeo {zeo.host}' }) }).join('\n'), /expected one of \{zeo\.address\} \{zeo\.port\} \{zeo\.servers\}/);
});

test('files escaping the service root, and shared overlapping files, are refused', () => {
  assert.deepEqual(check({ web: svc({ files: { paths: ['data', 'var/acedb'] }, shared: ['uploads'] }) }), []);
  const bad = issues({ web: svc({ files: { paths: ['../etc', '/var/lib/x', 'data'] }, shared: ['data/uploads', '..'] }) });
  assert.match(bad[0]!, /services\.web\.files\.paths\.0: "\.\.\/etc" escapes the service root \/srv\/web/);
  assert.match(bad[1]!, /services\.web\.files\.paths\.1: "\/var\/lib\/x" escapes the service root/);
  assert.match(bad[2]!, /services\.web\.shared\.0: "data\/uploads" overlaps "data" of services\.web\.files/);
  assert.match(bad[3]!, /services\.web\.shared\.1: "\.\." escapes the service root/);
  assert.equal(bad.length, 4);
  assert.match(issues({ web: svc({ listen: undefined, mode: 'tcp' }) }).join('\n'), /services\.web\.mode: mode tcp is the mode of a frontend/);
});

test('tiers: dependency order, stable within a tier; a cycle is found', () => {
  const s = { zeo: { after: [] }, client: { after: ['zeo'] }, worker: { after: ['zeo'] }, cache: { after: [] }, edge: { after: ['client'] } };
  assert.deepEqual(tiersOf(s, ['edge', 'client', 'worker', 'zeo', 'cache']), [['zeo', 'cache'], ['client', 'worker'], ['edge']]);
  assert.equal(findCycle(s), undefined);
  assert.deepEqual(findCycle({ x: { after: ['y'] }, y: { after: ['x'] } }), ['x', 'y', 'x']);
});

// ---- the plan of seed 004's system, scaled down ----

async function seedStage(): Promise<Stage> {
  const dir = mkdtempSync(join(tmpdir(), 'updateserver-topology-'));
  try {
    mkdirSync(join(dir, 'profiles'));
    writeFileSync(join(dir, 'profiles', 'prod.yaml'), [
      'from: test',
      'hosts: { app1: { address: 10.0.0.11 }, app2: { address: 10.0.0.12 } }',
      'loadBalancers: { lb: { socket: /run/haproxy/lb.sock, mapFile: /etc/haproxy/prod.map } }',
      'services:',
      '  server:',
      '    hosts: [app1]', '    root: /srv/zeo', '    listen: 8100', '    mode: tcp',
      '    slots: { a: { port: 8101 }, b: { port: 8102 } }',
      '    start: node zeo.mjs --port {port} --data {files}',
      '    files: { paths: [var], command: "cp var/Data.fs {snapshot}/" }',
      '  client:',
      '    hosts: [app1, app2]', '    root: /srv/client', '    listen: 8080', '    after: [server]',
      '    instances: { app1: 2, app2: 1 }', '    currentLink: true',
      '    slots: { a: { port: 8001 }, b: { port: 8011 } }',
      '    start: node client.mjs --port {port} --zeo {server.address}:{server.port}',
      '  worker:',
      '    hosts: [app2]', '    root: /srv/worker', '    after: [server]',
      '    slots: { a: { port: 8201 }, b: { port: 8202 } }',
      '    start: node worker.mjs --zeo {server.servers}',
      '',
    ].join('\n'));
    return await loadProfile({ dir, stateDir: join(dir, '.us') }, 'prod');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const STAGE = await seedStage();
const R1 = '2026.11.21-120000-1.0.0-3fa9c2d1';
const R2 = '2026.11.22-223104-1.1.0-9e8d7c6b';
const slots = (): HostSlots => ({ releases: { a: R1, b: undefined }, running: { a: true, b: false }, complete: [R1], partial: [], freeBytes: undefined });
const facts = (s: string): ServiceFacts => ({ live: 'a', release: R2, cacheDir: `/cache/${s}`, source: 'test', hosts: Object.fromEntries(STAGE.services[s]!.hosts.map((h) => [h, slots()])) });
const PLAN: Plan = buildPlan({
  project: { dir: '/p', stateDir: '/p/.us' }, stage: STAGE, from: 'test', services: ['client', 'worker', 'server'],
  facts: { client: facts('client'), worker: facts('worker'), server: facts('server') }, now: new Date('2026-11-22T22:31:04Z'),
});
const titles = (name: string) => PLAN.phases.filter((p) => p.name === name).map((p) => p.items.flatMap((i) => i.actions.map((a) => a.title)));
const execs = (name: string) => PLAN.phases.filter((p) => p.name === name).flatMap((p) => p.items.flatMap((i) => i.actions)).filter((a): a is Extract<Action, { kind: 'exec' }> => a.kind === 'exec');

test('plan: the server tier starts and is checked before its clients and the worker; old slots stop in reverse', () => {
  assert.deepEqual(PLAN.phases.map((p) => p.name), ['pull', 'copy', 'freeze', 'data', 'start', 'check', 'start', 'check', 'rollout', 'switch', 'current', 'post', 'watch', 'unfreeze', 'drain', 'stop-old', 'stop-old', 'purge']);
  const [startServer, startClients] = titles('start');
  assert.deepEqual(startServer, ['start server/b (port 8102), stopping what ran there']);
  assert.deepEqual(startClients!.sort(), ['start client/b instance 1 (port 8011), stopping what ran there', 'start client/b instance 2 (port 8012), stopping what ran there', 'start client/b (port 8011), stopping what ran there', 'start worker/b (port 8202), stopping what ran there'].sort());
  const [stopClients, stopServer] = titles('stop-old');
  assert.deepEqual(stopServer, ['stop old slot server/a']);
  assert.deepEqual(stopClients!.sort(), ['stop old slot client/a (2 instances)', 'stop old slot client/a', 'stop old slot worker/a'].sort());
  assert.match(PLAN.phases.find((p) => p.name === 'start')!.title, /tier 1: server/);
  // Each instance has its own pid and log; the client reaches its slot's server.
  const starts = execs('start').map((a) => a.command).join('\n');
  assert.match(starts, /client\.mjs --port 8012 --zeo 10\.0\.0\.11:8102' <\/dev\/null >>\/srv\/client\/run\/b\.2\.log 2>&1 & p=\$!; started "\$p" \|\| s=-; echo "\$p \$s" > \/srv\/client\/run\/b\.2\.pid/);
  assert.match(starts, /worker\.mjs --zeo 10\.0\.0\.11:8102'/);
});

test('plan: the switch moves every service\'s map entry in tier order, marks only fronted servers up, drains only them', () => {
  const sw = PLAN.phases.find((p) => p.name === 'switch')!.items[0]!.actions;
  const set = sw.find((a) => a.kind === 'set-map') as Extract<Action, { kind: 'set-map' }>;
  assert.deepEqual(Object.entries(set.entries), [['server', 'server_b'], ['client', 'client_b'], ['worker', 'worker_b']]);
  const up = sw.filter((a): a is Extract<Action, { kind: 'server-health' }> => a.kind === 'server-health').map((a) => [a.backend, a.servers]);
  assert.deepEqual(up, [['server_b', ['app1']], ['client_b', ['app1', 'app1-2', 'app2']]]);
  const drain = PLAN.phases.find((p) => p.name === 'drain')!.items[0]!.actions[0] as Extract<Action, { kind: 'drain' }>;
  assert.deepEqual(drain.servers, { server_a: ['app1'], client_a: ['app1', 'app1-2', 'app2'] });
  // The worker has no frontend: its post check runs on its host, the client's through the load balancer.
  const post = PLAN.phases.find((p) => p.name === 'post')!.items.flatMap((i) => i.actions) as Array<Extract<Action, { kind: 'check' }>>;
  assert.deepEqual(post.map((a) => `${a.service} ${a.target.address}:${a.target.port}`), ['server 127.0.0.1:8100', 'client 127.0.0.1:8080', 'worker 10.0.0.12:8202']);
});

test('plan: files copy-self freezes the clients\' frontend, copies with rsync delta and verifies; current link moves and moves back', () => {
  const freeze = PLAN.phases.find((p) => p.name === 'freeze')!.items[0]!.actions;
  assert.deepEqual(freeze.map((a) => a.kind === 'set-map' ? Object.keys(a.entries)[0] : a.kind), ['client.readonly', 'persist-map', 'settle']);
  const copy = execs('data').find((a) => a.title.includes('copy var'))!;
  assert.match(copy.command, /\( cd \/srv\/zeo\/files\/a && cp var\/Data\.fs \/srv\/zeo\/files\/a\.snapshot\/ \)/);
  assert.match(copy.command, /rsync -a --delete --no-whole-file --checksum "\$from"\/var\/ \/srv\/zeo\/files\/b\/var\//);
  assert.match(copy.command, /a=\$\(digest "\$from"\/var\) && b=\$\(digest \/srv\/zeo\/files\/b\/var\)/);
  // On by default: every service's hosts (the client asks for it explicitly, the server and the worker by default).
  assert.deepEqual(titles('current').map((t) => [...t].sort()), [[`point /srv/client/current at ${R2}`, `point /srv/client/current at ${R2}`, `point /srv/worker/current at ${R2}`, `point /srv/zeo/current at ${R2}`]]);
  const back = PLAN.onFailure!.find((p) => p.on.includes('post'))!;
  assert.deepEqual(back.on, ['current', 'post', 'watch']);
  assert.ok(back.phases.some((p) => p.name === 'current-back' && p.items.length === 2));
  // The dry run shows it all.
  const text = renderPlan(PLAN, { commands: true, failures: 'full' });
  assert.match(text, /Start the idle slot \(tier 2: client, worker\)/);
  assert.match(text, /rsync -a --delete --no-whole-file/);
});

test('plan: a client tier without its server in the run, or a server without its clients, is refused', () => {
  assert.throws(() => buildPlan({
    project: { dir: '/p', stateDir: '/p/.us' }, stage: STAGE, from: 'test', services: ['client'],
    facts: { client: facts('client'), server: facts('server'), worker: facts('worker') }, now: new Date(),
  }), /client starts after server and reaches it through its own slot, but server is not in this run/);
  // Nor the server without its clients: stop-old would end the slot they use.
  assert.throws(() => buildPlan({
    project: { dir: '/p', stateDir: '/p/.us' }, stage: STAGE, from: 'test', services: ['server'],
    facts: { client: facts('client'), server: facts('server'), worker: facts('worker') }, now: new Date(),
  }), /client starts after server and reaches it through its own slot, but is not in this run/);
});

test('haproxy: one server line per instance, a tcp frontend and backends, nothing for a service without a frontend', () => {
  const cfg = renderHaproxyConfig(STAGE, STAGE.loadBalancers.lb!);
  assert.match(cfg, /backend client_b\n    option httpchk GET \/health\n    server app1 10\.0\.0\.11:8011 check\n    server app1-2 10\.0\.0\.11:8012 check\n    server app2 10\.0\.0\.12:8011 check\n/);
  assert.match(cfg, /frontend server\n    mode tcp\n    bind 127\.0\.0\.1:8100\n    use_backend %\[str\(server\),map\(\/etc\/haproxy\/prod\.map,server_a\)\]\n/);
  assert.match(cfg, /backend server_a\n    mode tcp\n    server app1 10\.0\.0\.11:8101 check\n/);
  assert.doesNotMatch(cfg, /worker/);
});

test('docs/profiles.md: seed 004\'s example profile loads, with 8 clients on 5 machines', async () => {
  const doc = (await import('node:fs')).readFileSync(join(import.meta.dirname ?? '.', '..', '..', '..', 'docs', 'profiles.md'), 'utf8');
  const section = doc.split(/^## Tiers, instances and files: seed 004's system$/m)[1]!.split(/^## /m)[0]!;
  const yaml = /```yaml\n([\s\S]*?)^```$/m.exec(section)![1]!;
  const dir = mkdtempSync(join(tmpdir(), 'updateserver-seed004-'));
  try {
    mkdirSync(join(dir, 'profiles'));
    mkdirSync(join(dir, 'healthchecks'));
    writeFileSync(join(dir, 'profiles', 'prod.yaml'), yaml);
    writeFileSync(join(dir, 'healthchecks', 'zeo.yaml'), 'pre: [{ name: port, tcp: {} }]\npost: [{ name: port, tcp: {} }]\n');
    writeFileSync(join(dir, 'healthchecks', 'worker.yaml'), 'pre: [{ name: up, command: { run: "true" } }]\n');
    const stage = await loadProfile({ dir, stateDir: join(dir, '.us') }, 'prod');
    const client = stage.services.client!;
    assert.equal(Object.values(client.instances).reduce((a, b) => a + b, 0), 8);
    assert.equal(client.hosts.length, 5);
    assert.deepEqual(stage.services.worker!.listen, undefined);
    assert.equal(stage.services.server!.mode, 'tcp');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('{files} needs files; {snapshot} is only for files.command; a slot dir may not be files/, shared/ or current', () => {
  assert.match(issues({ web: svc({ start: './app --data {files}' }) }).join('\n'), /services\.web\.start: placeholder \{files\} names the slot's data directory, but the service has none/);
  assert.deepEqual(check({ web: svc({ start: './app --data {files}', files: { paths: ['db'] } }) }), []);
  assert.match(issues({ web: svc({ start: './app {snapshot}', files: { paths: ['db'] } }) }).join('\n'), /\{snapshot\} is only for files\.command/);
  assert.match(issues({ web: svc({ slots: { a: { port: 8001, dir: '/srv/web/files/a' }, b: { port: 8002 } } }) }).join('\n'), /services\.web\.slots\.a\.dir: "\/srv\/web\/files\/a" is reserved/);
});

test('plan: files copied from the previous stage: command on its host, pull into the cache, push to each host, verify all, each an exact argv', () => {
  const server = STAGE.services.server!;
  const stage: Stage = { ...STAGE, services: { ...STAGE.services, server: { ...server, files: { ...server.files!, strategy: 'copy' } } } };
  const source = { stage: 'test', host: { ...STAGE.hosts.app1!, name: 'test1', address: '10.0.9.1' }, root: '/srv/zeo', slot: 'b' as const };
  const plan = buildPlan({
    project: { dir: '/p', stateDir: '/p/.us' }, stage, from: 'test', services: ['client', 'worker', 'server'],
    facts: { client: facts('client'), worker: facts('worker'), server: { ...facts('server'), filesSource: source } }, now: new Date(),
  });
  const data = plan.phases.find((p) => p.name === 'data')!.items.find((i) => i.target === 'server')!.actions;
  assert.deepEqual(data.map((a) => a.title), [
    'run "cp var/Data.fs {snapshot}/" in test\'s server/b files on test1',
    'prepare the local cache /p/.us/cache/files/test/server',
    'pull var of test\'s server/b into the local cache (rsync delta)',
    'stop idle slot server/b on app1 if running',
    'push var into server/b on app1 (rsync delta)',
    'verify var of test\'s server/b against every copy: size and SHA-256 of each file',
  ]);
  const argv = (i: number) => (data[i] as Extract<Action, { kind: 'local' }>).argv;
  assert.equal(argv(0).at(-1), 'rm -rf /srv/zeo/files/b.snapshot && mkdir -p /srv/zeo/files/b.snapshot && cd /srv/zeo/files/b && ( cp var/Data.fs /srv/zeo/files/b.snapshot/ )');
  assert.deepEqual(argv(2).slice(-2), ['root@10.0.9.1:/srv/zeo/files/b.snapshot/var/', '/p/.us/cache/files/test/server/var/']);
  assert.deepEqual(argv(4).slice(-2), ['/p/.us/cache/files/test/server/var/', 'root@10.0.0.11:/srv/zeo/files/b/var/']);
  assert.match(argv(5)[2]!, /s=\$\(ssh .* root@10\.0\.9\.1 .*digest \/srv\/zeo\/files\/b\.snapshot\/var.*\) && c=\$\(digest \/p\/\.us\/cache\/files\/test\/server\/var\)/);
  // No freeze: the copy is the previous stage's data, not this stage's live one.
  assert.equal(plan.phases.find((p) => p.name === 'freeze')!.items.length, 0);
});

test('plan: a failure before the switch stops every new slot started, the client tier before the server tier', () => {
  const path = PLAN.onFailure!.find((p) => p.on.includes('check'))!;
  const stopNew = path.phases.find((p) => p.name === 'stop-new')!;
  const titles = stopNew.items.flatMap((i) => i.actions.map((a) => a.title));
  assert.ok(titles.indexOf('stop client/b instance 1 on app1 again') < titles.indexOf('stop server/b on app1 again'), titles.join('\n'));
  assert.deepEqual(titles.filter((x) => x.startsWith('stop client')).length, 3);
  assert.ok(titles.includes('stop worker/b on app2 again'));
});
