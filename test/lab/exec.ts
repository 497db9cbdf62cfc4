// Small process helpers shared by the lab modules.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';

export interface ExecResult { code: number; stdout: string; stderr: string }

/** Runs a command to completion; never rejects on a non-zero exit (the caller decides). */
export function run(command: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd: opts.cwd, timeout: opts.timeoutMs ?? 30_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number') return reject(error);
      resolve({ code: typeof error?.code === 'number' ? error.code : 0, stdout, stderr });
    });
  });
}

export async function runOrThrow(command: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<string> {
  const result = await run(command, args, opts);
  if (result.code !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited with ${result.code}\n${result.stderr}${result.stdout}`);
  }
  return result.stdout;
}

/**
 * Starts a long-running process in its own session (so a Ctrl-C in the terminal reaches only the
 * test process, which then stops the lab in order), output appended to logFile. The child is
 * unref'd: the lab's stop() or safety net ends it, not the event loop.
 */
export function spawnDetached(command: string, args: string[], logFile: string): ChildProcess {
  const log = openSync(logFile, 'a');
  try {
    const child = spawn(command, args, { detached: true, stdio: ['ignore', log, log] });
    child.unref();
    child.on('error', () => { /* surfaces as an early exit in waitFor() */ });
    return child;
  } finally {
    closeSync(log);
  }
}

export function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null || child.pid === undefined;
}

/**
 * Polls `ready` every 10 ms until it returns true. Fails early, with the log's tail, if the child
 * exits meanwhile; fails after timeoutMs otherwise.
 */
export async function waitFor(what: string, child: ChildProcess, logFile: string, ready: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited(child)) throw new Error(`${what}: exited (${child.exitCode ?? child.signalCode ?? 'spawn failed'}) before it was ready\n${tail(logFile)}`);
    if (await ready()) return;
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${timeoutMs} ms\n${tail(logFile)}`);
    await sleep(10);
  }
}

/** Whether something accepts TCP connections at address:port right now. */
export function tcpAccepts(address: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: address, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}
