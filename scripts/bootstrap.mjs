#!/usr/bin/env node
// `npm run demo` and `npm test` start here. Plain JavaScript without dependencies, because it runs
// before node_modules exists. On a fresh Debian/Ubuntu machine with only Node.js >= 20 it brings in, in
// this order and one line per item saying what and why: the npm packages, the Debian packages the lab
// runs (with apt-get), then it starts the database servers. When everything is there it installs
// nothing and takes well under a second. When it cannot go on (not root, no apt-get, no network), it
// stops with one sentence naming the missing piece and the command that fixes it, and exit status 1.
//
//   node scripts/bootstrap.mjs demo      what npm run demo needs
//   node scripts/bootstrap.mjs test      what npm test needs (also wrk and MariaDB)
//   node scripts/bootstrap.mjs lab       only the Debian packages of npm test, for npm run bench (test/lab/require-root.mjs)
//   node scripts/bootstrap.mjs npm       only the npm packages (npm run build)
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * What each purpose needs: npm packages, Debian packages (extras beyond the lab's), database servers
 * (installed, and started when `start`), and the command the user typed.
 */
export const PURPOSES = {
  demo: { command: 'npm run demo', npm: true, extras: [], databases: ['postgres'], start: true },
  test: { command: 'npm test', npm: true, extras: ['wrk', 'openssl', 'python3-prometheus-client', 'chromium'], databases: ['postgres', 'mysql'], start: true },
  lab: { command: 'npm run bench', npm: false, extras: ['wrk'], databases: ['postgres', 'mysql'], start: false },
  npm: { command: 'npm run build', npm: true, debian: false },
};

/**
 * The Debian packages, each with what shows it is there and why it is needed. `server`: a database
 * server that also counts as there when something already answers on its port.
 */
export const DEBIAN_PACKAGES = [
  { name: 'haproxy', commands: ['haproxy'], why: 'the load balancer in front of each stage, switched through its runtime API' },
  { name: 'openssh-server', commands: ['sshd'], why: 'each host of the lab is an sshd on its own 127.x address' },
  { name: 'openssh-client', commands: ['ssh', 'ssh-keygen'], why: 'rsync reaches the hosts through ssh; ssh-keygen makes the lab\'s keys' },
  { name: 'rsync', commands: ['rsync'], why: 'copies each release to the hosts' },
  { name: 'util-linux', commands: ['unshare'], why: 'gives each host of the lab its own /srv (a mount namespace)' },
  { name: 'postgresql', server: 'postgres', commands: ['pg_ctlcluster'], why: 'the slot databases (PostgreSQL on 127.0.0.1:5432)' },
  { name: 'postgresql-client', commands: ['psql', 'pg_dump', 'pg_restore'], why: 'snapshots of slot databases; the sample app writes with psql' },
  { name: 'wrk', commands: ['wrk'], extra: true, why: 'the load generator of the switching tests' },
  { name: 'openssl', commands: ['openssl'], extra: true, why: 'the certificate of the release-mail test\'s SMTP server (STARTTLS)' },
  { name: 'chromium', commands: ['chromium'], extra: true, why: 'the headless browser the web console\'s tests drive' },
  { name: 'python3-prometheus-client', commands: [], python: 'prometheus_client', extra: true, why: 'the OpenMetrics reference parser that checks the console\'s /metrics' },
  { name: 'mariadb-server', server: 'mysql', commands: ['mariadbd'], why: 'the MySQL-engine tests (MariaDB on 127.0.0.1:3306)' },
  { name: 'mariadb-client', commands: ['mysql', 'mysqldump', 'mysqladmin'], mysqlClient: true, why: 'snapshots of MySQL slot databases' },
];

/**
 * The Debian packages a purpose lacks. Pure: every fact comes from `facts`:
 * hasCommand(name), hasPython(module) (a Python module imports), and serverUp: { postgres, mysql }
 * (something answers on the port).
 */
export function missingPackages(purpose, facts) {
  const want = PURPOSES[purpose];
  return DEBIAN_PACKAGES.filter((pkg) => {
    if (pkg.extra && !want.extras.includes(pkg.name)) return false;
    if (pkg.server && !want.databases.includes(pkg.server)) return false;
    if (pkg.mysqlClient && !want.databases.includes('mysql')) return false;
    if (pkg.server && facts.serverUp[pkg.server]) return false;
    if (pkg.python) return !(facts.hasPython?.(pkg.python) ?? false);
    return pkg.commands.some((command) => !facts.hasCommand(command));
  });
}

/**
 * npm packages of package-lock.json that node_modules lacks, or holds in another version (after a pull
 * that changed the lock file). Optional ones (other platforms' binaries) are not counted.
 */
export function missingNpmPackages(repo = REPO) {
  const lock = JSON.parse(readFileSync(join(repo, 'package-lock.json'), 'utf8'));
  const missing = [];
  for (const [path, entry] of Object.entries(lock.packages ?? {})) {
    if (!path.startsWith('node_modules/') || entry.optional) continue;
    let version;
    try {
      version = JSON.parse(readFileSync(join(repo, path, 'package.json'), 'utf8')).version;
    } catch {
      version = undefined;
    }
    if (version !== entry.version) missing.push(path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length));
  }
  return missing;
}

/**
 * Why the Debian packages cannot be installed here, as one sentence, or undefined when they can.
 * `missing`: from missingPackages; `uid`; `hasApt`.
 */
export function blocker(purpose, { missing, uid, hasApt }) {
  const { command } = PURPOSES[purpose];
  const names = missing.map((p) => p.name).join(' ');
  const listed = missing.length > 1 ? `${missing.slice(0, -1).map((p) => p.name).join(', ')} and ${missing[missing.length - 1].name}` : names;
  if (uid !== 0) {
    const lack = missing.length ? `to install ${listed} and ` : '';
    return `${command} needs root ${lack}to start its lab (sshd servers in their own mount namespaces, HAProxy): run it as root, e.g. \`sudo ${command}\`${purpose === 'demo' ? '' : ' (the unit tests alone need none of this: `npm run test:unit`)'}.`;
  }
  if (missing.length && !hasApt) {
    return `${command} needs ${listed}, which ${missing.length === 1 ? 'is' : 'are'} not installed, and this machine has no apt-get: install ${missing.length === 1 ? 'it' : 'them'} with its package manager (on Debian or Ubuntu: \`apt-get install -y ${names}\`), then run \`${command}\` again.`;
  }
  return undefined;
}

// ---- reading the machine ----

/** Debian's Python, where its packages' modules are (a pyenv or conda python3 first in PATH has its own). */
export const DEBIAN_PYTHON = '/usr/bin/python3';

export function hasPython(module) {
  return spawnSync(DEBIAN_PYTHON, ['-c', `import ${module}`], { stdio: 'ignore' }).status === 0;
}

export function hasCommand(name) {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  return dirs.some((dir) => {
    if (dir === '') return false;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

function portAnswers(port) {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, timeout: 300 });
    const done = (up) => { socket.destroy(); resolve(up); };
    socket.on('connect', () => done(true));
    socket.on('timeout', () => done(false));
    socket.on('error', () => done(false));
  });
}

// ---- doing ----

const say = (line) => process.stdout.write(`bootstrap: ${line}\n`);
class Stop extends Error {}
const stop = (sentence) => { throw new Stop(sentence); };

function run(file, args, opts = {}) {
  const result = spawnSync(file, args, { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  return { ok: result.status === 0, output: `${result.stdout ?? ''}${result.stderr ?? ''}${result.error ? result.error.message : ''}`.trim() };
}

const seconds = (since) => `${Math.round((Date.now() - since) / 1000)} s`;
const lastLines = (text, n = 8) => text.split('\n').slice(-n).map((l) => `  ${l}`).join('\n');

function checkNode() {
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 20) stop(`updateserver needs Node.js 20 or later and this is ${process.versions.node}: install Node.js 20 or later, then run it again.`);
}

function installNpmPackages(purpose) {
  const missing = missingNpmPackages();
  if (missing.length === 0) return;
  const shown = missing.length > 4 ? `${missing.slice(0, 4).join(', ')} and ${missing.length - 4} more` : missing.join(', ');
  const state = existsSync(join(REPO, 'node_modules')) ? `node_modules lacks ${shown}, or has other versions` : 'there is no node_modules yet';
  say(`installing the npm packages of package-lock.json with npm ci (${state}: the build and the command need them)`);
  const started = Date.now();
  const result = run('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error']);
  if (result.ok) say(`npm packages installed in ${seconds(started)}`);
  if (!result.ok) {
    process.stderr.write(`${lastLines(result.output)}\n`);
    stop(`npm ci failed (its last lines are above; the npm registry must be reachable): fix that, run \`npm ci\`, then \`${PURPOSES[purpose].command}\` again.`);
  }
}

function aptInstall(names) {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...names], { env });
  // A fresh machine often has no package lists yet; an old list may name versions that are gone.
  const hasLists = existsSync('/var/lib/apt/lists') && readdirSync('/var/lib/apt/lists').some((f) => f.endsWith('_Packages') || f.endsWith('_Packages.lz4'));
  let result = hasLists ? install() : { ok: false, output: '' };
  if (!result.ok) {
    say('reading the package lists first (apt-get update)');
    const update = run('apt-get', ['update', '-qq'], { env });
    result = update.ok ? install() : update;
  }
  return result;
}

async function installDebianPackages(purpose) {
  const facts = { hasCommand, hasPython, serverUp: { postgres: await portAnswers(5432), mysql: await portAnswers(3306) } };
  const missing = missingPackages(purpose, facts);
  const why = blocker(purpose, { missing, uid: process.getuid?.() ?? -1, hasApt: hasCommand('apt-get') });
  if (why) stop(why);
  if (missing.length === 0) return;
  for (const pkg of missing) say(`installing ${pkg.name} (Debian package): ${pkg.why}`);
  const started = Date.now();
  const result = aptInstall(missing.map((p) => p.name));
  const still = missingPackages(purpose, facts);
  if (!result.ok) {
    process.stderr.write(`${lastLines(result.output)}\n`);
    const names = missing.map((p) => p.name).join(' ');
    stop(`apt-get could not install ${names} (its last lines are above): run \`apt-get update && apt-get install -y ${names}\` to see why, then \`${PURPOSES[purpose].command}\` again.`);
  }
  if (still.length) {
    const commands = still.flatMap((p) => (p.python ? [`the Python module ${p.python}`] : p.commands.filter((c) => !hasCommand(c))));
    stop(`apt-get installed ${still.map((p) => p.name).join(' ')}, but ${commands.join(', ')} ${commands.length === 1 ? 'is' : 'are'} still not found in PATH or /usr/sbin: check with \`dpkg -L ${still[0].name}\` where it went, then run \`${PURPOSES[purpose].command}\` again.`);
  }
  say(`Debian packages installed in ${seconds(started)}`);
}

function startDatabases(purpose) {
  const result = spawnSync('bash', [join(REPO, 'test', 'lab', 'ensure-databases.sh'), ...PURPOSES[purpose].databases], { cwd: REPO, stdio: 'inherit' });
  if (result.status !== 0) stop(`the database servers did not start (see above): fix that, then run \`${PURPOSES[purpose].command}\` again.`);
}

/**
 * The lab runs hundreds of hosts' processes on one machine for a quarter of an hour; with the kernel's
 * old default of 32768 pids they wrap within a run. A slot's pid file whose process has died may then
 * name a newer, unrelated process (another lab's sshd was seen stopped that way), because a stop checks
 * only that the pid runs (src/commands/process.ts). Modern systems use 4194304 (systemd's default on
 * 64-bit); the tests ask for it where they can, and go on without it otherwise.
 */
function widenPidSpace() {
  const file = '/proc/sys/kernel/pid_max';
  let current;
  try { current = Number(readFileSync(file, 'utf8').trim()); } catch { return; }
  if (!(current < 4194304)) return;
  try {
    writeFileSync(file, '4194304\n');
    say(`kernel.pid_max raised from ${current} to 4194304: the lab's processes would otherwise reuse pids within a run`);
  } catch {
    say(`kernel.pid_max is ${current} and cannot be raised here (not root?); pids may be reused within a run`);
  }
}

export async function bootstrap(purpose) {
  if (!PURPOSES[purpose]) stop(`usage: node scripts/bootstrap.mjs ${Object.keys(PURPOSES).join('|')}`);
  checkNode();
  if (PURPOSES[purpose].npm) installNpmPackages(purpose);
  if (PURPOSES[purpose].debian === false) return;
  await installDebianPackages(purpose);
  if (PURPOSES[purpose].start) startDatabases(purpose);
  if (purpose === 'test' || purpose === 'lab') widenPidSpace();
}

/** Runs bootstrap(purpose); returns the exit status, having printed the one sentence of a Stop. */
export async function main(purpose) {
  try {
    await bootstrap(purpose);
    return 0;
  } catch (err) {
    process.stderr.write(`${err instanceof Stop ? err.message : `bootstrap failed: ${err instanceof Error ? err.message : String(err)}`}\n`);
    return 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) process.exitCode = await main(process.argv[2]);
