/*
 * The runtime API client against a real HAProxy (Debian's 2.6), started here in a temporary directory.
 * Its servers have no health checks: nothing listens behind most of them, and checks would flip the
 * statuses these tests read. The frontend listens on a UNIX socket so no TCP port can collide.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { LoadBalancerError } from '../../src/errors.js';
import { Haproxy } from '../../src/lb/haproxy.js';
import { recogniseReply, type ReplyKind } from '../../src/lb/replies.js';
import { localSocket, RuntimeClient } from '../../src/lb/runtime-client.js';

const H1 = '127.0.8.11';
const H2 = '127.0.8.12';

let dir: string;
let mapFile: string;
let haproxyProcess: ChildProcess | undefined;
let haproxyLog = '';
/** An app on h1's web_a slot that takes requests and never answers, so sessions stay open. */
let holdingApp: Server;
let appPort: number;
let haproxy: Haproxy;
let raw: RuntimeClient;
let userLevel: Haproxy;

function config(appPort: number): string {
  return `global
    stats socket ${dir}/admin.sock mode 600 level admin
    stats socket ${dir}/user.sock mode 600 level user

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s

frontend web
    bind unix@${dir}/web.sock
    use_backend %[str(web),map(${mapFile},web_a)]

backend web_a
    server h1 ${H1}:${appPort}
    server h2 ${H2}:18101

backend web_b
    server h1 ${H1}:18102
    server h2 ${H2}:18102
`;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'haproxy-runtime-'));
  mapFile = join(dir, 'live.map');
  holdingApp = createServer(() => {});
  await new Promise<void>((resolve) => holdingApp.listen(0, H1, resolve));
  await writeFile(mapFile, 'web web_a\n');
  appPort = (holdingApp.address() as AddressInfo).port;
  await writeFile(join(dir, 'haproxy.cfg'), config(appPort));

  const child = spawn('haproxy', ['-db', '-f', join(dir, 'haproxy.cfg')], { stdio: ['ignore', 'pipe', 'pipe'] });
  haproxyProcess = child;
  child.stdout.on('data', (d: Buffer) => { haproxyLog += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { haproxyLog += d.toString(); });
  const lb = { name: 'lb-test', socket: join(dir, 'admin.sock'), mapFile, host: undefined, address: '127.0.8.1', timeoutMs: 2000 };
  haproxy = Haproxy.forLoadBalancer(lb);
  raw = new RuntimeClient({ name: lb.name, connect: localSocket(lb.socket), timeoutMs: 2000 });
  userLevel = Haproxy.forLoadBalancer({ ...lb, socket: join(dir, 'user.sock') });

  // Ready once the socket answers; a config error ends the process first.
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`haproxy exited with ${child.exitCode}:\n${haproxyLog}`);
    try {
      await haproxy.info();
      break;
    } catch (err) {
      if (i >= 50) throw new Error(`haproxy did not answer on its socket within 5 s:\n${haproxyLog}`, { cause: err });
      await sleep(100);
    }
  }
});

after(async () => {
  const child = haproxyProcess;
  if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    process.kill(child.pid, 'SIGTERM');
    await Promise.race([exited, sleep(3000)]);
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
  }
  holdingApp.closeAllConnections();
  await new Promise((resolve) => holdingApp.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

const statusOf = async (backend: string, server: string): Promise<string | undefined> =>
  (await haproxy.showStat()).find((row) => row.proxy === backend && row.server === server)?.status;

describe('HAProxy runtime API (real haproxy 2.6)', () => {
  test('info reads show info of the running process', async () => {
    const info = await haproxy.info();
    assert.equal(info.Name, 'HAProxy');
    assert.match(info.Version ?? '', /^2\./);
    assert.equal(Number(info.Pid), haproxyProcess?.pid);
  });

  test('showStat lists both slots with one server per host', async () => {
    const rows = await haproxy.showStat();
    const servers = rows.filter((row) => row.type === 'server').map((row) => [row.proxy, row.server, row.addr, row.status]);
    assert.deepEqual(servers, [
      ['web_a', 'h1', `${H1}:${appPort}`, 'no check'],
      ['web_a', 'h2', `${H2}:18101`, 'no check'],
      ['web_b', 'h1', `${H1}:18102`, 'no check'],
      ['web_b', 'h2', `${H2}:18102`, 'no check'],
    ]);
    assert.deepEqual(rows.filter((row) => row.type !== 'server').map((row) => `${row.proxy}/${row.server}`),
      ['web/FRONTEND', 'web_a/BACKEND', 'web_b/BACKEND']);
  });

  test('showMap reads the map loaded from the file; setMap switches the service', async () => {
    assert.deepEqual(await haproxy.showMap(mapFile), [{ key: 'web', value: 'web_a' }]);
    assert.equal(await haproxy.setMap(mapFile, 'web', 'web_b'), 'updated');
    assert.deepEqual(await haproxy.showMap(mapFile), [{ key: 'web', value: 'web_b' }]);
    assert.equal(await haproxy.setMap(mapFile, 'web', 'web_a'), 'updated');
    assert.deepEqual(await haproxy.showMap(mapFile), [{ key: 'web', value: 'web_a' }]);
  });

  test('setMap falls back to add map for a key the map does not have', async () => {
    assert.equal(await haproxy.setMap(mapFile, 'api', 'api_a'), 'added');
    assert.equal(await haproxy.setMap(mapFile, 'api', 'api_b'), 'updated');
    assert.deepEqual(await haproxy.showMap(mapFile), [{ key: 'web', value: 'web_a' }, { key: 'api', value: 'api_b' }]);
  });

  test('serverState drain / maint / ready is what show stat then reports', async () => {
    await haproxy.serverState('web_b', 'h1', 'drain');
    assert.equal(await statusOf('web_b', 'h1'), 'DRAIN');
    await haproxy.serverState('web_b', 'h1', 'maint');
    assert.equal(await statusOf('web_b', 'h1'), 'MAINT');
    await haproxy.serverState('web_b', 'h1', 'ready');
    assert.equal(await statusOf('web_b', 'h1'), 'no check');
  });

  test('serverHealth down / up is what show stat then reports', async () => {
    await haproxy.serverHealth('web_b', 'h2', 'down');
    assert.equal(await statusOf('web_b', 'h2'), 'DOWN');
    await haproxy.serverHealth('web_b', 'h2', 'up');
    assert.equal(await statusOf('web_b', 'h2'), 'no check');
  });

  test('sessions counts a request in flight; shutdownSessions ends it', async () => {
    assert.equal(await haproxy.sessions('web_a'), 0);
    // HAProxy answers for the server it cut off, so the client sees a response, not a reset.
    const answered = new Promise<number | string>((resolve) => {
      const req = request({ socketPath: join(dir, 'web.sock'), path: '/slow' });
      req.on('error', (err) => resolve(err.message));
      req.on('response', (res) => { res.resume(); resolve(res.statusCode ?? 0); });
      req.end();
    });
    let open = 0;
    for (let i = 0; i < 50 && open === 0; i++) {
      open = await haproxy.sessions('web_a');
      if (open === 0) await sleep(50);
    }
    assert.equal(open, 1);
    assert.equal(await haproxy.sessions('web_b'), 0);
    await haproxy.shutdownSessions('web_a', 'h1');
    assert.equal(await answered, 502);
    assert.equal(await haproxy.sessions('web_a'), 0);
  });

  test('refusals become LoadBalancerErrors carrying HAProxy\'s sentence', async () => {
    await assert.rejects(haproxy.serverState('web_x', 'h1', 'drain'), (err: unknown) => {
      assert.ok(err instanceof LoadBalancerError);
      assert.equal(err.loadBalancer, 'lb-test');
      assert.equal(err.message, 'load balancer lb-test: HAProxy refused "set server web_x/h1 state drain": No such backend.');
      return true;
    });
    await assert.rejects(haproxy.serverHealth('web_a', 'h9', 'up'),
      { name: 'LoadBalancerError', message: 'load balancer lb-test: HAProxy refused "set server web_a/h9 health up": No such server.' });
    await assert.rejects(haproxy.shutdownSessions('web_x', 'h1'), { name: 'LoadBalancerError', message: /No such backend\.$/ });
    await assert.rejects(haproxy.showMap(join(dir, 'other.map')), { name: 'LoadBalancerError', message: /Unknown map identifier\. Please use #<id> or <file>\.$/ });
    await assert.rejects(haproxy.setMap(join(dir, 'other.map'), 'web', 'web_b'), { name: 'LoadBalancerError', message: /Unknown map identifier/ });
    await assert.rejects(haproxy.sessions('web_x'), { name: 'LoadBalancerError', message: 'load balancer lb-test: backend web_x is not in show stat' });
  });

  test('a socket without level admin is refused server changes, with a hint', async () => {
    await assert.rejects(userLevel.serverState('web_a', 'h1', 'drain'), (err: unknown) => {
      assert.ok(err instanceof LoadBalancerError);
      assert.equal(err.message, 'load balancer lb-test: HAProxy refused "set server web_a/h1 state drain": Permission denied');
      assert.match(err.hint ?? '', /level admin/);
      return true;
    });
  });

  test('HAProxy 2.6 checks no level for map commands: a level user socket can switch traffic', async () => {
    // Not something we rely on; pinned so that the socket's file mode stays documented as the real guard.
    assert.equal(await userLevel.setMap(mapFile, 'web', 'web_b'), 'updated');
    assert.deepEqual((await haproxy.showMap(mapFile))[0], { key: 'web', value: 'web_b' });
    await haproxy.setMap(mapFile, 'web', 'web_a');
  });

  test('every refusal replies.ts knows by text is the sentence this HAProxy sends', async () => {
    const cases: Array<[string, ReplyKind]> = [
      ['set server web_x/h1 state drain', 'noSuchBackend'],
      ['set server web_a/h9 state drain', 'noSuchServer'],
      ['shutdown sessions server web_a', 'requireBackendServer'],
      [`show map ${dir}/other.map`, 'unknownMap'],
      [`set map ${mapFile} nokey web_b`, 'entryNotFound'],
      ['frobnicate', 'unknownCommand'],
      ['set server web_a/h1 state bogus', 'setServerState'],
      ['set server web_a/h1 health bogus', 'setServerHealth'],
      ['set server web_a/h1 bogus', 'setServerUsage'],
      [`set map ${mapFile} web`, 'setMapArguments'],
      [`add map ${mapFile} web`, 'addMapArguments'],
    ];
    for (const [command, kind] of cases) {
      const reply = await raw.command(command);
      assert.equal(recogniseReply(reply), kind, `${command} -> ${JSON.stringify(reply)}`);
    }
    const user = new RuntimeClient({ name: 'lb-test', connect: localSocket(join(dir, 'user.sock')), timeoutMs: 2000 });
    assert.equal(recogniseReply(await user.command('set server web_a/h1 state drain')), 'permissionDenied');
    // Success is the empty line.
    assert.equal(await raw.command('set server web_b/h1 state ready'), '\n');
  });
});
