// The lab: several "servers" on this machine for the integration tests, benchmarks and demo
// (docs: /work/shared/docs/lab.md). Each host is an sshd on its own 127.x address with a private
// /srv; HAProxies run in master-worker mode. Needs root (mount namespaces, sshd, root logins).
//
// Everything the lab starts is ended by stop(): the processes it spawned by recorded pid, and the
// processes started over SSH because they live in the hosts' mount namespaces. A process exit or
// SIGINT/SIGTERM stops labs that are still running.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, realpath, rm, writeFile } from 'node:fs/promises';
import { isIPv4 } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runOrThrow, spawnDetached, tcpAccepts, waitFor } from './exec.js';
import { Haproxy, type HaproxyPaths } from './lab-haproxy.js';
import { rekeyHost, startHost, type FieldHost, type StartedHost } from './lab-host.js';
import { MARKER, labOwner, markerContent, stopOrphanedLabs } from './orphans.js';
import { findLabProcesses, identify, isAlive, terminate, terminateSync, type ProcessId } from './processes.js';

export interface LabHost { name: string; address: string; port: number; /** host dir bind-mounted at /srv inside the host */ srv: string; pid: number }

export interface LabHaproxy {
  name: string;
  dir: string;
  /** stats socket (level admin) the config must declare; answers `show info` once started */
  socket: string;
  /** master CLI socket of the master-worker process */
  masterSocket: string;
  mapFile: string;
  configFile: string;
  pidFile: string;
  logFile: string;
  /** the master's pid: the same after reload(), a new one after restart() */
  pid: number;
  /** Hitless: SIGUSR2 to the master (master-worker mode); resolves once a new worker answers the socket. */
  reload(): Promise<void>;
  /** Full stop + start from the config file as it is on disk. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface Lab {
  dir: string;
  /** private key (ed25519, no passphrase) that logs in as root on every host */
  keyFile: string;
  /** `[address]:port ssh-ed25519 ...` for every host, for StrictHostKeyChecking=yes */
  knownHosts: string;
  hosts: LabHost[];
  startHaproxy(name: string, config: (paths: HaproxyPaths) => string, initialMap?: string): Promise<LabHaproxy>;
  /** Gives a host a new SSH host key and restarts its sshd with it; returns its new known_hosts line. */
  rekeyHost(name: string): Promise<string>;
  /** Ends every process of the lab and removes dir (unless keepDir). Idempotent. */
  stop(): Promise<void>;
}

export interface LabOptions {
  /** default: a fresh mkdtemp under /tmp */
  dir?: string;
  hosts: Array<{ name: string; address: string }>;
  /** default 2222 */
  sshPort?: number;
  /** leave dir in place after stop() (for post-mortems) */
  keepDir?: boolean;
  /**
   * "Field" hosts, like real servers (lab.md "Field hosts"): root's .bashrc costs shellMs (default 300)
   * for every command sshd starts, and the hosts sit rttMs (default 20) away behind a delaying proxy.
   */
  field?: FieldOptions | boolean;
}

export interface FieldOptions { shellMs?: number; rttMs?: number }

/** The field settings of a lab, or undefined for clean hosts. */
export function fieldSettings(field: LabOptions['field']): Required<FieldOptions> | undefined {
  if (!field) return undefined;
  const given = field === true ? {} : field;
  return { shellMs: given.shellMs ?? 300, rttMs: given.rttMs ?? 20 };
}

/** UPDATESERVER_LAB_FIELD: unset or 0 (clean hosts), 1 (the defaults), or `<shellMs>,<rttMs>`. */
export function fieldFromEnv(value: string | undefined): LabOptions['field'] {
  if (value === undefined || value === '' || value === '0') return undefined;
  if (value === '1') return true;
  const [shellMs, rttMs] = value.split(',').map(Number);
  if (!Number.isFinite(shellMs) || !Number.isFinite(rttMs)) throw new Error(`UPDATESERVER_LAB_FIELD="${value}": 1, or <shellMs>,<rttMs>`);
  return { shellMs: shellMs!, rttMs: rttMs! };
}

/** Port where a field host's sshd listens, behind the delaying proxy on the lab's SSH port. */
const sshdPortBehindProxy = (port: number) => (port < 65535 ? port + 1 : port - 1);

const DELAY_PROXY = join(dirname(fileURLToPath(import.meta.url)), 'delay-proxy.js');

export type { HaproxyPaths };

class RunningLab implements Lab {
  readonly keyFile: string;
  readonly knownHosts: string;
  hosts: LabHost[] = [];
  private started: StartedHost[] = [];
  /** processes the lab spawned, by pid; the ChildProcess is kept so Node reaps them */
  private readonly spawned = new Map<number, { proc: ProcessId; child: ChildProcess }>();
  private readonly haproxies = new Map<string, Haproxy>();
  private stopping: Promise<void> | undefined;

  constructor(readonly dir: string, private readonly keepDir: boolean, private readonly field?: Required<FieldOptions>) {
    this.keyFile = join(dir, 'keys', 'deploy');
    this.knownHosts = join(dir, 'known_hosts');
  }

  async start(specs: LabOptions['hosts'], port: number): Promise<void> {
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    mkdirSync('/srv', { recursive: true });
    await mkdir(join(this.dir, 'keys'), { recursive: true });
    // In parallel with the hosts: sshd reads AuthorizedKeysFile only when someone logs in.
    const keyFailure = runOrThrow('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'lab-deploy', '-f', this.keyFile])
      .then(() => undefined, (error: unknown) => error);
    const field: FieldHost | undefined = this.field && { ...this.field, sshdPort: this.field.rttMs > 0 ? sshdPortBehindProxy(port) : port };
    const results = await Promise.allSettled(specs.map(async (spec) => {
      const host = await startHost({ ...spec, port }, join(this.dir, 'hosts', spec.name), `${this.keyFile}.pub`, field);
      this.spawned.set(host.proc.pid, { proc: host.proc, child: host.child });
      this.started.push(host);
      return host;
    }));
    const failure = results.find((result): result is PromiseRejectedResult => result.status === 'rejected')?.reason ?? await keyFailure;
    if (failure) throw failure;
    const hosts = results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
    if (field && field.sshdPort !== port) await this.startDelayProxy(hosts, port, field);
    await writeFile(this.knownHosts, hosts.map((host) => `${host.knownHost}\n`).join(''));
    this.hosts = hosts.map(({ name, address, port: sshPort, srv, proc }) => ({ name, address, port: sshPort, srv, pid: proc.pid }));
  }

  /** One proxy process for every host: each host's address and SSH port, forwarded to its sshd rttMs later. */
  private async startDelayProxy(hosts: StartedHost[], port: number, field: FieldHost): Promise<void> {
    const pairs = hosts.map((host) => `${host.address}:${port}=${host.address}:${field.sshdPort}`);
    const logFile = join(this.dir, 'delay-proxy.log');
    // --lab names the dir, so that a proxy orphaned by a killed run is found and ended with its lab.
    const child = spawnDetached(process.execPath, [DELAY_PROXY, String(field.rttMs), ...pairs, `--lab=${this.dir}`], logFile);
    const proc = child.pid === undefined ? undefined : identify(child.pid);
    if (proc) this.spawned.set(proc.pid, { proc, child });
    await waitFor('delay proxy', child, logFile, async () => (await Promise.all(hosts.map((host) => tcpAccepts(host.address, port)))).every(Boolean));
  }

  async startHaproxy(name: string, config: (paths: HaproxyPaths) => string, initialMap?: string): Promise<LabHaproxy> {
    if (this.stopping) throw new Error('the lab is stopped');
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) throw new Error(`haproxy name "${name}": letters, digits, _ . - only`);
    if (this.haproxies.has(name)) throw new Error(`haproxy ${name} already exists in this lab`);
    const haproxy = new Haproxy(name, this.dir, {
      adopt: (proc, child) => this.spawned.set(proc.pid, { proc, child }),
      release: (proc) => this.spawned.delete(proc.pid),
    });
    this.haproxies.set(name, haproxy);
    try {
      await haproxy.create(config, initialMap);
    } catch (error) {
      this.haproxies.delete(name); // so that a test may try again with a fixed config
      throw error;
    }
    return haproxy;
  }

  async rekeyHost(name: string): Promise<string> {
    const host = this.started.find((h) => h.name === name);
    if (!host) throw new Error(`no lab host ${name}`);
    return rekeyHost(host, join(this.dir, 'hosts', name));
  }

  stop(): Promise<void> {
    this.stopping ??= this.end();
    return this.stopping;
  }

  private scope() {
    const sshds = new Set(this.started.map((host) => host.proc.pid));
    return { dir: this.dir, mountNamespaces: new Set(this.started.map((host) => host.namespace)), exclude: sshds };
  }

  /** Processes of the lab right now: recorded ones first, then those found by namespace or path. */
  private members(): ProcessId[] {
    return [...[...this.spawned.values()].map(({ proc }) => proc), ...findLabProcesses(this.scope())];
  }

  private async end(): Promise<void> {
    try {
      // Rounds, because an sshd may fork a session while we are ending the others.
      for (let round = 0; round < 5; round++) {
        const members = this.members();
        if (members.length === 0) break;
        await terminate(members);
        for (const member of members) this.spawned.delete(member.pid);
      }
      if (!this.keepDir) await rm(this.dir, { recursive: true, force: true, maxRetries: 3 });
    } finally {
      forget(this);
    }
  }

  /** For the process 'exit' handler: the same as stop(), synchronously and less patiently. */
  stopSync(): void {
    try {
      for (let round = 0; round < 3; round++) {
        const members = this.members();
        if (members.length === 0) break;
        terminateSync(members);
        this.spawned.clear();
      }
    } finally {
      if (!this.keepDir) rmSync(this.dir, { recursive: true, force: true, maxRetries: 3 });
    }
  }
}

// ---- safety net: labs still running when the process ends are stopped ----

const running = new Set<RunningLab>();
const signals = ['SIGINT', 'SIGTERM'] as const;

function onExit(): void {
  for (const lab of running) {
    try {
      lab.stopSync();
    } catch {
      // keep stopping the others
    }
  }
  running.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  const labs = [...running];
  void Promise.allSettled(labs.map((lab) => lab.stop())).then(() => {
    // Die of the signal as we would have without this handler, unless someone else handles it.
    unlisten();
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  });
}

function listen(): void {
  process.on('exit', onExit);
  for (const signal of signals) process.on(signal, onSignal);
}

function unlisten(): void {
  process.off('exit', onExit);
  for (const signal of signals) process.off(signal, onSignal);
}

function remember(lab: RunningLab): void {
  if (running.size === 0) listen();
  running.add(lab);
}

function forget(lab: RunningLab): void {
  if (running.delete(lab) && running.size === 0) unlisten();
}

// ---- start ----

function validate(opts: LabOptions, port: number): void {
  if (process.getuid?.() !== 0) throw new Error('the lab needs root (mount namespaces, sshd, root logins over SSH)');
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`sshPort ${port}: not a TCP port`);
  const names = new Set<string>();
  const addresses = new Set<string>();
  opts.hosts.forEach((host, i) => {
    const where = `hosts[${i}]`;
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(host.name)) throw new Error(`${where}.name "${host.name}": letters, digits, _ . - only`);
    if (!isIPv4(host.address) || !host.address.startsWith('127.')) throw new Error(`${where}.address "${host.address}": must be in 127.0.0.0/8 (no traffic may leave this machine)`);
    if (names.has(host.name)) throw new Error(`${where}.name "${host.name}": duplicate`);
    if (addresses.has(host.address)) throw new Error(`${where}.address "${host.address}": duplicate`);
    names.add(host.name);
    addresses.add(host.address);
  });
}

/**
 * stop() removes the lab dir and ends every process whose cwd or command line is under it: a
 * caller's dir must therefore be new, empty, or an earlier lab's (it has a MARKER file).
 */
async function claimDir(requested: string): Promise<string> {
  await mkdir(requested, { recursive: true });
  const dir = await realpath(requested);
  if (dir.split('/').filter(Boolean).length < 2) throw new Error(`lab dir ${dir}: too close to / to be removed safely`);
  const entries = await readdir(dir);
  if (entries.length > 0 && !entries.includes(MARKER)) throw new Error(`lab dir ${dir}: not empty and not a lab's (no ${MARKER})`);
  const owner = await labOwner(dir);
  if ([...running].some((lab) => lab.dir === dir) || (owner && owner.pid !== process.pid && isAlive(owner))) {
    throw new Error(`lab dir ${dir}: in use by a running lab (pid ${owner?.pid ?? process.pid})`);
  }
  for (const entry of entries) await rm(join(dir, entry), { recursive: true, force: true });
  return dir;
}

export async function startLab(opts: LabOptions): Promise<Lab> {
  const port = opts.sshPort ?? 2222;
  validate(opts, port);
  const busy = await Promise.all(opts.hosts.map(async ({ address }) => ((await tcpAccepts(address, port)) ? [`${address}:${port}`] : [])));
  if (busy.flat().length > 0) await stopOrphanedLabs(busy.flat());
  const dir = opts.dir ? await claimDir(opts.dir) : await mkdtemp(join(await realpath('/tmp'), 'updateserver-lab-'));
  // Names the owner, so that a lab orphaned by a killed process can be recognised and ended.
  const self = identify(process.pid);
  if (self) await writeFile(join(dir, MARKER), markerContent(self));
  // UPDATESERVER_LAB_FIELD=1 (or shellMs,rttMs, e.g. 300,20) runs a test suite on field hosts throughout.
  const lab = new RunningLab(dir, opts.keepDir ?? false, fieldSettings(opts.field ?? fieldFromEnv(process.env.UPDATESERVER_LAB_FIELD)));
  remember(lab);
  try {
    await lab.start(opts.hosts, port);
  } catch (error) {
    await lab.stop().catch(() => undefined);
    throw error;
  }
  return lab;
}
