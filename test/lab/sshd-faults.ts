/*
 * Faults of a lab host's SSH server, for the reliability suite: the host becomes unreachable (its
 * listening sshd and every session it forked are killed) and comes back (a new sshd in the host's own
 * mount namespace, with its own config), or only its open SSH connections are dropped (the per-connection
 * sshd processes are killed; the listener stays, so the next connection works).
 *
 * Only processes the lab started are signalled: the host's sshd (recorded pid) and its children.
 * The slot processes of the host run detached in their own sessions (not under sshd) and keep serving;
 * they also keep the host's mount namespace alive while no sshd is there.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnDetached, tcpAccepts, waitFor } from './exec.js';
import type { Lab, LabHost } from './lab.js';
import { identify, mountNamespace, terminate, type ProcessId } from './processes.js';

function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

/** Processes below pid (children, grandchildren ...), identified for a safe signal. */
export function descendants(pid: number): ProcessId[] {
  const all = readdirSync('/proc').filter((e) => /^\d+$/.test(e)).map(Number);
  const found: ProcessId[] = [];
  let level = [pid];
  while (level.length > 0) {
    const next = all.filter((p) => level.includes(parentOf(p) ?? -1));
    for (const p of next) {
      const id = identify(p);
      if (id) found.push(id);
    }
    level = next;
  }
  return found;
}

/** The per-connection sshd processes of a host: the listener's children (each one SSH connection). */
export function sshSessions(host: LabHost): ProcessId[] {
  return descendants(host.pid).filter((p) => parentOf(p.pid) === host.pid);
}

/** Drops every open SSH connection to the host with SIGKILL (no goodbye on the wire); the listener stays. */
export async function dropSshConnections(host: LabHost): Promise<number> {
  const sessions = sshSessions(host);
  for (const s of sessions) {
    try { process.kill(s.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
  return sessions.length;
}

export interface StoppedSshd {
  /** The host's mount namespace, where the new sshd must run. */
  namespace: string;
  /** Starts a new sshd for the host in its namespace; updates host.pid; resolves once it accepts connections. */
  restart(): Promise<void>;
}

/**
 * Makes the host unreachable: SIGKILL to its sshd and all its sessions, as when a machine drops off
 * the network (connections refused from then on). restart() brings an identical sshd back.
 */
export async function stopSshd(lab: Lab, host: LabHost): Promise<StoppedSshd> {
  const namespace = mountNamespace(host.pid);
  const listener = identify(host.pid);
  if (!namespace || !listener) throw new Error(`${host.name}: sshd ${host.pid} is not running`);
  const sessions = descendants(host.pid);
  for (const p of [listener, ...sessions]) {
    try { process.kill(p.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
  await terminate([listener, ...sessions], 0);
  return {
    namespace,
    async restart() {
      // Any process still in the namespace (the host's slot processes) lets nsenter join it.
      const holder = readdirSync('/proc').filter((e) => /^\d+$/.test(e)).map(Number).find((p) => mountNamespace(p) === namespace);
      if (holder === undefined) throw new Error(`${host.name}: no process left in ${namespace} to restart sshd in`);
      const dir = join(lab.dir, 'hosts', host.name);
      const child = spawnDetached('nsenter', ['-t', String(holder), '-m', '--', '/usr/sbin/sshd', '-D', '-e', '-f', join(dir, 'sshd_config')], join(dir, 'sshd.log'));
      // sshd's own port: on a field host, host.port is the delaying proxy's, which accepts before sshd runs.
      const listen = /^ListenAddress \S+:(\d+)$/m.exec(readFileSync(join(dir, 'sshd_config'), 'utf8'));
      const port = listen ? Number(listen[1]) : host.port;
      await waitFor(`lab host ${host.name} (restarted sshd)`, child, join(dir, 'sshd.log'), () => tcpAccepts(host.address, port));
      if (child.pid === undefined || mountNamespace(child.pid) !== namespace) throw new Error(`${host.name}: the restarted sshd is not in ${namespace}`);
      host.pid = child.pid;
    },
  };
}
