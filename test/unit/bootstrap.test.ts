/*
 * scripts/bootstrap.mjs (what `npm run demo` and `npm test` run first): which Debian packages each
 * purpose lacks on a given machine, and the one sentence it stops with where it cannot install them.
 * The decisions are pure functions of the facts; the script itself is plain JavaScript (it runs before
 * node_modules exists), loaded here by path.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PACKAGE_DIR } from '../../src/package-dir.js';

interface Pkg { name: string; why: string }
interface Facts { hasCommand(name: string): boolean; hasPython?(module: string): boolean; serverUp: { postgres: boolean; mysql: boolean } }
interface Bootstrap {
  missingPackages(purpose: string, facts: Facts): Pkg[];
  blocker(purpose: string, facts: { missing: Pkg[]; uid: number; hasApt: boolean }): string | undefined;
  missingNpmPackages(repo?: string): string[];
}
const SCRIPT = join(PACKAGE_DIR, 'scripts', 'bootstrap.mjs');
const load = async () => (await import(pathToFileURL(SCRIPT).href)) as Bootstrap;

const machine = (have: string[], serverUp = { postgres: false, mysql: false }): Facts => ({ hasCommand: (c) => have.includes(c), hasPython: (m) => have.includes(`python:${m}`), serverUp });
const EVERYTHING = ['haproxy', 'sshd', 'ssh', 'ssh-keygen', 'rsync', 'unshare', 'pg_ctlcluster', 'psql', 'pg_dump', 'pg_restore', 'wrk', 'openssl', 'mariadbd', 'mysql', 'mysqldump', 'mysqladmin', 'python:prometheus_client', 'chromium'];

test('a machine with only Node: the demo lacks the lab and PostgreSQL; npm test also wrk, the OpenMetrics parser and MariaDB', async () => {
  const { missingPackages } = await load();
  const names = (purpose: string) => missingPackages(purpose, machine([])).map((p) => p.name);
  assert.deepEqual(names('demo'), ['haproxy', 'openssh-server', 'openssh-client', 'rsync', 'util-linux', 'postgresql', 'postgresql-client']);
  assert.deepEqual(names('test'), ['haproxy', 'openssh-server', 'openssh-client', 'rsync', 'util-linux', 'postgresql', 'postgresql-client', 'wrk', 'openssl', 'chromium', 'python3-prometheus-client', 'mariadb-server', 'mariadb-client']);
  for (const pkg of missingPackages('test', machine([]))) assert.ok(pkg.why.length > 10, `${pkg.name} says why`);
});

test('a machine with everything lacks nothing; a database server already answering needs no package', async () => {
  const { missingPackages } = await load();
  assert.deepEqual(missingPackages('test', machine(EVERYTHING)), []);
  const withoutServers = EVERYTHING.filter((c) => c !== 'pg_ctlcluster' && c !== 'mariadbd');
  assert.deepEqual(missingPackages('test', machine(withoutServers, { postgres: true, mysql: true })), []);
  assert.deepEqual(missingPackages('test', machine(withoutServers)).map((p) => p.name), ['postgresql', 'mariadb-server']);
  assert.deepEqual(missingPackages('demo', machine(EVERYTHING.filter((c) => c !== 'ssh-keygen'))).map((p) => p.name), ['openssh-client']);
});

test('not root, or missing packages without apt-get: one sentence naming the piece and the command that fixes it', async () => {
  const { missingPackages, blocker } = await load();
  const missing = missingPackages('demo', machine(EVERYTHING.filter((c) => c !== 'haproxy')));
  assert.equal(blocker('demo', { missing, uid: 1000, hasApt: true }),
    'npm run demo needs root to install haproxy and to start its lab (sshd servers in their own mount namespaces, HAProxy): run it as root, e.g. `sudo npm run demo`.');
  assert.equal(blocker('test', { missing: [], uid: 1000, hasApt: true }),
    'npm test needs root to start its lab (sshd servers in their own mount namespaces, HAProxy): run it as root, e.g. `sudo npm test` (the unit tests alone need none of this: `npm run test:unit`).');
  assert.equal(blocker('demo', { missing, uid: 0, hasApt: false }),
    'npm run demo needs haproxy, which is not installed, and this machine has no apt-get: install it with its package manager (on Debian or Ubuntu: `apt-get install -y haproxy`), then run `npm run demo` again.');
  assert.equal(blocker('demo', { missing, uid: 0, hasApt: true }), undefined);
  assert.equal(blocker('demo', { missing: [], uid: 0, hasApt: false }), undefined);
});

test('npm packages: those of package-lock.json that node_modules lacks or holds in another version; optional ones do not count', async () => {
  const { missingNpmPackages } = await load();
  assert.deepEqual(missingNpmPackages(PACKAGE_DIR), [], 'everything is installed here');
  const dir = await mkdtemp(join(tmpdir(), 'updateserver-bootstrap-'));
  try {
    await writeFile(join(dir, 'package-lock.json'), JSON.stringify({ packages: {
      '': { name: 'x' }, 'node_modules/a': { version: '1.0.0' }, 'node_modules/b': { version: '2.0.0' },
      'node_modules/b/node_modules/c': { version: '3.0.0' }, 'node_modules/@esbuild/other-os': { version: '1.0.0', optional: true },
    } }));
    assert.deepEqual(missingNpmPackages(dir), ['a', 'b', 'c']);
    for (const [path, version] of [['node_modules/a', '1.0.0'], ['node_modules/b', '1.9.0'], ['node_modules/b/node_modules/c', '3.0.0']] as const) {
      await mkdir(join(dir, path), { recursive: true });
      await writeFile(join(dir, path, 'package.json'), JSON.stringify({ version }));
    }
    assert.deepEqual(missingNpmPackages(dir), ['b']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('as a user other than root, bootstrap stops with exit 1 and one line on stderr, no stack trace', { skip: process.getuid?.() !== 0 && 'needs root to switch to nobody' }, () => {
  const result = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, SCRIPT, 'demo'], { encoding: 'utf8' });
  assert.equal(result.status, 1, result.stderr);
  assert.equal(result.stdout, '');
  assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
  assert.match(result.stderr, /^npm run demo needs root .*`sudo npm run demo`\.\n$/);
});

const HIDDEN = ['/usr/sbin/haproxy', '/usr/bin/wrk', '/usr/bin/apt-get'];
const canHide = process.getuid?.() === 0 && HIDDEN.every((p) => existsSync(p));

test('haproxy and wrk missing on a machine without apt-get: npm test stops with one sentence and the command', { skip: !canHide && 'needs root (a private mount namespace) and the three programs to hide' }, () => {
  // In a private mount namespace, the three programs are hidden behind /dev/null (not executable).
  const hide = HIDDEN.map((p) => `mount --bind /dev/null ${p}`).join(' && ');
  const result = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', `${hide} && exec "$0" "$1" test`, process.execPath, SCRIPT], { encoding: 'utf8' });
  assert.equal(result.status, 1, result.stderr);
  assert.equal(result.stdout, '');
  assert.equal(result.stderr, 'npm test needs haproxy and wrk, which are not installed, and this machine has no apt-get: install them with its package manager (on Debian or Ubuntu: `apt-get install -y haproxy wrk`), then run `npm test` again.\n');
});
