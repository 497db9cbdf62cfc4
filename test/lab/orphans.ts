// Labs whose owning process died without stopping them (SIGKILL, a crash in the exit path) keep their
// sshds on the lab addresses, and the next lab cannot start. When a new lab finds one of its addresses
// taken, the lab holding it is recognised by its marker file, which names the owning process: if that
// process is gone, the lab's processes are orphans of this same tool and are ended. A lab whose owner
// still runs, or that is not in the way, is never touched.
import { readFileSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { findLabProcesses, isAlive, mountNamespace, terminate, type ProcessId } from './processes.js';

export const MARKER = '.updateserver-lab';

export function markerContent(owner: ProcessId): string {
  return `${owner.pid} ${owner.start}\n`;
}

/**
 * Lab dirs named by running lab sshds and HAProxies (`-f <lab>/hosts/<name>/sshd_config`,
 * `-f <lab>/haproxy-<name>/haproxy.cfg`), with the mount namespaces of their sshds. A running sshd
 * rewrites its command line into one string (`sshd: /usr/sbin/sshd -D -e -f ... [listener] ...`),
 * hence the patterns over the joined command line.
 */
function labDirsInUse(): Map<string, Set<string>> {
  const dirs = new Map<string, Set<string>>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let command: string;
    try {
      command = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      continue;
    }
    const sshd = /^sshd: \/usr\/sbin\/sshd -D -e -f (\/\S+)\/hosts\/[^/\s]+\/sshd_config /.exec(command);
    const haproxy = /^haproxy .*-f (\/\S+)\/haproxy-[^/\s]+\/haproxy\.cfg /.exec(command);
    const dir = sshd?.[1] ?? haproxy?.[1];
    if (!dir) continue;
    const namespaces = dirs.get(dir) ?? new Set<string>();
    const ns = sshd ? mountNamespace(Number(entry)) : undefined;
    if (ns) namespaces.add(ns);
    dirs.set(dir, namespaces);
  }
  return dirs;
}

export async function labOwner(dir: string): Promise<ProcessId | undefined> {
  try {
    const [pid, start] = (await readFile(join(dir, MARKER), 'utf8')).trim().split(' ');
    return pid && start ? { pid: Number(pid), start } : undefined;
  } catch {
    return undefined;
  }
}

/** `address:port` pairs a lab's sshds listen on, from their configs (none if the dir is gone). */
function listenAddresses(dir: string): string[] {
  let hosts: string[];
  try {
    hosts = readdirSync(join(dir, 'hosts'));
  } catch {
    return [];
  }
  return hosts.flatMap((host) => {
    try {
      const config = readFileSync(join(dir, 'hosts', host, 'sshd_config'), 'utf8');
      return [...config.matchAll(/^ListenAddress (\S+)$/gm)].map((match) => match[1] ?? '');
    } catch {
      return [];
    }
  });
}

/**
 * Ends the processes of orphaned labs that hold one of `wanted` (`address:port`) and returns their
 * dirs, which are left in place. Only labs in the way are touched, and only if their owner is dead.
 */
export async function stopOrphanedLabs(wanted: string[]): Promise<string[]> {
  const stopped: string[] = [];
  const ownNamespace = mountNamespace(process.pid);
  for (const [dir, namespaces] of labDirsInUse()) {
    if (!listenAddresses(dir).some((address) => wanted.includes(address))) continue;
    const owner = await labOwner(dir);
    if (!owner || isAlive(owner)) continue; // not a lab's, or its owner still runs
    namespaces.delete(ownNamespace ?? '');
    await terminate(findLabProcesses({ dir, mountNamespaces: namespaces, exclude: new Set() }));
    stopped.push(dir);
  }
  return stopped;
}
