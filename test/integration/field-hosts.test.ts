// Field hosts (lab.md "Field hosts"): a login shell that costs what it says and a network distance.
// A remote `true` over the product's own transport pays the shell's start-up and at least one round
// trip on a field host, and neither on a clean one; the delaying proxy ends with the lab.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { SshTransport } from '../../src/transport/ssh.js';
import { identify } from '../lab/processes.js';
import { startLab, type Lab } from '../lab/lab.js';

const labs: Lab[] = [];
after(async () => { for (const lab of labs) await lab.stop(); });

const SHELL_MS = 300;
const RTT_MS = 20;

function transportTo(lab: Lab): Promise<SshTransport> {
  const host = lab.hosts[0]!;
  return SshTransport.connect({
    name: host.name, address: host.address, port: host.port, user: 'root', key: lab.keyFile,
    knownHosts: lab.knownHosts, connectTimeoutMs: 10_000, commandTimeoutMs: 10_000,
  });
}

async function timedTrue(t: SshTransport): Promise<number> {
  return timed(t, 'true');
}

async function timed(t: SshTransport, command: string): Promise<number> {
  const started = performance.now();
  const r = await t.exec(command);
  assert.equal(r.code, 0, r.stderr);
  return performance.now() - started;
}

test('a field host: a command on a channel of its own pays the login shell and the round trip', { timeout: 60_000 }, async () => {
  const lab = await startLab({ hosts: [{ name: 'field1', address: '127.0.190.11' }], field: { shellMs: SHELL_MS, rttMs: RTT_MS } });
  labs.push(lab);
  const connectStarted = performance.now();
  // Every command on a channel of its own, as before remote sessions: what the lab costs per command.
  process.env.UPDATESERVER_SESSIONS = '0';
  const t = await transportTo(lab).finally(() => { delete process.env.UPDATESERVER_SESSIONS; });
  // The SSH handshake alone takes several round trips.
  assert.ok(performance.now() - connectStarted >= 2 * RTT_MS, `connect took ${performance.now() - connectStarted} ms`);
  try {
    const times = [await timedTrue(t), await timedTrue(t), await timedTrue(t)];
    for (const ms of times) assert.ok(ms >= SHELL_MS + RTT_MS, `a remote true took ${ms.toFixed(0)} ms, less than ${SHELL_MS} + ${RTT_MS}`);
    // ...and not wildly more: the cost is the one asked for.
    assert.ok(Math.min(...times) < SHELL_MS + 8 * RTT_MS + 300, `a remote true took ${times.map((ms) => ms.toFixed(0)).join(', ')} ms`);
    // The shell bash starts for a command is root's, in the host's own home.
    const home = await t.exec('echo "$0 $HOME"; cat ~/.bashrc');
    assert.match(home.stdout, /^bash \/root\n/);
    assert.match(home.stdout, /sleep 0\.300/);
  } finally {
    await t.close();
  }
});

test('a clean host pays neither; the delay proxy ends with its lab', { timeout: 60_000 }, async () => {
  const clean = await startLab({ hosts: [{ name: 'clean1', address: '127.0.191.11' }] });
  labs.push(clean);
  const t = await transportTo(clean);
  try {
    const times = [await timedTrue(t), await timedTrue(t), await timedTrue(t)];
    assert.ok(Math.min(...times) < SHELL_MS, `a remote true on a clean host took ${times.map((ms) => ms.toFixed(0)).join(', ')} ms`);
  } finally {
    await t.close();
  }
  const field = await startLab({ hosts: [{ name: 'field2', address: '127.0.192.11' }], field: true });
  labs.push(field);
  const proxies = proxyPids(field.dir);
  assert.equal(proxies.length, 1, 'one delay proxy for the lab');
  await field.stop();
  assert.equal(identify(proxies[0]!), undefined, 'the delay proxy is stopped with the lab');
});

function proxyPids(labDir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmd.includes('delay-proxy.js') && cmd.includes(`--lab=${labDir}`)) pids.push(Number(entry));
    } catch { /* gone */ }
  }
  return pids;
}

test('remote sessions on a field host: the login shell is paid once; a timeout kills the command, not the session; a killed session names the host', { timeout: 60_000 }, async () => {
  const lab = await startLab({ hosts: [{ name: 'field3', address: '127.0.193.11' }], field: { shellMs: SHELL_MS, rttMs: RTT_MS } });
  labs.push(lab);
  const t = await transportTo(lab);
  try {
    await timedTrue(t); // the session's own start: the login shell, once
    const times: number[] = [];
    for (let i = 0; i < 5; i++) times.push(await timed(t, `test -d /srv && echo ${i}`));
    const total = times.reduce((a, b) => a + b, 0);
    assert.ok(total < SHELL_MS, `5 commands in the session took ${times.map((ms) => ms.toFixed(0)).join(', ')} ms: the login shell was paid again`);
    for (const ms of times) assert.ok(ms >= RTT_MS, `a command took ${ms.toFixed(0)} ms, less than the round trip`);

    // Separate stdout, stderr and status; stdin given.
    const r = await t.exec('cat; echo out2; echo err >&2; exit 4', { input: 'in\n' });
    assert.deepEqual(r, { code: 4, stdout: 'in\nout2\n', stderr: 'err\n' });

    // A timeout kills that command (its process group), and the session goes on.
    await assert.rejects(t.exec('sleep 31.5', { timeoutMs: 500 }), /^Error: field3: command timed out after 500 ms: sleep 31\.5$|field3: command timed out after 500 ms/);
    const after = await t.exec('sleep 0.3; pgrep -fx "sleep 31.5" || echo gone');
    assert.equal(after.stdout, 'gone\n');

    // The session's bash killed on the host: the command running in it fails naming the host... (a
    // command is a subshell of the session's bash, so $$ is that bash, as in any subshell; decision 0019)
    await assert.rejects(t.exec('kill -KILL $$; sleep 5'), (err: Error) => {
      assert.match(err.message, /^field3: the remote session on 127\.0\.193\.11:2222 ended/);
      return true;
    });
    // ...and the next command gets a new session on the same connection.
    assert.equal((await t.exec('echo again')).stdout, 'again\n');
  } finally {
    await t.close();
  }
});
