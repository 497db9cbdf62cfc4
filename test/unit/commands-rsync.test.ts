import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { Host } from '../../src/config/model.js';
import { bytesSent, remoteSpec, rsyncArgv, rsyncShellWord, sshCommand } from '../../src/commands/rsync.js';
import { spawn } from 'node:child_process';

const HOST: Host = Object.freeze({
  name: 'h1', address: '10.0.0.11', port: 2222, user: 'deploy', key: '/home/ci/.ssh/id_ed25519',
  knownHosts: '/home/ci/project/known_hosts', connectTimeoutMs: 10_000, commandTimeoutMs: 600_000,
});
const AGENT_HOST: Host = Object.freeze({ ...HOST, name: 'h2', address: 'web2.example.com', port: 22, key: undefined, connectTimeoutMs: 2500 });

const SSH_WITH_KEY = [
  'ssh', '-p', '2222',
  '-o', 'BatchMode=yes',
  '-o', 'StrictHostKeyChecking=yes',
  '-o', 'UserKnownHostsFile=/home/ci/project/known_hosts',
  '-o', 'GlobalKnownHostsFile=/dev/null',
  '-o', 'ConnectTimeout=10',
  '-i', '/home/ci/.ssh/id_ed25519', '-o', 'IdentitiesOnly=yes',
];

/** Runs argv without a shell (the way a plan's 'local' action runs), stdin closed. */
function runArgv(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const [file, ...args] = argv;
    if (file === undefined) throw new Error('empty argv');
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

const dir = mkdtempSync(join(tmpdir(), 'updateserver-rsync-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('sshCommand', () => {
  test('is strict about host keys, never prompts, and uses only the given key', () => {
    assert.deepEqual(sshCommand(HOST), SSH_WITH_KEY);
  });

  test('without a key (ssh-agent) has no -i and no IdentitiesOnly; the timeout rounds up to whole seconds', () => {
    assert.deepEqual(sshCommand(AGENT_HOST), [
      'ssh', '-p', '22',
      '-o', 'BatchMode=yes',
      '-o', 'StrictHostKeyChecking=yes',
      '-o', 'UserKnownHostsFile=/home/ci/project/known_hosts',
      '-o', 'GlobalKnownHostsFile=/dev/null',
      '-o', 'ConnectTimeout=3',
    ]);
  });
});

describe('remoteSpec', () => {
  test('is user@address:path', () => {
    assert.equal(remoteSpec(HOST, '/srv/web/releases/r1/'), 'deploy@10.0.0.11:/srv/web/releases/r1/');
    assert.equal(remoteSpec(AGENT_HOST, '/x/'), 'deploy@web2.example.com:/x/');
  });

  test('brackets an IPv6 address, which rsync would otherwise read as host::module (daemon syntax)', () => {
    // The profile schema accepts ':' in host addresses, so IPv6 literals reach here.
    assert.equal(remoteSpec({ ...HOST, address: '::1' }, '/srv/web/releases/r1/'), 'deploy@[::1]:/srv/web/releases/r1/');
    assert.equal(remoteSpec({ ...HOST, address: 'fd00::11' }, '/x/'), 'deploy@[fd00::11]:/x/');
  });
});

describe('rsyncShellWord', () => {
  test('leaves safe words bare, and quotes the rest the way rsync splits -e (no backslash escapes)', () => {
    assert.equal(rsyncShellWord('UserKnownHostsFile=/home/ci/known_hosts'), 'UserKnownHostsFile=/home/ci/known_hosts');
    assert.equal(rsyncShellWord('/home/ci/my keys/id'), "'/home/ci/my keys/id'");
    assert.equal(rsyncShellWord("/home/bob's keys/id"), '"/home/bob\'s keys/id"');
    assert.equal(rsyncShellWord(''), "''");
  });

  test('refuses a word holding both kinds of quote', () => {
    assert.throws(() => rsyncShellWord('it\'s "x"'), /holds both kinds of quote/);
  });
});

describe('rsyncArgv', () => {
  test('remote copy with link-dest and excludes, exactly', () => {
    assert.deepEqual(rsyncArgv({
      source: '/var/cache/updateserver/web/r2/', destination: 'deploy@10.0.0.11:/srv/web/releases/r2/',
      remote: HOST, linkDest: '../r1', excludes: ['.git', '*.log'],
    }), [
      'rsync', '-a', '--checksum', '--delete', '--stats',
      '-e', 'ssh -p 2222 -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=/home/ci/project/known_hosts ' +
        '-o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=10 -i /home/ci/.ssh/id_ed25519 -o IdentitiesOnly=yes',
      '--link-dest=../r1', '--exclude=.git', '--exclude=*.log',
      '/var/cache/updateserver/web/r2/', 'deploy@10.0.0.11:/srv/web/releases/r2/',
    ]);
  });

  test('files-from comes after the excludes, before source and destination', () => {
    assert.deepEqual(rsyncArgv({ source: 'u@h:/r/', destination: '/cache/r/', remote: AGENT_HOST, excludes: ['.git'], filesFrom: '/cache/r.files' }).slice(7),
      ['--exclude=.git', '--files-from=/cache/r.files', 'u@h:/r/', '/cache/r/']);
  });

  test('local copy: no -e, no link-dest, no excludes', () => {
    assert.deepEqual(rsyncArgv({ source: '/a/', destination: '/b/' }), ['rsync', '-a', '--checksum', '--delete', '--stats', '/a/', '/b/']);
  });

  test('the -e value quotes paths with spaces', () => {
    const argv = rsyncArgv({ source: '/a/', destination: 'u@h:/b/', remote: { ...HOST, knownHosts: '/home/ci/my project/known_hosts' } });
    assert.equal(argv[6], "ssh -p 2222 -o BatchMode=yes -o StrictHostKeyChecking=yes -o 'UserKnownHostsFile=/home/ci/my project/known_hosts' " +
      '-o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=10 -i /home/ci/.ssh/id_ed25519 -o IdentitiesOnly=yes');
  });
});

/**
 * Runs the argv with a fake `ssh` first in PATH that records the arguments rsync gives it and fails:
 * what rsync makes of the -e string and of the remote spec, without any server.
 */
async function sshArgsSeenByRsync(argv: string[]): Promise<string[] | undefined> {
  const bin = mkdtempSync(join(dir, 'bin-'));
  const out = join(bin, 'args');
  writeFileSync(join(bin, 'ssh'), `#!/bin/bash\nprintf '%s\\0' "$@" > ${out}\nexit 255\n`);
  chmodSync(join(bin, 'ssh'), 0o755);
  const result = await runArgv(argv, { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` });
  assert.notEqual(result.code, 0);
  return existsSync(out) ? readFileSync(out, 'utf8').split('\0').slice(0, -1) : undefined;
}

describe('rsyncArgv as rsync itself reads it (fake ssh, no server)', () => {
  const src = () => {
    const s = join(dir, 'fake-src');
    mkdirSync(s, { recursive: true });
    writeFileSync(join(s, 'f'), 'x');
    return `${s}/`;
  };

  test('rsync starts ssh with exactly sshCommand\'s options, then the user and the host', async () => {
    const args = await sshArgsSeenByRsync(rsyncArgv({ source: src(), destination: remoteSpec(HOST, '/srv/web/releases/r1/'), remote: HOST }));
    assert.deepEqual(args?.slice(0, SSH_WITH_KEY.length - 1), SSH_WITH_KEY.slice(1));
    assert.deepEqual(args?.slice(SSH_WITH_KEY.length - 1, SSH_WITH_KEY.length + 2), ['-l', 'deploy', '10.0.0.11']);
  });

  test('a known_hosts path with a space reaches ssh as one argument', async () => {
    const host = { ...HOST, knownHosts: join(dir, 'my project', 'known_hosts') };
    const args = await sshArgsSeenByRsync(rsyncArgv({ source: src(), destination: remoteSpec(host, '/x/'), remote: host }));
    assert.ok(args?.includes(`UserKnownHostsFile=${host.knownHosts}`), `ssh got ${JSON.stringify(args)}`);
  });

  test('a key path with a double quote reaches ssh as one argument', async () => {
    const host = { ...HOST, key: join(dir, 'the "deploy" key') };
    const args = await sshArgsSeenByRsync(rsyncArgv({ source: src(), destination: remoteSpec(host, '/x/'), remote: host }));
    assert.ok(args?.includes(host.key), `ssh got ${JSON.stringify(args)}`);
  });

  test('a key path with a single quote reaches ssh as one argument', async () => {
    // rsync splits -e itself (it is not a shell): it knows '...' and "..." but not the '\'' idiom of quote().
    const host = { ...HOST, key: join(dir, "bob's keys", 'id_ed25519') };
    const args = await sshArgsSeenByRsync(rsyncArgv({ source: src(), destination: remoteSpec(host, '/x/'), remote: host }));
    assert.ok(args?.includes(host.key), `ssh got ${JSON.stringify(args)}`);
  });

  test('an IPv6 host is reached over ssh, not as an rsync daemon', async () => {
    const host = { ...HOST, address: 'fd00::11' };
    const args = await sshArgsSeenByRsync(rsyncArgv({ source: src(), destination: remoteSpec(host, '/x/'), remote: host }));
    assert.deepEqual(args?.slice(SSH_WITH_KEY.length - 1, SSH_WITH_KEY.length + 2), ['-l', 'deploy', 'fd00::11']);
  });
});

describe('rsyncArgv with a real local rsync', () => {
  test('copies, deletes extras, excludes, and hard-links unchanged files from the link-dest release', async () => {
    const src = join(dir, 'src');
    const releases = join(dir, 'releases');
    mkdirSync(join(src, 'lib'), { recursive: true });
    mkdirSync(releases, { recursive: true });
    writeFileSync(join(src, 'app.js'), 'v1');
    writeFileSync(join(src, 'lib', 'big.bin'), Buffer.alloc(256 * 1024, 7));
    writeFileSync(join(src, 'debug.log'), 'noise');

    const first = await runArgv(rsyncArgv({ source: `${src}/`, destination: `${releases}/r1/`, excludes: ['*.log'] }));
    assert.equal(first.code, 0, first.stderr);
    assert.equal(readFileSync(join(releases, 'r1', 'app.js'), 'utf8'), 'v1');
    assert.equal(existsSync(join(releases, 'r1', 'debug.log')), false);

    writeFileSync(join(src, 'app.js'), 'v2');
    // Same size within the same second would pass rsync's quick check: make the change visible to it.
    utimesSync(join(src, 'app.js'), new Date(), new Date(Date.now() + 5000));
    mkdirSync(join(releases, 'r2'));
    writeFileSync(join(releases, 'r2', 'stale'), 'left over');
    const second = await runArgv(rsyncArgv({ source: `${src}/`, destination: `${releases}/r2/`, linkDest: '../r1', excludes: ['*.log'] }));
    assert.equal(second.code, 0, second.stderr);
    assert.equal(readFileSync(join(releases, 'r2', 'app.js'), 'utf8'), 'v2');
    assert.equal(existsSync(join(releases, 'r2', 'stale')), false, '--delete removes files the source lacks');
    assert.equal(statSync(join(releases, 'r2', 'lib', 'big.bin')).ino, statSync(join(releases, 'r1', 'lib', 'big.bin')).ino);
    assert.notEqual(statSync(join(releases, 'r2', 'app.js')).ino, statSync(join(releases, 'r1', 'app.js')).ino);

    const sentFirst = bytesSent(first.stdout);
    const sentSecond = bytesSent(second.stdout);
    assert.ok(sentFirst !== undefined && sentFirst > 256 * 1024, `first copy sent ${sentFirst}`);
    assert.ok(sentSecond !== undefined && sentSecond < 10 * 1024, `second copy sent ${sentSecond}`);
  });
});

describe('bytesSent', () => {
  test('reads rsync --stats output with thousands separators', () => {
    const stats = [
      'Number of files: 3 (reg: 2, dir: 1)',
      'Total file size: 200,000 bytes',
      'Total transferred file size: 200,000 bytes',
      'Literal data: 200,000 bytes',
      'Matched data: 0 bytes',
      'Total bytes sent: 200,161',
      'Total bytes received: 45',
      '',
      'sent 200,161 bytes  received 45 bytes  400,412.00 bytes/sec',
      'total size is 200,000  speedup is 1.00',
    ].join('\n');
    assert.equal(bytesSent(stats), 200161);
  });

  test('reads plain and dot-separated numbers', () => {
    assert.equal(bytesSent('Total bytes sent: 98\n'), 98);
    assert.equal(bytesSent('Total bytes sent: 0\n'), 0);
    assert.equal(bytesSent('Total bytes sent: 1.234.567\n'), 1234567);
    assert.equal(bytesSent('Total bytes sent: 12,345,678\n'), 12345678);
  });

  test('is undefined without stats', () => {
    assert.equal(bytesSent(''), undefined);
    assert.equal(bytesSent('sent 10 bytes  received 20 bytes'), undefined);
  });
});
