// One lab host: an sshd on its own loopback address, in its own mount namespace where a lab
// directory is bind-mounted at /srv. Processes started over SSH inherit that namespace, so each
// host sees only its own /srv although all hosts share this machine.
//
// The namespace also gets its own empty /root (root's home), like a fresh server: this machine's
// root dotfiles are then not run by every SSH command (a .bashrc with pyenv init costs ~300 ms per
// command here), and apps cannot scribble into the real /root. Skipped when node or rsync live
// under /root (nvm), which the empty home would hide.
import type { ChildProcess } from 'node:child_process';
import { accessSync, constants, realpathSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { delimiter, dirname, join } from 'node:path';
import { run, runOrThrow, sleep, spawnDetached, tcpAccepts, waitFor } from './exec.js';
import { identify, mountNamespace, type ProcessId } from './processes.js';

export interface HostSpec { name: string; address: string; port: number }

/**
 * A "field" host, like a real server: root's login shell (bash, which reads ~/.bashrc when sshd starts
 * it, for every command) costs shellMs, as `pyenv init`, nvm or conda do in the field; and the host
 * sits rttMs away (the lab puts a delaying proxy, test/lab/delay-proxy.ts, on the host's address and
 * port; sshd itself then listens on sshdPort).
 */
export interface FieldHost { shellMs: number; rttMs: number; sshdPort: number }

/** The .bashrc of a field host: a fixed cost, paid by every shell sshd starts (interactive or not). */
export function fieldBashrc(shellMs: number): string {
  return [
    '# lab field host: written by test/lab/lab-host.ts. Costs what a pyenv/nvm/conda init costs on a real',
    '# server, and like those it runs for every command sshd starts (bash reads ~/.bashrc for ssh commands).',
    ...(shellMs > 0 ? [`sleep ${(shellMs / 1000).toFixed(3)}`] : []),
    '',
  ].join('\n');
}

export interface StartedHost {
  name: string;
  address: string;
  port: number;
  srv: string;
  child: ChildProcess;
  proc: ProcessId;
  /** `mnt:[...]` of the sshd; every process in it was started by the lab */
  namespace: string;
  /** the `known_hosts` line for this host */
  knownHost: string;
}

/** PATH that OpenSSH (built without PAM session env, `UsePAM no`) gives root's sessions on Debian. */
const SSHD_ROOT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function which(name: string, searchPath: string): string | undefined {
  for (const dir of searchPath.split(delimiter)) {
    if (dir === '') continue;
    try {
      const path = join(dir, name);
      accessSync(path, constants.X_OK);
      return realpathSync(path);
    } catch {
      // not here
    }
  }
  return undefined;
}

const SESSION_COMMANDS = ['node', 'rsync'];

/** The `node` and `rsync` this process runs, resolved through symlinks. */
function sessionBinaries(searchPath = process.env['PATH'] ?? ''): string[] {
  return SESSION_COMMANDS.flatMap((name) => which(name, searchPath) ?? []);
}

/**
 * The PATH sessions need so that they run the same `node` and `rsync` as this process, or undefined
 * when sshd's default PATH already finds those (then sshd_config sets nothing).
 */
export function sessionPath(searchPath = process.env['PATH'] ?? ''): string | undefined {
  const extra = SESSION_COMMANDS.flatMap((name) => {
    const ours = which(name, searchPath);
    return ours === undefined || which(name, SSHD_ROOT_PATH) === ours ? [] : [dirname(ours)];
  });
  return extra.length === 0 ? undefined : [...new Set(extra), SSHD_ROOT_PATH].join(':');
}

/**
 * Whether the host can get an empty /root without hiding the node or rsync sessions need, or the
 * lab's own files (sshd_config, keys): a clone in root's home, e.g. /root/updateserver, holds them.
 */
function canIsolateHome(hostDir: string): boolean {
  return ![...sessionBinaries(), hostDir].some((path) => path.startsWith('/root/'));
}

export function sshdConfig(spec: HostSpec, paths: { hostKey: string; pidFile: string; authorizedKeys: string }, path = sessionPath()): string {
  return [
    `# lab host ${spec.name}: written by test/lab/lab-host.ts`,
    `ListenAddress ${spec.address}:${spec.port}`,
    `HostKey ${paths.hostKey}`,
    `PidFile ${paths.pidFile}`,
    `AuthorizedKeysFile ${paths.authorizedKeys}`,
    'PermitRootLogin prohibit-password',
    'AuthenticationMethods publickey',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    // The lab dir is world-readable under /tmp; sshd's ownership checks would reject it.
    'StrictModes no',
    'PrintMotd no',
    'PrintLastLog no',
    'UseDNS no',
    // Every accepted connection is logged ("Connection from ..."): tests prove that bad input opens none.
    'LogLevel VERBOSE',
    // The orchestrator opens many channels and connections at once; sshd's defaults (10 sessions per
    // connection, random early drop from 10 unauthenticated connections) make parallel tests flaky.
    'MaxSessions 100',
    'MaxStartups 100:30:200',
    'Subsystem sftp internal-sftp',
    ...(path ? [`SetEnv PATH=${path}`] : []),
    '',
  ].join('\n');
}

export function knownHostsLine(address: string, port: number, publicKey: string): string {
  const [type, key] = publicKey.trim().split(/\s+/);
  if (!type || !key) throw new Error(`not an OpenSSH public key: ${publicKey}`);
  const host = port === 22 ? address : `[${address}]:${port}`;
  return `${host} ${type} ${key}`;
}

export async function startHost(spec: HostSpec, hostDir: string, authorizedKeys: string, field?: FieldHost): Promise<StartedHost> {
  const srv = join(hostDir, 'srv');
  const hostKey = join(hostDir, 'ssh_host_ed25519_key');
  const configFile = join(hostDir, 'sshd_config');
  const logFile = join(hostDir, 'sshd.log');
  const where = `lab host ${spec.name} (${spec.address}:${spec.port})`;

  const home = join(hostDir, 'root');
  await mkdir(srv, { recursive: true });
  await mkdir(home, { recursive: true, mode: 0o700 });
  if (field && !canIsolateHome(hostDir)) throw new Error(`${where}: a field host needs a home of its own, but node or rsync live under /root`);
  const mountHome = canIsolateHome(hostDir) ? ' && mount --bind "$3" /root' : '';
  if (field) await writeFile(join(home, '.bashrc'), fieldBashrc(field.shellMs));
  // sshd listens where clients connect, unless a delaying proxy stands there (field hosts).
  const listen = field ? { ...spec, port: field.sshdPort } : spec;
  // A leftover sshd from a killed run would answer the readiness probe in place of ours.
  for (const port of new Set([spec.port, listen.port])) {
    if (await tcpAccepts(spec.address, port)) {
      throw new Error(`${where}: the address is already in use (a lab left over from a killed run? see \`ss -ltnp 'sport = :${port}'\`)`);
    }
  }
  await runOrThrow('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `lab-host-${spec.name}`, '-f', hostKey]);
  await writeFile(configFile, sshdConfig(listen, { hostKey, pidFile: join(hostDir, 'sshd.pid'), authorizedKeys }));

  // unshare execs sh, which execs sshd: the pid we get is the sshd's. The bind mount lives and dies
  // with the namespace, so nothing needs unmounting afterwards.
  const child = spawnDetached('unshare', [
    '--mount', '--propagation', 'private',
    'sh', '-c', `mount --bind "$1" /srv${mountHome} && exec /usr/sbin/sshd -D -e -f "$2"`, 'lab-sshd', srv, configFile, home,
  ], logFile);
  const proc = child.pid === undefined ? undefined : identify(child.pid);
  try {
    await waitFor(where, child, logFile, () => tcpAccepts(listen.address, listen.port));
    if (!proc) throw new Error(`${where}: sshd did not start`);
    const namespace = mountNamespace(proc.pid);
    // If unshare silently did nothing, "everything in the sshd's namespace" would be everything.
    if (!namespace || namespace === mountNamespace(process.pid) || namespace === mountNamespace(1)) {
      throw new Error(`${where}: sshd is not in a private mount namespace (${namespace ?? 'unknown'})`);
    }
    const knownHost = knownHostsLine(spec.address, spec.port, await readFile(`${hostKey}.pub`, 'utf8'));
    return { ...spec, srv, child, proc, namespace, knownHost };
  } catch (error) {
    if (proc) {
      try { process.kill(proc.pid, 'SIGKILL'); } catch { /* already gone */ }
    }
    throw error;
  }
}

/**
 * The host is "reinstalled": its sshd gets a new host key and is restarted with it (SIGHUP: sshd
 * re-executes itself in place, same pid, same mount namespace, sessions and slot processes untouched).
 * Resolves once the sshd serves the new key; returns the host's new known_hosts line (the lab's
 * known_hosts file is left as it was, which is the point).
 */
export async function rekeyHost(host: StartedHost, hostDir: string): Promise<string> {
  const hostKey = join(hostDir, 'ssh_host_ed25519_key');
  await rm(hostKey, { force: true });
  await rm(`${hostKey}.pub`, { force: true });
  await runOrThrow('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `lab-host-${host.name}-rekeyed`, '-f', hostKey]);
  const line = knownHostsLine(host.address, host.port, await readFile(`${hostKey}.pub`, 'utf8'));
  const key = line.split(' ').slice(1).join(' ');
  process.kill(host.proc.pid, 'SIGHUP');
  const deadline = Date.now() + 10_000;
  for (;;) {
    const scan = await run('ssh-keyscan', ['-T', '2', '-t', 'ed25519', '-p', String(host.port), host.address]).catch(() => undefined);
    if (scan?.stdout.includes(key)) return line;
    if (Date.now() > deadline) throw new Error(`lab host ${host.name}: sshd does not serve its new host key after SIGHUP\n${scan?.stdout ?? ''}${scan?.stderr ?? ''}`);
    await sleep(50);
  }
}
