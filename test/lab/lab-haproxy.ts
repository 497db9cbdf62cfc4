// An HAProxy of the lab, run in master-worker mode so that reloads are hitless and the pid the lab
// records (the master's) stays the same across reloads.
//
// Reload = SIGUSR2 to the master (what `systemctl reload haproxy` does on Debian). The master re-execs
// itself with the config on disk; the new worker receives the old worker's listening sockets over
// the master's socketpair (implicit `-x` in master-worker mode), so no connection is refused while
// both run; the old worker finishes its in-flight requests and exits. HAProxy 2.6's master CLI
// `reload` would do the same but, unlike 2.7+, reports nothing, so either way completion is detected
// by polling the stats socket until a worker with a new pid answers it.
import type { ChildProcess } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { run, sleep, spawnDetached, tail, waitFor } from './exec.js';
import { findLabProcesses, identify, isAlive, terminate, type ProcessId } from './processes.js';

export interface HaproxyPaths { socket: string; mapFile: string; pidFile: string; dir: string }

/** Sends one command to an HAProxy CLI socket (stats or master) and returns the whole answer. */
export function haproxyCommand(socket: string, command: string, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const client = connect(socket);
    let answer = '';
    client.setEncoding('utf8');
    client.setTimeout(timeoutMs, () => client.destroy(new Error(`${socket}: no answer to "${command}" within ${timeoutMs} ms`)));
    client.on('connect', () => client.write(`${command}\n`));
    client.on('data', (chunk: string) => { answer += chunk; });
    client.on('end', () => resolve(answer));
    client.on('error', reject);
  });
}

/** The worker's pid from `show info`, or undefined when the socket does not answer (yet). */
async function workerPid(socket: string): Promise<number | undefined> {
  try {
    const pid = /^Pid: (\d+)$/m.exec(await haproxyCommand(socket, 'show info', 500))?.[1];
    return pid === undefined ? undefined : Number(pid);
  } catch {
    return undefined;
  }
}

export async function checkConfig(configFile: string): Promise<void> {
  const result = await run('haproxy', ['-c', '-f', configFile]);
  if (result.code !== 0) {
    throw new Error(`haproxy rejected ${configFile} (exit ${result.code}):\n${`${result.stdout}${result.stderr}`.trim()}`);
  }
}

/** Called by the lab to know the HAProxy's current master and to forget it once stopped. */
export interface HaproxyOwner { adopt(proc: ProcessId, child: ChildProcess): void; release(proc: ProcessId): void }

export class Haproxy {
  readonly dir: string;
  readonly socket: string;
  /** master CLI (`socat - UNIX:<masterSocket>`, then `show proc`) */
  readonly masterSocket: string;
  readonly mapFile: string;
  readonly configFile: string;
  readonly pidFile: string;
  readonly logFile: string;
  private master: { proc: ProcessId; child: ChildProcess } | undefined;

  constructor(readonly name: string, labDir: string, private readonly owner: HaproxyOwner) {
    this.dir = join(labDir, `haproxy-${name}`);
    this.socket = join(this.dir, 'admin.sock');
    this.masterSocket = join(this.dir, 'master.sock');
    this.mapFile = join(this.dir, 'backends.map');
    this.configFile = join(this.dir, 'haproxy.cfg');
    this.pidFile = join(this.dir, 'haproxy.pid');
    this.logFile = join(this.dir, 'haproxy.log');
  }

  /** The master's pid (0 when stopped). Unchanged by reload(), new after restart(). */
  get pid(): number {
    return this.master?.proc.pid ?? 0;
  }

  get paths(): HaproxyPaths {
    return { socket: this.socket, mapFile: this.mapFile, pidFile: this.pidFile, dir: this.dir };
  }

  async create(config: (paths: HaproxyPaths) => string, initialMap = ''): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await writeFile(this.mapFile, initialMap === '' || initialMap.endsWith('\n') ? initialMap : `${initialMap}\n`);
    await writeFile(this.configFile, config(this.paths));
    await this.start();
  }

  /** Starts from the config file on disk, as it is now. */
  private async start(): Promise<void> {
    if (this.master) throw new Error(`haproxy ${this.name} is already running (pid ${this.pid})`);
    // The lab knows HAProxy is up (and reloaded) by asking its stats socket.
    if (!(await readFile(this.configFile, 'utf8')).includes(this.socket)) {
      throw new Error(`haproxy ${this.name}: ${this.configFile} must declare \`stats socket ${this.socket} level admin\` in global`);
    }
    await checkConfig(this.configFile);
    // -W: master-worker; -db: stay in the foreground even if the config says `daemon`, so the pid we
    // spawned is the master's for its whole life.
    const child = spawnDetached('haproxy', ['-W', '-db', '-S', `${this.masterSocket},mode,600`, '-f', this.configFile, '-p', this.pidFile], this.logFile);
    const proc = child.pid === undefined ? undefined : identify(child.pid);
    if (proc) this.owner.adopt(proc, child);
    try {
      await waitFor(`haproxy ${this.name}`, child, this.logFile, async () => (await workerPid(this.socket)) !== undefined);
    } catch (error) {
      if (proc) await this.end(proc);
      throw error;
    }
    if (!proc) throw new Error(`haproxy ${this.name}: did not start\n${tail(this.logFile)}`);
    this.master = { proc, child };
  }

  async reload(): Promise<void> {
    const master = this.master;
    if (!master) throw new Error(`haproxy ${this.name} is not running`);
    // A config the new worker would reject leaves the master in "wait mode"; say why up front.
    await checkConfig(this.configFile);
    let before = await workerPid(this.socket);
    for (let attempt = 0; before === undefined && attempt < 50; attempt++) {
      await sleep(20);
      before = await workerPid(this.socket);
    }
    if (before === undefined || !isAlive(master.proc)) {
      throw new Error(`haproxy ${this.name}: not answering on ${this.socket}, cannot reload\n${tail(this.logFile)}`);
    }
    process.kill(master.proc.pid, 'SIGUSR2');
    const deadline = Date.now() + 10_000;
    for (;;) {
      const now = await workerPid(this.socket);
      if (now !== undefined && now !== before) return;
      if (Date.now() > deadline) throw new Error(`haproxy ${this.name}: no new worker 10 s after reload\n${tail(this.logFile)}`);
      await sleep(10);
    }
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async stop(): Promise<void> {
    const master = this.master;
    this.master = undefined;
    if (master) await this.end(master.proc);
  }

  /** SIGTERM to the master stops all workers; old workers still draining are swept up by path. */
  private async end(proc: ProcessId): Promise<void> {
    await terminate([proc]);
    const leftovers = findLabProcesses({ dir: this.dir, mountNamespaces: new Set(), exclude: new Set() });
    await terminate(leftovers);
    this.owner.release(proc);
  }
}
