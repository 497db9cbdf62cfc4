import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { LoadBalancerError } from '../../src/errors.js';
import { describeSocketError, localSocket, RuntimeClient, runtimeWord } from '../../src/lb/runtime-client.js';

let dir: string;
before(() => { dir = mkdtempSync(join(tmpdir(), 'lb-client-')); });
after(() => rmSync(dir, { recursive: true, force: true }));

/** A UNIX socket server standing in for HAProxy: `answer` decides what each connection gets. */
async function fakeServer(name: string, answer: (socket: Socket, line: string) => void): Promise<{ path: string; server: Server; lines: string[] }> {
  const path = join(dir, name);
  const lines: string[] = [];
  const server = createServer((socket) => {
    let buffered = '';
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      buffered += chunk.toString();
      const nl = buffered.indexOf('\n');
      if (nl >= 0) { lines.push(buffered.slice(0, nl)); answer(socket, buffered.slice(0, nl)); }
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { path, server, lines };
}

const closeServer = (server: Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

describe('RuntimeClient', () => {
  test('sends the line, one command per connection, and returns the whole reply once the server closes', async () => {
    const { path, server, lines } = await fakeServer('answers.sock', (socket) => {
      socket.write('0x55f0 web ');
      setTimeout(() => socket.end('web_a\n\n'), 20);
    });
    const client = new RuntimeClient({ name: 'lb1', connect: localSocket(path), timeoutMs: 2000 });
    assert.equal(await client.command('show map /etc/haproxy/live.map'), '0x55f0 web web_a\n\n');
    assert.equal(await client.command('show info'), '0x55f0 web web_a\n\n');
    assert.deepEqual(lines, ['show map /etc/haproxy/live.map', 'show info']);
    await closeServer(server);
  });

  test('refuses a line holding a newline, a ";" or nothing, before connecting', async () => {
    let connects = 0;
    const client = new RuntimeClient({ name: 'lb1', connect: async () => { connects++; throw new Error('not reached'); }, timeoutMs: 100 });
    for (const line of ['show stat\nshutdown sessions server web_a/h1', 'set map m web web_b; show stat', 'show info\r', '', '  ']) {
      await assert.rejects(client.command(line), (err: unknown) => {
        assert.ok(err instanceof LoadBalancerError);
        assert.match(err.message, /^load balancer lb1: refused runtime command .*one command per call/);
        return true;
      });
    }
    assert.equal(connects, 0);
  });

  test('enforces the timeout against a server that never answers, and destroys the socket', async () => {
    let serverSideClosed!: () => void;
    const closed = new Promise<void>((resolve) => { serverSideClosed = resolve; });
    const { path, server } = await fakeServer('silent.sock', (socket) => { socket.once('close', () => serverSideClosed()); });
    const client = new RuntimeClient({ name: 'lb1', connect: localSocket(path), timeoutMs: 200 });
    const started = Date.now();
    await assert.rejects(client.command('show stat'), (err: unknown) => {
      assert.ok(err instanceof LoadBalancerError);
      assert.equal(err.loadBalancer, 'lb1');
      assert.equal(err.message, 'load balancer lb1: runtime command "show stat" timed out after 200 ms waiting for the reply');
      assert.match(err.hint ?? '', /may have taken effect/);
      return true;
    });
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 190 && elapsed < 1500, `rejected after ${elapsed} ms`);
    await closed;
    await closeServer(server);
  });

  test('the timeout covers connecting too: the command is then known not to have been sent', async () => {
    const client = new RuntimeClient({ name: 'lb1', connect: () => new Promise(() => {}), timeoutMs: 50 });
    await assert.rejects(client.command('set map /m web web_b'), {
      name: 'LoadBalancerError',
      message: 'load balancer lb1: runtime command "set map /m web web_b" timed out after 50 ms while connecting (command not sent)',
    });
  });

  test('a missing socket is named, with what to check', async () => {
    const path = join(dir, 'missing.sock');
    const client = new RuntimeClient({ name: 'lb1', connect: localSocket(path), timeoutMs: 1000 });
    await assert.rejects(client.command('show info'), (err: unknown) => {
      assert.ok(err instanceof LoadBalancerError);
      assert.equal(err.message,
        `load balancer lb1: socket ${path} not found: is HAProxy running and is \`stats socket ${path} ... level admin\` in its config? (command not sent: show info)`);
      assert.equal(((err.cause as Error).cause as NodeJS.ErrnoException).code, 'ENOENT');
      return true;
    });
  });

  test('a path where nothing listens is named', async () => {
    const path = join(dir, 'not-a-socket');
    writeFileSync(path, '');
    const client = new RuntimeClient({ name: 'lb1', connect: localSocket(path), timeoutMs: 1000 });
    await assert.rejects(client.command('show info'), new RegExp(`nothing listens on socket ${path}: HAProxy has stopped`));
  });

  test('permission errors name the socket and say who may open it', () => {
    const eacces = Object.assign(new Error('connect EACCES'), { code: 'EACCES' });
    assert.equal(describeSocketError('/run/haproxy/admin.sock', eacces),
      'permission denied on socket /run/haproxy/admin.sock: run as a user allowed by its `stats socket ... mode/user/group` settings (or as root)');
    const other = Object.assign(new Error('connect EINVAL /x'), { code: 'EINVAL' });
    assert.equal(describeSocketError('/x', other), 'cannot connect to socket /x: connect EINVAL /x');
  });

  test('a connection lost mid-reply is an error, never a truncated reply', async () => {
    const cutOff = (how: (stream: Duplex) => void) => async (): Promise<Duplex> => new Duplex({
      read() {},
      write(_chunk, _encoding, callback) {
        this.push('# pxname,svname,qcur\nweb,FRONTEND,');
        setImmediate(() => how(this));
        callback();
      },
    });
    const closed = new RuntimeClient({ name: 'lb1', connect: cutOff((s) => s.destroy()), timeoutMs: 1000 });
    await assert.rejects(closed.command('show stat'),
      { name: 'LoadBalancerError', message: 'load balancer lb1: connection closed before the reply to "show stat" was complete' });
    const failed = new RuntimeClient({ name: 'lb1', connect: cutOff((s) => s.destroy(new Error('channel reset'))), timeoutMs: 1000 });
    await assert.rejects(failed.command('show stat'),
      { name: 'LoadBalancerError', message: 'load balancer lb1: runtime command "show stat" failed: channel reset' });
  });

  test('an error from the connect function (e.g. an SSH forward) becomes a LoadBalancerError keeping its cause', async () => {
    const cause = new Error('lb-host: cannot open socket /run/haproxy/admin.sock through SSH: open failed');
    const client = new RuntimeClient({ name: 'lb1', connect: () => Promise.reject(cause), timeoutMs: 1000 });
    await assert.rejects(client.command('show stat'), (err: unknown) => {
      assert.ok(err instanceof LoadBalancerError);
      assert.equal(err.cause, cause);
      assert.equal(err.message, `load balancer lb1: ${cause.message} (command not sent: show stat)`);
      return true;
    });
  });
});

describe('runtimeWord', () => {
  test('passes names and paths through', () => {
    assert.equal(runtimeWord('backend', 'web_a'), 'web_a');
    assert.equal(runtimeWord('map file', '/etc/haproxy/live-stage.map'), '/etc/haproxy/live-stage.map');
  });

  test('refuses what would split or chain a command', () => {
    for (const bad of ['', 'web a', 'web;show', 'web\nshow', 'web\\', "we'b", 'we"b', 'web\t']) {
      assert.throws(() => runtimeWord('backend', bad), RangeError, JSON.stringify(bad));
    }
  });
});
