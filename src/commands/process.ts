/*
 * Starting and stopping a slot's process. The app's own command runs in the foreground of a new
 * session (setsid), detached from SSH (stdin from /dev/null, output to the slot's log), so it
 * survives the connection; its pid is recorded so stop can find exactly that process group.
 */
import type { Service, SlotName } from '../config/model.js';
import { expand, type SlotContext } from './placeholders.js';
import { logFile, pidFile } from './release.js';
import { quote } from './shell.js';

/**
 * Shell test for "process $1 runs": exists and is not a zombie. kill -0 alone also succeeds on a
 * zombie, and a detached slot's parent is whatever pid 1 is, which may be slow to reap it.
 */
export const ALIVE = `alive() { s=$(sed -n 's/^.*) \\(.\\).*/\\1/p' /proc/$1/stat 2>/dev/null); [ -n "$s" ] && [ "$s" != Z ]; }`;

export function startSlot(service: Service, slot: SlotName, ctx: SlotContext): string {
  const pid = quote(pidFile(service, slot, ctx.instance));
  const log = quote(logFile(service, slot, ctx.instance));
  const app = expand(service.start, ctx);
  // Not a process-group leader inside the background job, so setsid execs in place and $! is the pid of the
  // bash that leads the slot's new session (bash execs a simple command itself; `PORT=1 app` works too).
  return `cd ${quote(service.slots[slot].dir)}/ && ` +
    `{ setsid bash -c ${quote(app)} </dev/null >>${log} 2>&1 & echo $! > ${pid}; }`;
}

/**
 * Stops the slot: the profile's stop command if there is one, else TERM to the process group; then
 * waits for the process to exit and escalates to KILL after the timeout. Succeeds when nothing runs.
 */
export function stopSlot(service: Service, slot: SlotName, ctx: SlotContext): string {
  const pid = quote(pidFile(service, slot, ctx.instance));
  const tenths = Math.max(1, Math.ceil(service.stopTimeoutMs / 50));
  const ask = service.stop === undefined
    ? 'kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null'
    : `( cd ${quote(service.slots[slot].dir)}/ && ${expand(service.stop, ctx)} )`;
  return `${ALIVE}; if [ -f ${pid} ]; then p=$(cat ${pid}); ` +
    `if alive "$p"; then ${ask}; ` +
    `i=0; while alive "$p" && [ $i -lt ${tenths} ]; do sleep 0.05; i=$((i+1)); done; ` +
    `if alive "$p"; then kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p"; echo "killed after ${service.stopTimeoutMs} ms" >&2; fi; fi; ` +
    `rm -f ${pid}; fi`;
}

/** Exit 0 when the slot's recorded process is alive. */
export function slotRunning(service: Service, slot: SlotName): string {
  const pid = quote(pidFile(service, slot));
  return `${ALIVE}; [ -f ${pid} ] && alive "$(cat ${pid})"`;
}
