/*
 * What the lab's sshds see of a run, sampled from /proc every `everyMs`: an sshd forks one child per
 * incoming connection (still authenticating or logged in), which forks the session process, whose
 * children are the commands running over that connection (one per exec channel). So, per host:
 * connections = children of the listening sshd; commands = grandchildren of those.
 *
 * From the samples: the most connections one host had at once, the most connections and the most busy
 * hosts (with a command running) across the stage at once, and how many distinct connections each host
 * saw in the whole run (by process id). Busy hosts are counted among the hosts of the stage being
 * promoted (`bounded`: its `parallel` applies to them; the previous stage's host is read at the same
 * time), and a command that has exited but is not yet reaped (a zombie) is not running. Sampling can
 * miss what lives less than a tick: the maxima are lower bounds, the distinct count of a connection
 * that lasts the run is exact.
 *
 * With remote sessions (docs/decisions/0009) a connection also holds updateserver's own shells, which
 * wait for work: the session loop and the spare stream shell. Those count as a command running only
 * while they have a live child (a command in flight).
 */
import { readFileSync } from 'node:fs';

/** Whether a process has exited and waits to be reaped (its parent already knows it is done). */
function zombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return true; // gone
  }
}

/** updateserver's waiting shells on a host (src/transport/session.ts): the session loop, the spare stream shell. */
function waitingShell(pid: number): boolean {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmd.includes('\0updateserver-session\0') || cmd.includes('IFS= read -r c || exit 255');
  } catch {
    return false;
  }
}

/** A command runs under this process of a connection's session: itself, or a child of one of updateserver's waiting shells. */
function commandsUnder(pid: number): number {
  if (zombie(pid)) return 0;
  if (!waitingShell(pid)) return 1;
  return children(pid).filter((child) => !zombie(child)).length > 0 ? 1 : 0;
}

function children(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return []; // gone between two reads
  }
}

export interface SshObservation {
  samples: number;
  everyMs: number;
  /** the most connections one host had open at once */
  maxConnectionsPerHost: number;
  /** the most connections open across all watched hosts at once */
  maxConnections: number;
  /** the most hosts of the promoted stage (`bounded`) with at least one command running at once */
  maxBusyHosts: number;
  /** the most commands running across all hosts at once */
  maxCommands: number;
  /** the most distinct connections any one host saw during the run */
  maxDistinctConnectionsPerHost: number;
  /** hosts that saw at least one connection */
  hostsConnected: number;
  /**
   * The longest a sample took to read every host (ms). A sample is not one instant: on a loaded machine
   * reading 200 hosts' processes can take longer than a light command lasts, and a worker that moved
   * from one host to the next during the sample is then seen busy on both (maxBusyHosts overstates).
   */
  maxSampleMs: number;
}

export function watchSshds(hosts: ReadonlyArray<{ name: string; pid: number }>, bounded: ReadonlySet<string>, everyMs = 25): { stop(): SshObservation } {
  const distinct = new Map<string, Set<number>>(hosts.map((h) => [h.name, new Set<number>()]));
  const o: SshObservation = { samples: 0, everyMs, maxConnectionsPerHost: 0, maxConnections: 0, maxBusyHosts: 0, maxCommands: 0, maxDistinctConnectionsPerHost: 0, hostsConnected: 0, maxSampleMs: 0 };
  const tick = () => {
    const began = performance.now();
    let connections = 0;
    let busy = 0;
    let commands = 0;
    for (const h of hosts) {
      const conns = children(h.pid);
      for (const c of conns) distinct.get(h.name)!.add(c);
      let running = 0;
      for (const c of conns) for (const session of children(c)) running += children(session).reduce((n, cmd) => n + commandsUnder(cmd), 0);
      connections += conns.length;
      commands += running;
      if (running > 0 && bounded.has(h.name)) busy += 1;
      o.maxConnectionsPerHost = Math.max(o.maxConnectionsPerHost, conns.length);
    }
    o.samples += 1;
    o.maxConnections = Math.max(o.maxConnections, connections);
    o.maxBusyHosts = Math.max(o.maxBusyHosts, busy);
    o.maxCommands = Math.max(o.maxCommands, commands);
    o.maxSampleMs = Math.max(o.maxSampleMs, Math.round(performance.now() - began));
  };
  const timer = setInterval(tick, everyMs);
  return {
    stop() {
      clearInterval(timer);
      tick();
      const counts = [...distinct.values()].map((s) => s.size);
      o.maxDistinctConnectionsPerHost = Math.max(0, ...counts);
      o.hostsConnected = counts.filter((n) => n > 0).length;
      return { ...o };
    },
  };
}
