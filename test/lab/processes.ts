// Finding and ending the lab's processes through /proc, and nothing else's.
//
// A pid alone is not an identity: once a process has exited its pid can be reused by an unrelated
// process. Every process the lab signals is identified by pid *and* start time (field 22 of
// /proc/<pid>/stat), and is re-checked right before each signal.
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

export interface ProcessId { pid: number; start: string }

interface Stat { state: string; ppid: number; start: string }

function readStat(pid: number): Stat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may itself contain spaces and parentheses.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const [state, ppid] = fields;
  const start = fields[19];
  if (state === undefined || ppid === undefined || start === undefined) return undefined;
  return { state, ppid: Number(ppid), start };
}

export function identify(pid: number): ProcessId | undefined {
  const stat = readStat(pid);
  return stat && stat.state !== 'Z' ? { pid, start: stat.start } : undefined;
}

/** Still running and still the same process (a zombie counts as gone: it runs no code). */
export function isAlive(proc: ProcessId): boolean {
  const stat = readStat(proc.pid);
  return stat !== undefined && stat.start === proc.start && stat.state !== 'Z';
}

export function mountNamespace(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return undefined;
  }
}

function signal(proc: ProcessId, sig: NodeJS.Signals): void {
  if (!isAlive(proc)) return;
  try {
    process.kill(proc.pid, sig);
  } catch {
    // exited between the check and the signal
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function waitGone(procs: ProcessId[], ms: number): Promise<ProcessId[]> {
  const deadline = Date.now() + ms;
  let alive = procs.filter(isAlive);
  while (alive.length > 0 && Date.now() < deadline) {
    await sleep(20);
    alive = alive.filter(isAlive);
  }
  return alive;
}

/** SIGTERM, wait up to graceMs, SIGKILL whatever is left, wait until it is gone. */
export async function terminate(procs: ProcessId[], graceMs = 3000): Promise<void> {
  for (const proc of procs) signal(proc, 'SIGTERM');
  const stubborn = await waitGone(procs, graceMs);
  for (const proc of stubborn) signal(proc, 'SIGKILL');
  const undead = await waitGone(stubborn, 5000);
  if (undead.length > 0) throw new Error(`processes survived SIGKILL: ${undead.map((p) => p.pid).join(', ')}`);
}

/** terminate() for a process 'exit' handler, where nothing asynchronous runs any more. */
export function terminateSync(procs: ProcessId[], graceMs = 1000): void {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (const proc of procs) signal(proc, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (procs.some(isAlive) && Date.now() < deadline) Atomics.wait(pause, 0, 0, 20);
  for (const proc of procs) signal(proc, 'SIGKILL');
}

/** Ourselves, our ancestors and init: never candidates, whatever their cwd or command line says. */
function untouchable(): Set<number> {
  const pids = new Set<number>([1, 2]);
  for (let pid = process.pid; pid > 1 && !pids.has(pid);) {
    pids.add(pid);
    pid = readStat(pid)?.ppid ?? 0;
  }
  return pids;
}

function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((arg) => arg !== '');
  } catch {
    return [];
  }
}

function cwd(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return undefined;
  }
}

/**
 * True if a command-line argument names `dir` or a path inside it, alone or within a longer string
 * (`sh -c 'cd /tmp/lab/h1 && ...'`). `/tmp/lab-1` matches neither `/tmp/lab-12` nor `/x/tmp/lab-1`.
 */
export function mentionsDir(text: string, dir: string): boolean {
  for (let at = text.indexOf(dir); at !== -1; at = text.indexOf(dir, at + 1)) {
    const before = at === 0 ? undefined : text[at - 1];
    const after = text[at + dir.length];
    const startsPath = before === undefined || !/[\w.\-/]/.test(before);
    const endsPath = after === undefined || after === '/' || !/[\w.\-]/.test(after);
    if (startsPath && endsPath) return true;
  }
  return false;
}

const isUnder = (path: string, dir: string) => path === dir || path.startsWith(`${dir}/`);

export interface LabScope {
  /** absolute, symlink-free lab directory */
  dir: string;
  /** mount namespaces of the lab's sshds (`mnt:[4026532...]`); everything in them is the lab's */
  mountNamespaces: ReadonlySet<string>;
  /** pids handled by the caller (the sshds themselves) */
  exclude: ReadonlySet<number>;
}

/**
 * Processes that belong to the lab without having been recorded: those started over SSH inside a
 * host's mount namespace, and those whose cwd or command line is under the lab directory (HAProxy
 * workers left by reloads, an app started from the lab dir).
 */
export function findLabProcesses(scope: LabScope): ProcessId[] {
  const never = untouchable();
  const ownNamespaces = new Set([mountNamespace(process.pid), mountNamespace(1)]);
  const found: ProcessId[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (never.has(pid) || scope.exclude.has(pid)) continue;
    const stat = readStat(pid);
    if (!stat || stat.state === 'Z' || stat.ppid === 2) continue; // gone, zombie or kernel thread
    const ns = mountNamespace(pid);
    const inLabNamespace = ns !== undefined && !ownNamespaces.has(ns) && scope.mountNamespaces.has(ns);
    const dir = cwd(pid);
    const underDir = (dir !== undefined && isUnder(dir, scope.dir)) || cmdline(pid).some((arg) => mentionsDir(arg, scope.dir));
    if (inLabNamespace || underDir) found.push({ pid, start: stat.start });
  }
  return found;
}
