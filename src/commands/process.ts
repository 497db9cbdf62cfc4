/*
 * Starting and stopping a slot's process. The app's own command runs in the foreground of a new
 * session (setsid), detached from SSH (stdin from /dev/null, output to the slot's log), so it
 * survives the connection; its pid and start time are recorded so stop can find exactly that process
 * group, and never another process that got the pid after the slot's had exited (decision 0018).
 */
import type { Service, SlotName } from '../config/model.js';
import { expand, type SlotContext } from './placeholders.js';
import { logFile, pidFile } from './release.js';
import { quote } from './shell.js';

/**
 * Shell functions about a slot's process, in POSIX sh (bash and dash alike) and without a fork: no
 * sed, no cat, no command substitution, since they run in every round of stop's wait loop and on
 * hundreds of hosts at once. `started PID` sets `s` to the process's start time (field 22 of
 * /proc/PID/stat, clock ticks since boot: fixed for the process's life, so a reused pid shows another),
 * and fails for no process or a zombie: kill -0 alone also succeeds on a zombie, and a detached slot's
 * parent is whatever pid 1 is, which may be slow to reap it. The command name (field 2) may hold
 * spaces and parentheses: everything up to the last ") " goes, leaving the state as word 1 and the
 * start time as word 20, which parameter expansion cuts out (not `set -- $s`: zsh, a login shell that
 * runs commands when sessions are off, does not split a variable into words).
 * `alive PID [START]` is true when that process runs and, given START, is still the one that started
 * then. A pid file written before start times were recorded holds only the pid, and gets the old test.
 * Only `s` is assigned (by started; its counter is local): the callers' variables (p, t, i, r, up) are
 * left alone.
 */
export const ALIVE = 'started() { s=; case $1 in \'\'|*[!0-9]*) return 1;; esac; read -r s 2>/dev/null </proc/$1/stat || return 1; ' +
  's=${s##*") "}; case $s in Z*) return 1;; esac; local n=1; while [ $n -lt 20 ]; do s=${s#* }; n=$((n+1)); done; s=${s%% *}; }; ' +
  'alive() { started "$1" && { [ -z "$2" ] || [ "$s" = "$2" ]; }; }';

/** Reads a pid file's words (pid, start time) into p and t: no fork. */
const readPid = (file: string) => `p=; t=; read -r p t <${file}`;

/** Reads a pid file and tests its process with alive. */
export const aliveFrom = (file: string) => `{ ${readPid(file)}; alive "$p" "$t"; }`;

export function startSlot(service: Service, slot: SlotName, ctx: SlotContext): string {
  const pid = quote(pidFile(service, slot, ctx.instance));
  const log = quote(logFile(service, slot, ctx.instance));
  const app = expand(service.start, ctx);
  // Not a process-group leader inside the background job, so setsid execs in place and $! is the pid of the
  // bash that leads the slot's new session (bash execs a simple command itself; `PORT=1 app` works too).
  // Its start time is read at once. An app that has already exited (a zombie, or reaped) gets "-", which
  // no process matches: its pid, free for reuse, is never taken for the slot's.
  return `${ALIVE}; cd ${quote(service.slots[slot].dir)}/ && ` +
    `{ setsid bash -c ${quote(app)} </dev/null >>${log} 2>&1 & p=$!; started "$p" || s=-; echo "$p $s" > ${pid}; }`;
}

/**
 * Stops the slot: the profile's stop command if there is one, else TERM to the process group; then
 * waits for the process to exit and escalates to KILL after the timeout. Succeeds when nothing runs.
 * A pid file naming a process that started at another time (the slot's exited and its pid was reused)
 * signals nothing and runs no stop command: it is only reported, and removed like any stale pid file.
 */
export function stopSlot(service: Service, slot: SlotName, ctx: SlotContext): string {
  const pid = quote(pidFile(service, slot, ctx.instance));
  const tenths = Math.max(1, Math.ceil(service.stopTimeoutMs / 50));
  const ask = service.stop === undefined
    ? 'kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null'
    : `( cd ${quote(service.slots[slot].dir)}/ && ${expand(service.stop, ctx)} )`;
  return `${ALIVE}; if [ -f ${pid} ]; then ${readPid(pid)}; ` +
    `if alive "$p" "$t"; then ${ask}; ` +
    `i=0; while alive "$p" "$t" && [ $i -lt ${tenths} ]; do sleep 0.05; i=$((i+1)); done; ` +
    `if alive "$p" "$t"; then kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p"; echo "killed after ${service.stopTimeoutMs} ms" >&2; fi; ` +
    `elif started "$p"; then echo "pid file named pid $p, which is another process now; not signalled" >&2; fi; ` +
    `rm -f ${pid}; fi`;
}

/** Exit 0 when the slot's recorded process is alive. */
export function slotRunning(service: Service, slot: SlotName): string {
  const pid = quote(pidFile(service, slot));
  return `${ALIVE}; [ -f ${pid} ] && ${aliveFrom(pid)}`;
}
