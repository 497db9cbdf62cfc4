/*
 * SshTransport when the connection dies under it: against an in-process ssh2 server that accepts a
 * session channel for an exec and then drops the TCP connection without answering it (a host that
 * vanishes mid-command). The operation must fail naming the host, not wait for ever; close() after
 * that must return.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import type { AddressInfo } from 'node:net';
import { SshTransport } from '../../src/transport/ssh.js';
import { HostError } from '../../src/errors.js';

const { Server, utils } = ssh2;

test('an exec whose connection is dropped before it gets an answer fails naming the host; close() then returns', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'us-ssh-lost-'));
  const hostKey = utils.generateKeyPairSync('ed25519');
  const userKey = utils.generateKeyPairSync('ed25519');
  const server = new Server({ hostKeys: [hostKey.private] }, (client) => {
    client.on('error', () => {});
    client.on('authentication', (ctx) => ctx.accept());
    client.on('ready', () => {
      // The channel opens, the command is asked for, and the host goes away without a word.
      client.on('session', (accept) => {
        const session = accept();
        session.on('exec', () => { client.end(); });
      });
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const port = (server.address() as AddressInfo).port;
  try {
    const publicKey = hostKey.public.split(' ').slice(0, 2).join(' ');
    await writeFile(join(dir, 'known_hosts'), `[127.0.0.1]:${port} ${publicKey}\n`);
    await writeFile(join(dir, 'key'), userKey.private);
    const t = await SshTransport.connect({
      name: 'web9', address: '127.0.0.1', port, user: 'root', key: join(dir, 'key'), knownHosts: join(dir, 'known_hosts'), connectTimeoutMs: 5000, commandTimeoutMs: 600_000,
    });
    const started = Date.now();
    await assert.rejects(t.exec('sleep 1000'), (err: Error) => {
      assert.ok(err instanceof HostError, String(err));
      assert.match(err.message, new RegExp(`^web9: the SSH connection to 127\\.0\\.0\\.1:${port} was lost$`));
      return true;
    });
    assert.ok(Date.now() - started < 5000, `failed after ${Date.now() - started} ms`);
    // Later operations fail at once, and close() returns although the connection is long gone.
    await assert.rejects(t.exec('true'), /web9: the SSH connection .* was lost/);
    await assert.rejects(t.stream('true'), /web9: the SSH connection .* was lost/);
    await t.close();
  } finally {
    server.close();
    await rm(dir, { recursive: true, force: true });
  }
});
