import { spawn } from 'node:child_process';
import { createConnection } from 'node:net';
import type { Duplex } from 'node:stream';
import { HostError } from '../errors.js';
import type { ExecOptions, ExecResult, Transport } from './transport.js';
import { currentInstrument } from '../run/instrument.js';

/** Runs commands on the orchestrator's own machine (relay cache, local load balancer). */
export class LocalTransport implements Transport {
  constructor(readonly host: string = 'local') {}

  exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    // A transport's command, not a program of the run's own: the load balancer it serves records it as its effect.
    return spawnLocal(['bash', '-c', command], { ...options, host: this.host });
  }

  openUnixSocket(path: string): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(path);
      socket.once('connect', () => resolve(socket));
      socket.once('error', (err) => reject(new HostError(this.host, `cannot open socket ${path}: ${err.message}`, { cause: err })));
    });
  }

  async close(): Promise<void> {}
}

/** Process groups of the local commands still running. */
const running = new Set<number>();
let forwarding = false;

function killGroups(signal: NodeJS.Signals): void {
  for (const pid of running) {
    try { process.kill(-pid, signal); } catch { /* already gone */ }
  }
}

/** Once: pass SIGINT/SIGTERM on to the running groups, then end as the signal would have. */
function forwardSignals(): void {
  if (forwarding) return;
  forwarding = true;
  process.once('exit', () => killGroups('SIGTERM'));
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      killGroups(signal);
      process.kill(process.pid, signal);
    });
  }
}

/** Spawns argv without a shell (arguments are never re-parsed), collecting output, with a timeout. */
export function runLocal(argv: readonly string[], options: ExecOptions & { host?: string; env?: NodeJS.ProcessEnv } = {}): Promise<ExecResult> {
  currentInstrument()?.local?.(argv);
  return spawnLocal(argv, options);
}

function spawnLocal(argv: readonly string[], options: ExecOptions & { host?: string; env?: NodeJS.ProcessEnv }): Promise<ExecResult> {
  const [file, ...args] = argv;
  if (file === undefined) throw new Error('runLocal: empty argv');
  return new Promise((resolve, reject) => {
    // Its own process group, so a timeout ends the program and every child it started; Ctrl-C and
    // termination of the orchestrator are passed on to the groups still running (see forwardSignals).
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], env: options.env ?? process.env, detached: true });
    forwardSignals();
    if (child.pid !== undefined) running.add(child.pid);
    child.on('exit', () => { if (child.pid !== undefined) running.delete(child.pid); });
    let stdout = '';
    let stderr = '';
    let settled = false;
    const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => {
      try { process.kill(-child.pid!, 'SIGKILL'); } catch { child.kill('SIGKILL'); }
      // Children that inherited its output could keep the pipes open: do not wait for them.
      settled = true;
      reject(new HostError(options.host ?? 'local', `${file} timed out after ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    // Decoded as streams, so a character split across two chunks stays whole.
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('error', (err) => {
      clearTimeout(timer);
      if (settled) return;
      settled = true;
      reject(new HostError(options.host ?? 'local', `cannot run ${file}: ${err.message}`, { cause: err }));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (settled) return;
      settled = true;
      resolve({ code, stdout, stderr });
    });
    // A program that exits without reading its input closes the pipe: EPIPE then is no error of ours.
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
  });
}
