/*
 * The rsync tunnel (src/transport/tunnel.ts) with its bash client, end to end on this machine: the
 * "remote" side is a local bash behind a StreamingTransport, so what crosses is exactly what rsync
 * would see: stdin to the command, its stdout back, its stderr and exit status passed on by the client.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { ExecTunnel, type StreamingTransport } from '../../src/transport/tunnel.js';
import { TUNNEL_ENV } from '../../src/transport/tunnel-client.js';
import { TUNNEL_RSH } from '../../src/commands/relay.js';

const localBash: StreamingTransport = {
  async stream(command) {
    const child = spawn('bash', ['-c', command], { stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdin.on('error', () => { /* the command exited without reading all its input */ });
    const { Duplex } = await import('node:stream');
    const channel = Duplex.from({ readable: child.stdout, writable: child.stdin }) as ReturnType<typeof Duplex.from> & { stderr: NodeJS.ReadableStream };
    channel.stderr = child.stderr;
    const exit = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? 255)));
    return { channel, exit };
  },
};

/** Splits an -e string as rsync does (main.c do_cmd): on spaces, honouring single and double quotes. */
function rsyncSplit(text: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quote = '';
  for (const c of text) {
    if (!quote && c === ' ') { if (word !== undefined) words.push(word); word = undefined; continue; }
    if (!quote && (c === "'" || c === '"')) { quote = c; word ??= ''; continue; }
    if (quote && c === quote) { quote = ''; continue; }
    word = (word ?? '') + c;
  }
  if (word !== undefined) words.push(word);
  return words;
}

test('the tunnel route\'s remote shell is one constant text: bash evaluating the client from the environment', () => {
  assert.deepEqual(rsyncSplit(TUNNEL_RSH).map((w, i) => (i === 2 ? w.slice(0, 36) : w)), ['bash', '-c', 'eval "${UPDATESERVER_TUNNEL_CLIENT:-', 'updateserver-tunnel']);
});

function runClient(tunnel: ExecTunnel, args: string[], input: string, env: NodeJS.ProcessEnv = tunnel.env()): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const [shell, ...rest] = rsyncSplit(TUNNEL_RSH);
  return new Promise((resolve, reject) => {
    const child = spawn(shell!, [...rest, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    // A client that refuses (wrong or missing token) exits before reading its input: writing to it then
    // fails with EPIPE, which is not what these tests are about (the exit status and output are).
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}

test('the bash client relays stdin, stdout, stderr and the exit status of the command on the named host', async () => {
  const asked: string[] = [];
  const tunnel = await ExecTunnel.open((host) => { asked.push(host); return host === 'web1' ? localBash : undefined; });
  try {
    const r = await runClient(tunnel, ['web1', 'tr', 'a-z', 'A-Z;', 'echo', 'oops', '>&2;', 'exit', '3'], 'hello\n'.repeat(20_000));
    assert.equal(r.stdout, 'HELLO\n'.repeat(20_000));
    assert.equal(r.stderr, 'oops\n');
    assert.equal(r.code, 3);
    assert.deepEqual(asked, ['web1']);
    const ok = await runClient(tunnel, ['web1', 'cat'], 'x');
    assert.deepEqual(ok, { code: 0, stdout: 'x', stderr: '' });
  } finally {
    await tunnel.close();
  }
});

test('a host without a connection: exit 255 and the reason on stderr', async () => {
  const tunnel = await ExecTunnel.open(() => undefined);
  try {
    const r = await runClient(tunnel, ['nowhere', 'true'], '');
    assert.equal(r.code, 255);
    assert.equal(r.stderr, 'updateserver has no SSH connection to nowhere\n');
  } finally {
    await tunnel.close();
  }
});

test('the token is required: a wrong one is dropped, and the client run outside updateserver refuses', async () => {
  let ran = 0;
  const tunnel = await ExecTunnel.open(() => { ran += 1; return localBash; });
  try {
    const [port, token, dir] = tunnel.env()[TUNNEL_ENV]!.split(' ');
    assert.match(token!, /^[0-9a-f]{64}$/);
    const wrong = `${port} ${'0'.repeat(64)} ${dir}`;
    const r = await runClient(tunnel, ['web1', 'echo', 'hi'], '', { ...tunnel.env(), [TUNNEL_ENV]: wrong });
    assert.equal(r.stdout, '');
    assert.equal(r.code, 255);
    const outside = await runClient(tunnel, ['web1', 'echo', 'hi'], '', { PATH: process.env.PATH });
    assert.equal(outside.code, 255);
    assert.match(outside.stderr, /run by rsync within updateserver only/);
    // A raw connection sending garbage is closed without a command being run.
    await new Promise<void>((resolve) => {
      const s = connect(Number(port), '127.0.0.1', () => s.write('hello\n'));
      s.on('close', () => resolve());
      s.on('error', () => resolve());
    });
    assert.equal(ran, 0);
    // The token is not in the command line rsync is given: that is the same text in every run.
    assert.doesNotMatch(TUNNEL_RSH, new RegExp(token!));
  } finally {
    await tunnel.close();
  }
});

test('a command that exits without reading all its input (rsync failing on ENOSPC) ends the client; it does not hang on the input', async () => {
  const tunnel = await ExecTunnel.open(() => localBash);
  try {
    // 64 MB of input, far more than any pipe or socket buffer: the sender is still writing when the command exits.
    const run = runClient(tunnel, ['web1', 'head', '-c', '10', '>/dev/null;', 'echo', '"write failed: No space left on device (28)"', '>&2;', 'exit', '11'], 'x'.repeat(64 * 1024 * 1024));
    const timeout = new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 10_000).unref());
    const r = await Promise.race([run, timeout]);
    assert.notEqual(r, 'hung', 'the client ended within 10 s');
    assert.deepEqual(r, { code: 11, stdout: '', stderr: 'write failed: No space left on device (28)\n' });
  } finally {
    await tunnel.close();
  }
});
