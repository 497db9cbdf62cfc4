/*
 * What a long run may leak, read from /proc and the kernel's socket table: processes left on a lab
 * host or under this process, open file descriptors of a process, established TCP connections to a
 * host's sshd. Used by the soak test to compare the start of a run with its end.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { run } from './exec.js';

export interface Proc { pid: number; ppid: number; args: string }

export function processes(): Proc[] {
  const out: Proc[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z') continue;
      const args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0+$/, '').split('\0').join(' ');
      out.push({ pid: Number(entry), ppid: Number(fields[1]), args });
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

function namespaceOf(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return undefined;
  }
}

/** Every process in the mount namespace of the given sshd (the lab host), except that sshd itself. */
export function hostProcesses(sshdPid: number): Proc[] {
  const ns = namespaceOf(sshdPid);
  if (ns === undefined) throw new Error(`no process ${sshdPid}`);
  return processes().filter((p) => p.pid !== sshdPid && namespaceOf(p.pid) === ns);
}

/** Direct children of a process. */
export const childrenOf = (pid: number): Proc[] => processes().filter((p) => p.ppid === pid);

export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Established TCP connections to address:port (the kernel's view, both directions counted once). */
export async function establishedTo(address: string, port: number): Promise<number> {
  const r = await run('ss', ['-Htn', 'state', 'established', `( dst ${address}:${port} )`]);
  if (r.code !== 0) throw new Error(`ss: ${r.stderr}`);
  return r.stdout.split('\n').filter((l) => l.trim() !== '').length;
}
