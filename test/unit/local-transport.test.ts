import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { alive } from './fixtures.js';
import { after, describe, test } from 'node:test';
import { CommandFailed, HostError } from '../../src/errors.js';
import { LocalTransport, runLocal } from '../../src/transport/local.js';
import { run } from '../../src/transport/transport.js';

const dir = mkdtempSync(join(tmpdir(), 'updateserver-local-'));
after(() => rmSync(dir, { recursive: true, force: true }));


describe('runLocal', () => {
  test('collects stdout and stderr and returns the exit code', async () => {
    assert.deepEqual(await runLocal(['bash', '-c', 'echo out; echo err >&2; printf more; exit 7']), { code: 7, stdout: 'out\nmore', stderr: 'err\n' });
    assert.deepEqual(await runLocal(['true']), { code: 0, stdout: '', stderr: '' });
  });

  test('passes argv without a shell: nothing is re-parsed', async () => {
    const r = await runLocal(['printf', '<%s>', 'a b', '$(id)', "it's", '*', '', 'x\ny']);
    assert.equal(r.stdout, "<a b><$(id)><it's><*><><x\ny>");
  });

  test('writes input to stdin and closes it', async () => {
    assert.equal((await runLocal(['cat'], { input: 'hello\nworld' })).stdout, 'hello\nworld');
    const big = 'line of input\n'.repeat(200_000);
    assert.equal((await runLocal(['cat'], { input: big })).stdout, big);
  });

  test('without input, stdin is closed at once (a reader does not hang)', async () => {
    assert.deepEqual(await runLocal(['cat'], { timeoutMs: 5000 }), { code: 0, stdout: '', stderr: '' });
  });

  test('uses the given environment', async () => {
    const r = await runLocal(['bash', '-c', 'printf "%s" "$UPDATESERVER_TEST"'], { env: { PATH: process.env.PATH, UPDATESERVER_TEST: 'from env' } });
    assert.equal(r.stdout, 'from env');
  });

  test('keeps multi-byte characters intact across output chunks', async () => {
    // One ASCII byte first, so that 2-byte characters straddle the pipe's chunk boundaries.
    const script = "process.stdout.write('x' + 'é'.repeat(300000)); process.stderr.write('y' + '✓'.repeat(100000))";
    const r = await runLocal([process.execPath, '-e', script]);
    assert.equal(r.code, 0);
    // Compared without printing 400,000 characters on failure.
    const broken = (s: string) => (s.match(/\uFFFD/g) ?? []).length;
    assert.ok(r.stdout === `x${'é'.repeat(300000)}`, `stdout: ${r.stdout.length} characters, ${broken(r.stdout)} replaced by U+FFFD`);
    assert.ok(r.stderr === `y${'✓'.repeat(100000)}`, `stderr: ${r.stderr.length} characters, ${broken(r.stderr)} replaced by U+FFFD`);
  });

  test('a command killed by a signal has code null', async () => {
    assert.equal((await runLocal(['bash', '-c', 'kill -KILL $$'])).code, null);
  });

  test('a command that ends before the timeout resolves normally', async () => {
    const t0 = Date.now();
    assert.deepEqual(await runLocal(['bash', '-c', 'sleep 0.05; echo done'], { timeoutMs: 5000 }), { code: 0, stdout: 'done\n', stderr: '' });
    assert.ok(Date.now() - t0 < 4000);
  });

  test('a command running past the timeout is killed and rejected with a HostError naming the host', async () => {
    const t0 = Date.now();
    await assert.rejects(runLocal(['sleep', '30'], { timeoutMs: 200, host: 'relay' }), (err: unknown) => {
      assert.ok(err instanceof HostError);
      assert.equal(err.host, 'relay');
      assert.equal(err.message, 'relay: sleep timed out after 200 ms');
      return true;
    });
    const ms = Date.now() - t0;
    assert.ok(ms >= 190 && ms < 2000, `rejected after ${ms} ms`);
  });

  test('the timeout holds even when the command\'s children keep its output open', async () => {
    // bash forks sleep, which inherits stdout/stderr: killing bash alone leaves the pipes open.
    const pidFile = join(dir, 'grandchild.pid');
    const t0 = Date.now();
    try {
      await assert.rejects(runLocal(['bash', '-c', `sleep 4 & echo $! > ${pidFile}; wait`], { timeoutMs: 300 }), /timed out after 300 ms/);
      const ms = Date.now() - t0;
      assert.ok(ms < 2000, `rejected after ${ms} ms, not at the 300 ms timeout`);
    } finally {
      const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : undefined;
      if (pid !== undefined && alive(pid) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('sleep')) process.kill(pid, 'SIGKILL');
    }
  });

  test('the timeout also ends the command\'s children', async () => {
    const pidFile = join(dir, 'child-of-timed-out.pid');
    await assert.rejects(runLocal(['bash', '-c', `sleep 30 & echo $! > ${pidFile}; wait`], { timeoutMs: 300 }), /timed out/);
    const pid = Number(readFileSync(pidFile, 'utf8'));
    const t0 = Date.now();
    while (alive(pid) && Date.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 20));
    const survived = alive(pid);
    if (survived) process.kill(pid, 'SIGKILL');
    assert.equal(survived, false, 'the child sleep outlived the timeout');
  });

  test('Ctrl-C of the orchestrator (SIGINT to its process group) also ends the command it runs', async () => {
    // The orchestrator, in a process group of its own so that the signal reaches nothing else of this test run.
    const pidFile = join(dir, 'interrupted.pid');
    const script = join(dir, 'orchestrator.mjs');
    const local = new URL('../../src/transport/local.js', import.meta.url).href;
    writeFileSync(script, `import { runLocal } from ${JSON.stringify(local)};\n` +
      `await runLocal(['bash', '-c', 'echo $$ > ${pidFile}; exec sleep 30']);\n`);
    const orchestrator = spawn(process.execPath, [script], { detached: true, stdio: 'ignore' });
    const exited = new Promise((resolve) => orchestrator.once('exit', resolve));
    const t0 = Date.now();
    while (!(existsSync(pidFile) && readFileSync(pidFile, 'utf8').endsWith('\n')) && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 20));
    const pid = Number(readFileSync(pidFile, 'utf8'));
    assert.ok(alive(pid));
    process.kill(-orchestrator.pid!, 'SIGINT');
    await exited;
    const t1 = Date.now();
    while (alive(pid) && Date.now() - t1 < 5000) await new Promise((r) => setTimeout(r, 20));
    const survived = alive(pid);
    if (survived) process.kill(pid, 'SIGKILL');
    assert.equal(survived, false, 'the command kept running after the orchestrator was interrupted');
  });

  test('a program that does not exist is a HostError', async () => {
    await assert.rejects(runLocal([join(dir, 'no-such-program')], { host: 'relay' }), (err: unknown) => {
      assert.ok(err instanceof HostError);
      assert.match(err.message, /^relay: cannot run .*no-such-program: .*ENOENT/);
      return true;
    });
  });

  test('an empty argv is refused', () => {
    assert.throws(() => runLocal([]), /runLocal: empty argv/);
  });

  test('a command that exits without reading its input still resolves', async () => {
    assert.deepEqual(await runLocal(['true'], { input: 'x'.repeat(4 * 1024 * 1024) }), { code: 0, stdout: '', stderr: '' });
  });

  test('many quick commands in a row: none of them crashes the process (stdin closed after exit)', async () => {
    // Each command exits before runLocal has closed its stdin; writing to that pipe must not throw EPIPE.
    for (let i = 0; i < 300; i++) assert.equal((await runLocal(['true'])).code, 0);
  });
});

describe('LocalTransport', () => {
  test('exec runs a shell command with bash and resolves with a non-zero code', async () => {
    const t = new LocalTransport('lb-host');
    assert.equal(t.host, 'lb-host');
    assert.deepEqual(await t.exec('echo "$0"; echo a | tr a b; exit 3'), { code: 3, stdout: 'bash\nb\n', stderr: '' });
    assert.deepEqual(await t.exec('cat', { input: 'via stdin' }), { code: 0, stdout: 'via stdin', stderr: '' });
    await t.close();
  });

  test('is named "local" by default', () => {
    assert.equal(new LocalTransport().host, 'local');
  });

  test('exec timeouts name the transport\'s host', async () => {
    await assert.rejects(new LocalTransport('lb-host').exec('exec sleep 30', { timeoutMs: 100 }), /^HostError: lb-host: bash timed out after 100 ms$/);
  });

  test('run() turns a non-zero exit into CommandFailed with the output', async () => {
    await assert.rejects(run(new LocalTransport('h1'), 'echo partial; echo broken >&2; exit 4', { what: 'probing' }), (err: unknown) => {
      assert.ok(err instanceof CommandFailed);
      assert.equal(err.host, 'h1');
      assert.equal(err.exitStatus, 4);
      assert.equal(err.stdout, 'partial\n');
      assert.equal(err.stderr, 'broken\n');
      assert.equal(err.message, 'h1: probing (exit 4): echo partial; echo broken >&2; exit 4\nbroken');
      return true;
    });
    assert.equal((await run(new LocalTransport('h1'), 'echo fine')).stdout, 'fine\n');
  });

  test('openUnixSocket connects to a UNIX socket on this machine', async () => {
    const path = join(dir, 'echo.sock');
    const server = createServer((s) => s.pipe(s));
    await new Promise<void>((resolve) => server.listen(path, resolve));
    try {
      const socket = await new LocalTransport('lb').openUnixSocket(path);
      const reply = new Promise<string>((resolve) => socket.once('data', (d: Buffer) => resolve(d.toString())));
      socket.write('show info\n');
      assert.equal(await reply, 'show info\n');
      socket.destroy();
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test('openUnixSocket rejects with a HostError naming the socket when nothing is there', async () => {
    const path = join(dir, 'missing.sock');
    await assert.rejects(new LocalTransport('lb').openUnixSocket(path), (err: unknown) => {
      assert.ok(err instanceof HostError);
      assert.equal(err.host, 'lb');
      assert.match(err.message, new RegExp(`^lb: cannot open socket ${path.replace(/[.]/g, '\\.')}: .*ENOENT`));
      return true;
    });
  });
});
