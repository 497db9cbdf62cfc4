/*
 * The cross-field rules on their own, on validated profile data: what each rule refuses, and the
 * nearby cases it must let through (no false alarms on a workable stage).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkStage, type CrossIssue } from '../../src/config/cross-checks.js';
import { profile, type ProfileInput } from '../../src/config/schema.js';

type Service = NonNullable<ProfileInput['services']>[string];

const web = (over: Partial<Service> = {}): Service => ({
  hosts: ['web1'], root: '/srv/web', listen: 8080, slots: { a: { port: 8001 }, b: { port: 8002 } }, start: './server --port {port}', ...over,
});

function check(over: Partial<ProfileInput> = {}, stage = 'prod'): CrossIssue[] {
  const input: ProfileInput = {
    source: { path: 'app' },
    hosts: { web1: { address: '10.0.0.1' }, web2: { address: '10.0.0.2' } },
    loadBalancers: { lb: { socket: 'run/admin.sock', mapFile: 'run/slots.map' } },
    services: { web: web() },
    ...over,
  };
  return checkStage(stage, profile.parse(input));
}

const paths = (issues: CrossIssue[]) => issues.map((i) => i.path);

test('a workable stage has no issues', () => {
  assert.deepEqual(check(), []);
});

test('listen ports are unique within the stage', () => {
  const issues = check({ services: { web: web(), api: web({ root: '/srv/api', slots: { a: { port: 9001 }, b: { port: 9002 } } }) } });
  assert.deepEqual(paths(issues), ['services.api.listen']);
  assert.match(issues[0]!.message, /port 8080 is already the listen port of service "web"/);
  assert.deepEqual(check({ services: { web: web(), api: web({ root: '/srv/api', listen: 8090, slots: { a: { port: 9001 }, b: { port: 9002 } } }) } }), []);
});

test('a slot on the load balancer\'s address cannot take a listen port; elsewhere it can', () => {
  const hosts = { web1: { address: '10.0.0.5' } };
  const lbAt = (address: string) => ({ lb: { socket: 'run/admin.sock', mapFile: 'run/slots.map', address } });
  const slots = { a: { port: 8001 }, b: { port: 8080 } };
  const issues = check({ hosts, loadBalancers: lbAt('10.0.0.5'), services: { web: web({ slots }) } });
  assert.deepEqual(paths(issues), ['services.web.slots.b.port']);
  assert.match(issues[0]!.message, /port 8080 is its listen port, and host "web1" has the address 10\.0\.0\.5 where load balancer "lb" listens/);
  assert.deepEqual(check({ hosts, loadBalancers: lbAt('10.0.0.6'), services: { web: web({ slots }) } }), []);
  // Another service's listen port is taken on that address just the same.
  const other = check({
    hosts, loadBalancers: lbAt('10.0.0.5'),
    services: { web: web(), api: web({ root: '/srv/api', listen: 9090, slots: { a: { port: 8080 }, b: { port: 9002 } } }) },
  });
  assert.deepEqual(paths(other), ['services.api.slots.a.port']);
  assert.match(other[0]!.message, /the listen port of service "web"/);
});

test('start and stop may use every placeholder and no other', () => {
  const all = './app {stage} {service} {host} {address} {slot} {port} {dir} {release} {config} ${HOME} $home';
  assert.deepEqual(check({ services: { web: web({ start: all, stop: all }) } }), []);
  const issues = check({ services: { web: web({ start: './app {port} {name} {name}', stop: 'kill {pid}' }) } });
  assert.deepEqual(issues.map((i) => [i.path, i.message.split(' (')[0]]), [
    ['services.web.start', 'unknown placeholder {name}'],
    ['services.web.stop', 'unknown placeholder {pid}'],
  ]);
  assert.match(issues[0]!.message, /\(allowed: \{stage\} \{service\} \{host\} \{address\} \{slot\} \{port\} \{dir\} \{release\} \{config\} \{database\} \{instance\} \{files\} \{snapshot\}\)$/);
});

test('{database} names the slot\'s database: allowed with a database, refused without one', () => {
  const start = './app --db postgres://127.0.0.1/{database}';
  assert.deepEqual(check({ services: { web: web({ start, database: { engine: 'postgres' } }) } }), []);
  const issues = check({ services: { web: web({ start }) } });
  assert.deepEqual(issues.map((i) => i.path), ['services.web.start']);
  assert.match(issues[0]!.message, /placeholder \{database\} names the slot's database, but the service has none: add services\.web\.database/);
});

test('a load balancer\'s host must be one of the hosts', () => {
  const lb = (host: string) => ({ lb: { host, socket: '/run/haproxy.sock', mapFile: '/etc/haproxy/slots.map' } });
  assert.deepEqual(check({ loadBalancers: lb('web2') }), []);
  const issues = check({ loadBalancers: lb('lb1') });
  assert.deepEqual(paths(issues), ['loadBalancers.lb.host']);
  assert.match(issues[0]!.message, /unknown host "lb1": declare it under hosts \(hosts: web1, web2\)/);
});

test('two load balancers cannot share a socket on one machine', () => {
  const lbs = (a: object, b: object) => ({ one: { socket: 'run/admin.sock', mapFile: 'run/1.map', ...a }, two: { socket: 'run/admin.sock', mapFile: 'run/2.map', ...b } });
  assert.deepEqual(paths(check({ loadBalancers: lbs({}, { socket: './run//admin.sock' }) })), ['loadBalancers.two.socket']);
  assert.deepEqual(paths(check({ loadBalancers: lbs({ host: 'web1' }, { host: 'web1' }) })), ['loadBalancers.two.socket']);
  // Two host entries with one address are one machine.
  const hosts = { web1: { address: '10.0.0.1' }, web2: { address: '10.0.0.2' }, alias: { address: '10.0.0.1' } };
  assert.deepEqual(paths(check({ hosts, loadBalancers: lbs({ host: 'web1' }, { host: 'alias' }) })), ['loadBalancers.two.socket']);
  // The same path on different machines is fine.
  assert.deepEqual(check({ loadBalancers: lbs({ host: 'web1' }, { host: 'web2' }) }), []);
  assert.deepEqual(check({ loadBalancers: lbs({}, { host: 'web2' }) }), []);
});

test('every host of a service is declared and listed once', () => {
  assert.deepEqual(check({ services: { web: web({ hosts: ['web1', 'web3', 'web1'] }) } }).map((i) => [i.path, i.message]), [
    ['services.web.hosts.1', 'unknown host "web3": declare it under hosts (hosts: web1, web2)'],
    ['services.web.hosts.2', 'host "web1" is listed twice; list each host once'],
  ]);
});

test('slot ports collide per address, also across services and host aliases, but not across machines', () => {
  const api = (hosts: string[]) => web({ hosts, root: '/srv/api', listen: 9090, slots: { a: { port: 8002 }, b: { port: 9002 } } });
  assert.deepEqual(paths(check({ services: { web: web(), api: api(['web1']) } })), ['services.api.slots.a.port']);
  assert.deepEqual(check({ services: { web: web(), api: api(['web2']) } }), []);
  const hosts = { web1: { address: '10.0.0.1' }, alias: { address: '10.0.0.1' } };
  const issues = check({ hosts, services: { web: web(), api: api(['alias']) } });
  assert.deepEqual(paths(issues), ['services.api.slots.a.port']);
  assert.match(issues[0]!.message, /port 8002 on host "alias" is already used by services\.web\.slots\.b on host "web1" \(same address\)/);
});

test('slots and services do not share directories on one machine', () => {
  const shared = { a: { port: 8001, dir: '/srv/web/live' }, b: { port: 8002, dir: '/srv/web/live/' } };
  assert.deepEqual(paths(check({ services: { web: web({ slots: shared }) } })), ['services.web.slots.b.dir']);
  const api = web({ root: '/srv/web/', listen: 9090, slots: { a: { port: 9001, dir: '/srv/api-a' }, b: { port: 9002, dir: '/srv/api-b' } } });
  assert.deepEqual(paths(check({ services: { web: web(), api } })), ['services.api.root']);
  assert.deepEqual(check({ services: { web: web(), api: { ...api, hosts: ['web2'] } } }), []);
});

test('a slot dir is not the root, above it, or inside releases/ or run/', () => {
  const dirs = (a: string) => check({ services: { web: web({ slots: { a: { port: 8001, dir: a }, b: { port: 8002 } } }) } });
  for (const bad of ['/srv/web', '/srv', '/', '/srv/web/releases', '/srv/web/releases/a', '/srv/web/run/', '/srv/x/../web/run/a']) {
    assert.deepEqual(paths(dirs(bad)), ['services.web.slots.a.dir'], bad);
  }
  assert.match(dirs('/srv/web/releases')[0]!.message, /reserved for the service's releases and run files; use e\.g\. \/srv\/web\/a/);
  for (const good of ['/srv/web/blue', '/srv/web-a', '/srv/web/releases-a', '/opt/slots/web-a']) assert.deepEqual(dirs(good), [], good);
});

test('exactly one of from and source, and not from itself', () => {
  assert.deepEqual(paths(check({ source: undefined })), ['from']);
  assert.deepEqual(paths(check({ from: 'beta' })), ['source']);
  assert.deepEqual(paths(check({ source: undefined, from: 'prod' })), ['from']);
  assert.deepEqual(check({ source: undefined, from: 'beta' }), []);
});

test('services need a load balancer', () => {
  assert.deepEqual(paths(check({ loadBalancers: {} })), ['loadBalancers']);
  assert.deepEqual(check({ loadBalancers: {}, services: {} }), []);
});

test('releaseName: placeholders, characters and uniqueness, at the stage or the service', () => {
  assert.deepEqual(check({ releaseName: '{data}-{date}-{version}-{rev}', services: { web: web({ releaseName: 'WS{data}-{hash}' }) } }), []);
  const issues = check({ releaseName: '{date}-{commit}', services: { web: web({ releaseName: '{version} {hash}' }), api: web({ root: '/srv/api', listen: 8090, slots: { a: { port: 9001 }, b: { port: 9002 } }, releaseName: '{data}-{version}' }) } });
  assert.deepEqual(issues.map((i) => [i.path, i.message]), [
    ['releaseName', 'unknown placeholder {commit} (allowed: {data} {date} {version} {rev} {hash})'],
    ['services.web.releaseName', 'only letters, digits, ".", "_", "+" and "-" may stand between the placeholders'],
    ['services.api.releaseName', 'expected {date}, {hash} or {rev} in the name, so that different code never gets the same name'],
  ]);
});

test('releaseName belongs to the first stage: a later stage keeps the names it gets', () => {
  const issues = check({ source: undefined, from: 'dev', releaseName: '{date}-{hash}' });
  assert.deepEqual(paths(issues), ['releaseName']);
  assert.match(issues[0]!.message, /only the first stage names releases; this stage keeps the names of stage "dev"/);
});

test('source: a path, or a git repository with a ref; not both, not neither', () => {
  assert.deepEqual(check({ source: { git: '../repo.git', ref: 'v1.4.0' } }), []);
  const both = check({ source: { path: 'app', git: '../repo', ref: 'v1' } });
  assert.deepEqual(both.map((i) => [i.path, i.message]), [['source', 'expected either path (a directory) or git (a repository with a ref), not both']]);
  assert.deepEqual(paths(check({ source: {} })), ['source']);
  assert.deepEqual(check({ source: { git: '../repo' } }).map((i) => [i.path, i.message]), [['source.ref', 'expected the tag, branch or commit of the git repository to release']]);
  assert.deepEqual(paths(check({ source: { path: 'app', ref: 'v1' } })), ['source.ref']);
});

test('configFiles: two entries cannot render to one file', () => {
  const files = [{ template: 'a.tmpl', path: 'conf/app.env' }, { template: 'b.tmpl', path: 'conf/./app.env' }];
  const issues = check({ services: { web: web({ configFiles: files }) } });
  assert.deepEqual(issues.map((i) => [i.path, i.message]), [['services.web.configFiles.1.path', 'conf/./app.env is already rendered by another entry; give each file its own path']]);
  assert.deepEqual(check({ services: { web: web({ configFiles: [files[0]!, { template: 'a.tmpl', path: 'conf/other.env' }] }) } }), []);
});
