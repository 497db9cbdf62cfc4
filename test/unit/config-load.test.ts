/*
 * The good path of profile loading: the repository's own profiles, and what resolving a profile fills
 * in (defaults, host settings merged from ssh:, absolute local paths, slot directories, backend names).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { loadPipeline, loadProfile } from '../../src/config/load.js';
import type { Project } from '../../src/config/model.js';
import { ConfigError } from '../../src/errors.js';

/** Compiled to dist/test/unit/, so the repository is three levels up. */
const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

async function withProject(files: Record<string, string>, body: (project: Project) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'updateserver-config-'));
  try {
    await mkdir(join(dir, 'profiles'));
    for (const [stage, text] of Object.entries(files)) await writeFile(join(dir, 'profiles', `${stage}.yaml`), text);
    await body({ dir, stateDir: join(dir, '.updateserver') });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const SERVICES = `services:
  web:
    hosts: [web1]
    root: /srv/web
    listen: 8080
    slots:
      a: { port: 8001 }
      b: { port: 8002 }
    start: ./server --port {port}
`;
const LB = `loadBalancers:
  lb: { socket: run/admin.sock, mapFile: run/slots.map }
`;

/** The repository's profiles as written, so that the test follows edits to their addresses and paths. */
interface RawProfile {
  source?: { path: string };
  ssh: { user: string; port: number; key: string; knownHosts: string };
  hosts: Record<string, { address: string }>;
  loadBalancers: Record<string, { socket: string; mapFile: string; address: string }>;
  services: Record<string, { hosts: string[]; root: string; listen: number; slots: Record<'a' | 'b', { port: number }>; drainTimeoutMs?: number; health?: { deadlineMs?: number } }>;
}
const raw = (stage: string) => parse(readFileSync(join(REPO, 'profiles', `${stage}.yaml`), 'utf8')) as RawProfile;

test('the repository profiles load: beta, then dev, with every default applied', async () => {
  const stateDir = await mkdtemp(join(tmpdir(), 'updateserver-state-'));
  try {
    const chain = await loadPipeline({ dir: REPO, stateDir }, 'beta');
    assert.deepEqual(chain.map((s) => s.name), ['beta', 'dev']);
    const [beta, dev] = chain as [typeof chain[0], typeof chain[0]];
    const [rawBeta, rawDev] = [raw('beta'), raw('dev')];

    assert.equal(beta.file, join('profiles', 'beta.yaml'));
    assert.equal(beta.from, 'dev');
    assert.equal(beta.source, undefined);
    assert.equal(dev.from, undefined);
    assert.deepEqual(dev.source, { kind: 'path', path: join(REPO, rawDev.source!.path!) });

    // ssh: user and port merged into every host; key paths made absolute against the project.
    assert.deepEqual(Object.keys(beta.hosts), Object.keys(rawBeta.hosts));
    assert.ok(Object.keys(beta.hosts).length >= 2, 'beta has two hosts');
    for (const [name, h] of Object.entries(beta.hosts)) {
      assert.deepEqual(h, {
        name, address: rawBeta.hosts[name]!.address, port: rawBeta.ssh.port, user: rawBeta.ssh.user,
        key: join(REPO, rawBeta.ssh.key), knownHosts: join(REPO, rawBeta.ssh.knownHosts),
        connectTimeoutMs: 10_000, commandTimeoutMs: 600_000,
      });
      assert.ok(isAbsolute(h.key!) && isAbsolute(h.knownHosts));
    }
    assert.equal(dev.hosts.dev1?.port, rawDev.ssh.port);
    assert.equal(dev.hosts.dev1?.key, join(REPO, rawDev.ssh.key));

    const rawLb = rawBeta.loadBalancers.lb!;
    assert.deepEqual(beta.loadBalancers.lb, {
      name: 'lb', socket: join(REPO, rawLb.socket), mapFile: join(REPO, rawLb.mapFile), host: undefined, address: rawLb.address, timeoutMs: 2000,
    });

    const web = beta.services.web!;
    const rawWeb = rawBeta.services.web!;
    assert.deepEqual(web.hosts, rawWeb.hosts);
    assert.equal(web.root, rawWeb.root);
    assert.equal(web.listen, rawWeb.listen);
    assert.deepEqual(web.slots, {
      a: { name: 'a', port: rawWeb.slots.a.port, dir: `${rawWeb.root}/a`, backend: 'web_a' },
      b: { name: 'b', port: rawWeb.slots.b.port, dir: `${rawWeb.root}/b`, backend: 'web_b' },
    });
    assert.equal(web.stop, undefined);
    assert.equal(web.stopTimeoutMs, 10_000);
    assert.deepEqual(web.exclude, []);
    assert.deepEqual(web.health, {
      path: '/health', expectStatus: [200], attemptTimeoutMs: 1000, intervalMs: 100, deadlineMs: rawWeb.health?.deadlineMs ?? 15_000,
    });
    assert.equal(web.drainTimeoutMs, rawWeb.drainTimeoutMs ?? 30_000);
    assert.equal(dev.services.web?.drainTimeoutMs, rawDev.services.web?.drainTimeoutMs ?? 30_000);
    assert.deepEqual(dev.services.web?.slots.b, { name: 'b', port: rawDev.services.web!.slots.b.port, dir: `${rawDev.services.web!.root}/b`, backend: 'web_b' });
    assert.equal(beta.parallel, 16);
    assert.equal(beta.keepReleases, 5);

    // The resolved model is read-only all the way down to the slots.
    for (const o of [beta, beta.hosts, beta.hosts.beta1, beta.services, web, web.slots, web.slots.a, beta.loadBalancers.lb]) {
      assert.ok(Object.isFrozen(o));
    }
  } finally {
    await rm(stateDir, { recursive: true, force: true });
  }
});

test('a host overrides ssh: user, port and key; ~/ and relative key paths become absolute', async () => {
  await withProject({
    dev: `source: { path: app }
ssh: { user: deploy, port: 2200, key: keys/deploy, knownHosts: ~/fleet/known_hosts, connectTimeoutMs: 3000, commandTimeoutMs: 60000 }
hosts:
  web1: { address: 10.0.0.1 }
  web2: { address: 10.0.0.2, user: admin, port: 22, key: ~/.ssh/web2 }
  web3: { address: 10.0.0.3, key: /etc/keys/web3 }
${LB}${SERVICES}`,
  }, async (project) => {
    const dev = await loadProfile(project, 'dev');
    assert.deepEqual(dev.hosts.web1, {
      name: 'web1', address: '10.0.0.1', port: 2200, user: 'deploy', key: join(project.dir, 'keys', 'deploy'),
      knownHosts: join(homedir(), 'fleet', 'known_hosts'), connectTimeoutMs: 3000, commandTimeoutMs: 60_000,
    });
    assert.equal(dev.hosts.web2?.user, 'admin');
    assert.equal(dev.hosts.web2?.port, 22);
    assert.equal(dev.hosts.web2?.key, join(homedir(), '.ssh', 'web2'));
    assert.equal(dev.hosts.web3?.key, '/etc/keys/web3');
    assert.deepEqual(dev.source, { kind: 'path', path: join(project.dir, 'app') });
  });
});

test('without ssh: hosts default to root on port 22 with the ssh-agent and ~/.ssh/known_hosts', async () => {
  await withProject({ dev: `source: { path: /opt/app }\nhosts:\n  web1: { address: web1.example.net }\n${LB}${SERVICES}` }, async (project) => {
    const dev = await loadProfile(project, 'dev');
    assert.deepEqual(dev.hosts.web1, {
      name: 'web1', address: 'web1.example.net', port: 22, user: 'root', key: undefined,
      knownHosts: join(homedir(), '.ssh', 'known_hosts'), connectTimeoutMs: 10_000, commandTimeoutMs: 600_000,
    });
    assert.deepEqual(dev.source, { kind: 'path', path: '/opt/app' });
    assert.equal(dev.loadBalancers.lb?.address, '127.0.0.1');
  });
});

test('a local load balancer\'s paths resolve against the project; a remote one\'s are kept as written', async () => {
  await withProject({
    dev: `source: { path: app }
hosts:
  web1: { address: 10.0.0.1 }
  lb1: { address: 10.0.0.9 }
loadBalancers:
  local: { socket: run/admin.sock, mapFile: ./run/slots.map, timeoutMs: 500 }
  remote: { host: lb1, socket: /run/haproxy/admin.sock, mapFile: /etc/haproxy/slots.map, address: 10.0.0.9 }
${SERVICES}`,
  }, async (project) => {
    const dev = await loadProfile(project, 'dev');
    assert.deepEqual(dev.loadBalancers.local, {
      name: 'local', socket: join(project.dir, 'run', 'admin.sock'), mapFile: join(project.dir, 'run', 'slots.map'),
      host: undefined, address: '127.0.0.1', timeoutMs: 500,
    });
    assert.deepEqual(dev.loadBalancers.remote, {
      name: 'remote', socket: '/run/haproxy/admin.sock', mapFile: '/etc/haproxy/slots.map', host: 'lb1', address: '10.0.0.9', timeoutMs: 2000,
    });
  });
});

test('slot dirs default to {root}/a and {root}/b, a trailing slash on root is dropped, an explicit dir is kept', async () => {
  await withProject({
    dev: `source: { path: app }
hosts:
  web1: { address: 10.0.0.1 }
${LB}services:
  web:
    hosts: [web1]
    root: /srv/web/
    listen: 8080
    slots:
      a: { port: 8001 }
      b: { port: 8002, dir: /srv/web/green }
    start: ./server --port {port}
    stop: ./server --stop {port}
    exclude: [node_modules, "*.log"]
    health: { path: /up, expectStatus: [200, 204] }
parallel: 1
keepReleases: 2
`,
  }, async (project) => {
    const dev = await loadProfile(project, 'dev');
    const web = dev.services.web!;
    assert.equal(web.root, '/srv/web');
    assert.equal(web.slots.a.dir, '/srv/web/a');
    assert.equal(web.slots.b.dir, '/srv/web/green');
    assert.equal(web.stop, './server --stop {port}');
    assert.deepEqual(web.exclude, ['node_modules', '*.log']);
    assert.deepEqual(web.health, { path: '/up', expectStatus: [200, 204], attemptTimeoutMs: 1000, intervalMs: 100, deadlineMs: 15_000 });
    assert.equal(dev.parallel, 1);
    assert.equal(dev.keepReleases, 2);
  });
});

test('loadPipeline follows from: across three stages and returns the target first', async () => {
  const stage = (first: string) => `${first}\nhosts:\n  web1: { address: 10.0.0.1 }\n${LB}${SERVICES}`;
  await withProject({ dev: stage('source: { path: app }'), beta: stage('from: dev'), prod: stage('from: beta') }, async (project) => {
    const chain = await loadPipeline(project, 'prod');
    assert.deepEqual(chain.map((s) => [s.name, s.file, s.from]), [
      ['prod', join('profiles', 'prod.yaml'), 'beta'], ['beta', join('profiles', 'beta.yaml'), 'dev'], ['dev', join('profiles', 'dev.yaml'), undefined],
    ]);
  });
});

test('every problem of a file is reported at once, each unknown key on its own line', async () => {
  await withProject({
    dev: `source: { path: app }
hosts:
  web1: { address: 10.0.0.1, ip: 10.0.0.1, role: web }
${LB}services:
  web:
    hosts: [web1]
    root: srv/web
    listen: 80800
    slots:
      a: { port: 8001 }
      b: { port: 8002 }
    start: ./server --port {port}
`,
  }, async (project) => {
    const err = await loadProfile(project, 'dev').then(() => assert.fail('accepted'), (e: unknown) => e);
    assert.ok(err instanceof ConfigError);
    assert.deepEqual(err.issues.map((i) => [i.path, i.line]), [
      ['hosts.web1.ip', 3], ['hosts.web1.role', 3], ['services.web.root', 9], ['services.web.listen', 10],
    ]);
    assert.match(err.message, /^profiles\/dev\.yaml:3: hosts\.web1\.ip: unknown key \(allowed here: address, user, port, key, vars\)$/m);
  });
});

test('cross-field rules run only on a profile whose fields are valid, and report every rule broken', async () => {
  await withProject({
    dev: `from: dev
hosts:
  web1: { address: 10.0.0.1 }
${LB}services:
  web:
    hosts: [web1, web2]
    root: /srv/web
    listen: 8080
    slots:
      a: { port: 8001 }
      b: { port: 8001 }
    start: ./server --port {port} {colour}
`,
  }, async (project) => {
    const err = await loadProfile(project, 'dev').then(() => assert.fail('accepted'), (e: unknown) => e);
    assert.ok(err instanceof ConfigError);
    assert.deepEqual(err.issues.map((i) => [i.path, i.line]).sort(), [
      ['from', 1], ['services.web.hosts.1', 8], ['services.web.slots.b.port', 13], ['services.web.start', 14],
    ]);
  });
});

const LB_LOCAL = 'loadBalancers:\n  lb: { socket: run/admin.sock, mapFile: run/slots.map }\n';

test('a bad releaseName, a ref without git and a config path outside the release are refused naming file, line and path', async () => {
  const text = `source: { path: app, ref: v1 }\nreleaseName: "{date}-{sha}"\nhosts:\n  web1: { address: 10.0.0.1 }\n${LB_LOCAL}${SERVICES}    configFiles:\n      - { template: ../etc/app.tmpl, path: app.env }\n`;
  await withProject({ dev: text }, async (project) => {
    const err = await loadProfile(project, 'dev').then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof ConfigError);
    assert.deepEqual(err.message.split('\n'), [
      'profiles/dev.yaml:17: services.web.configFiles.0.template: expected a path inside the release: relative, of letters, digits, ".", "_", "-" and "/", without ".."',
    ]);
  });
  await withProject({ dev: text.replace('../etc/app.tmpl', 'etc/app.tmpl') }, async (project) => {
    const err = await loadProfile(project, 'dev').then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof ConfigError);
    assert.deepEqual(err.message.split('\n'), [
      'profiles/dev.yaml:1: source.ref: a ref is only used with "git: <repository>"',
      'profiles/dev.yaml:2: releaseName: unknown placeholder {sha} (allowed: {data} {date} {version} {rev} {hash})',
    ]);
  });
});

test('a git source resolves to the repository\'s absolute path (file:// URLs too) and keeps its ref; releaseName falls back stage -> default', async () => {
  const text = (source: string, extra = '') => `source: ${source}\n${extra}hosts:\n  web1: { address: 10.0.0.1 }\n${LB_LOCAL}${SERVICES}`;
  await withProject({ dev: text('{ git: ../repo, ref: v1.4.0 }') }, async (project) => {
    const dev = await loadProfile(project, 'dev');
    assert.deepEqual(dev.source, { kind: 'git', repo: join(project.dir, '..', 'repo'), ref: 'v1.4.0' });
    assert.equal(dev.services.web?.releaseName, '{date}-{version}-{hash}');
    assert.deepEqual(dev.services.web?.configFiles, []);
  });
  await withProject({ dev: text('{ git: "file:///srv/git/app.git", ref: main }', 'releaseName: "{data}-{date}-{version}-{rev}"\n') }, async (project) => {
    const dev = await loadProfile(project, 'dev');
    assert.deepEqual(dev.source, { kind: 'git', repo: '/srv/git/app.git', ref: 'main' });
    assert.equal(dev.services.web?.releaseName, '{data}-{date}-{version}-{rev}');
  });
  await withProject({ dev: text('{ git: ../repo, ref: "-v" }') }, async (project) => {
    await assert.rejects(loadProfile(project, 'dev'), /profiles\/dev.yaml:1: source.ref: expected a git tag, branch or commit .*not starting with "-"/);
  });
});
