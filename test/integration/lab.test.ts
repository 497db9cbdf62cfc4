// The lab itself: hosts reachable over strict SSH with private /srv, rsync, the sample app started
// detached, HAProxy in front with hitless reloads under load, and a stop() that leaves nothing behind.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../lab/exec.js';
import { haproxyCommand } from '../lab/lab-haproxy.js';
import { identify } from '../lab/processes.js';
import { startLab, type Lab, type LabHaproxy, type LabHost } from '../lab/lab.js';
import { startLoad } from '../lab/load.js';
import { rsyncTo, sampleAppDir, ssh, sshOptions, startSampleApp } from '../lab/remote.js';

const FRONTEND = '127.0.9.1:18080';
const APP_PORT = 8002;
const TIMEOUT = { timeout: 60_000 };

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function haproxyConfig(paths: { socket: string }): string {
  return `global
  stats socket ${paths.socket} mode 600 level admin
defaults
  mode http
  option redispatch
  retries 3
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 5s
frontend web
  bind ${FRONTEND}
  default_backend app
backend app
  server h1 127.0.9.11:${APP_PORT} check inter 500ms
  server h2 127.0.9.12:${APP_PORT} check inter 500ms
`;
}

function pidsMentioning(text: string): number[] {
  return readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).map(Number).filter((pid) => {
    if (pid === process.pid) return false;
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(text);
    } catch {
      return false;
    }
  });
}

let lab: Lab;
let h1: LabHost;
let h2: LabHost;
let haproxy: LabHaproxy;
const appPids: number[] = [];

after(async () => {
  await lab?.stop();
});

test('startLab refuses addresses outside 127.0.0.0/8', async () => {
  await assert.rejects(startLab({ hosts: [{ name: 'x', address: '10.0.0.1' }] }), /127\.0\.0\.0\/8/);
  assert.throws(() => startLoad('http://10.0.0.1/'), /127\.0\.0\.0\/8/);
});

test('starts two hosts', TIMEOUT, async () => {
  const started = Date.now();
  lab = await startLab({ hosts: [{ name: 'h1', address: '127.0.9.11' }, { name: 'h2', address: '127.0.9.12' }] });
  const elapsed = Date.now() - started;
  assert.equal(lab.hosts.length, 2);
  [h1, h2] = lab.hosts as [LabHost, LabHost];
  assert.deepEqual(lab.hosts.map((host) => [host.name, host.address, host.port]), [['h1', '127.0.9.11', 2222], ['h2', '127.0.9.12', 2222]]);
  assert.ok(elapsed < 5000, `lab start took ${elapsed} ms`);
  const knownHosts = readFileSync(lab.knownHosts, 'utf8');
  assert.match(knownHosts, /^\[127\.0\.9\.11\]:2222 ssh-ed25519 AAAA\S+$/m);
  assert.match(knownHosts, /^\[127\.0\.9\.12\]:2222 ssh-ed25519 AAAA\S+$/m);
});

test('ssh with the lab key and strict host keys reaches a host, whose /srv is its own', TIMEOUT, async () => {
  const result = await run('ssh', ['-i', lab.keyFile, '-o', `UserKnownHostsFile=${lab.knownHosts}`, '-o', 'StrictHostKeyChecking=yes',
    '-o', 'BatchMode=yes', '-p', '2222', 'root@127.0.9.11', 'touch /srv/x']);
  assert.equal(result.code, 0, result.stderr);
  assert.ok(existsSync(join(h1.srv, 'x')), 'the file is in host 1 srv dir');
  assert.ok(!existsSync(join(h2.srv, 'x')), 'and not in host 2 srv dir');
  assert.equal((await ssh(lab, h2, 'ls -A /srv')).trim(), '');
  assert.equal((await ssh(lab, h1, 'ls -A /srv')).trim(), 'x');
  // Sessions find the node and rsync this machine uses.
  assert.match(await ssh(lab, h1, 'node --version && command -v rsync'), /^v\d+\.\d+\.\d+\n\S*rsync\n$/);
});

test('a host whose key is not in known_hosts is refused', TIMEOUT, async () => {
  const emptyKnownHosts = join(lab.dir, 'empty_known_hosts');
  writeFileSync(emptyKnownHosts, '');
  const result = await run('ssh', [...sshOptions({ keyFile: lab.keyFile, knownHosts: emptyKnownHosts }, h1), 'root@127.0.9.11', 'true']);
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /Host key verification failed/);
});

test('rsync over ssh copies the sample app to each host', TIMEOUT, async () => {
  for (const host of [h1, h2]) await rsyncTo(lab, host, sampleAppDir, '/srv/app');
  assert.equal(readFileSync(join(h1.srv, 'app', 'VERSION'), 'utf8').trim(), '1.0.0');
  assert.ok(existsSync(join(h2.srv, 'app', 'server.mjs')));
  assert.equal((await ssh(lab, h2, 'cat /srv/app/VERSION')).trim(), '1.0.0');
});

test('the sample app started detached over ssh answers on its host address', TIMEOUT, async () => {
  // The exact command the orchestrator's docs give; ssh must return at once, the app must outlive it.
  const started = Date.now();
  await ssh(lab, h1, `setsid sh -c 'cd /srv/app && exec node server.mjs --host 127.0.9.11 --port ${APP_PORT} --slot a --release r1' </dev/null >/srv/app.log 2>&1 &`);
  assert.ok(Date.now() - started < 5000, 'ssh returned although the app keeps running');
  await startSampleApp(lab, h2, { port: APP_PORT, slot: 'a', release: 'r2' });
  for (const [host, release] of [[h1, 'r1'], [h2, 'r2']] as const) {
    const response = await fetchWhenUp(`http://${host.address}:${APP_PORT}/`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('x-release'), release);
    assert.equal(response.headers.get('x-slot'), 'a');
    const body = await response.json() as { version: string; release: string; slot: string; host: string; pid: number };
    assert.deepEqual({ ...body, pid: 0 }, { version: '1.0.0', release, slot: 'a', host: host.address, pid: 0 });
    assert.ok(identify(body.pid));
    appPids.push(body.pid);
  }
  assert.equal((await fetch(`http://127.0.9.11:${APP_PORT}/health`).then((r) => r.text())), 'ok');
});

async function fetchWhenUp(url: string): Promise<Response> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fetch(url);
    } catch (error) {
      if (attempt > 200) throw error;
      await sleep(25);
    }
  }
}

test('startHaproxy rejects an invalid config with haproxy\'s own message', TIMEOUT, async () => {
  await assert.rejects(lab.startHaproxy('broken', (paths) => `global\n  stats socket ${paths.socket} level admin\nfrontend f\n  bind 127.0.9.1:18081\n  no-such-keyword here\n`),
    (error: Error) => /haproxy rejected/.test(error.message) && /no-such-keyword/.test(error.message));
});

test('HAProxy in front: load through it completes with zero failures', TIMEOUT, async () => {
  haproxy = await lab.startHaproxy('lb', haproxyConfig);
  assert.ok(identify(haproxy.pid));
  assert.match(await haproxyCommand(haproxy.socket, 'show info'), /^Name: HAProxy$/m);
  await waitUntilUp(haproxy, 2);
  const load = startLoad(`http://${FRONTEND}/`);
  await sleep(1000);
  const result = await load.stop();
  assert.equal(result.errors + result.timeouts + result.non2xx, 0, JSON.stringify(result));
  assert.ok(result.requests > 0);
  assert.equal(result.ok, result.requests);
  assert.ok((result.byRelease['r1'] ?? 0) > 0 && (result.byRelease['r2'] ?? 0) > 0, JSON.stringify(result.byRelease));
});

/** Until `up` servers of backend app pass their health checks. */
async function waitUntilUp(lb: LabHaproxy, up: number): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const stat = await haproxyCommand(lb.socket, 'show stat');
    if (stat.split('\n').filter((line) => line.startsWith('app,h') && line.split(',')[17] === 'UP').length >= up) return;
    await sleep(25);
  }
  throw new Error('backend servers did not come up');
}

test('HAProxy reloads under load with zero failures', TIMEOUT, async () => {
  const master = haproxy.pid;
  const workerPid = async () => /^Pid: (\d+)$/m.exec(await haproxyCommand(haproxy.socket, 'show info'))?.[1];
  const load = startLoad(`http://${FRONTEND}/`, { connections: 8 });
  await sleep(300);
  const workers = new Set([await workerPid()]);
  for (let i = 0; i < 3; i++) {
    await haproxy.reload();
    workers.add(await workerPid());
    await sleep(250);
  }
  const result = await load.stop();
  assert.equal(result.errors + result.timeouts + result.non2xx, 0, JSON.stringify(result));
  assert.ok(result.requests > 0);
  // HAProxy 2.6 closes the old worker's idle keep-alive connections: at most one request per
  // connection and reload may be lost that way, and clients (here, the load generator) retry it.
  assert.ok(result.retried <= 8 * 3, JSON.stringify(result));
  assert.equal(haproxy.pid, master, 'reload keeps the master');
  assert.equal(workers.size, 4, 'each reload started a new worker');
});

test('HAProxy restart starts a new master from the config on disk', TIMEOUT, async () => {
  const before = haproxy.pid;
  await haproxy.restart();
  assert.notEqual(haproxy.pid, before);
  assert.equal(identify(before), undefined);
  assert.ok(identify(haproxy.pid));
  await waitUntilUp(haproxy, 2);
  assert.equal((await fetch(`http://${FRONTEND}/health`)).status, 200);
});

test('stop() ends every process of the lab and removes its dir', TIMEOUT, async () => {
  const dir = lab.dir;
  const pids = [...lab.hosts.map((host) => host.pid), haproxy.pid, ...appPids, ...pidsMentioning(dir)];
  assert.ok(pids.length >= 5);
  for (const pid of pids) assert.ok(identify(pid), `pid ${pid} runs before stop()`);
  await lab.stop();
  const survivors = pids.filter((pid) => identify(pid) !== undefined);
  assert.deepEqual(survivors, [], `still running: ${survivors.join(', ')}`);
  assert.deepEqual(pidsMentioning(dir).filter((pid) => identify(pid) !== undefined), []);
  assert.ok(!existsSync(dir));
  await lab.stop(); // idempotent
});
