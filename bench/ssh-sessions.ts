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
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat's start time (100 on Linux almost everywhere). */
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** ms since boot, from /proc/uptime (centiseconds): the clock of a process's start time. */
function uptimeMs(): number {
  return Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 1000;
}

/**
 * When a process started, in ms since boot, rounded UP to the next clock tick: never earlier than it
 * really started (the start time is counted in whole ticks), so intervals built on it never overlap
 * more than the processes did.
 */
function startedMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[19]) + 1) * 1000) / CLK_TCK; // field 22 of stat, the 20th after the name
  } catch {
    return undefined;
  }
}

/** The most intervals (merged per host first) covering one instant. */
function mostAtOnce(intervals: ReadonlyMap<string, Array<[number, number]>>): number {
  const events: Array<[number, number]> = [];
  for (const list of intervals.values()) {
    const sorted = [...list].sort((a, b) => a[0] - b[0]);
    let cur: [number, number] | undefined;
    for (const [a, b] of sorted) {
      if (cur && a <= cur[1]) cur[1] = Math.max(cur[1], b);
      else { if (cur) events.push([cur[0], 1], [cur[1], -1]); cur = [a, b]; }
    }
    if (cur) events.push([cur[0], 1], [cur[1], -1]);
  }
  // An interval that ends at the instant another begins does not overlap it.
  events.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let n = 0;
  let most = 0;
  for (const [, d] of events) { n += d; most = Math.max(most, n); }
  return most;
}

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

/** The command running under this process of a connection's session: itself, or a child of one of updateserver's waiting shells. */
function commandUnder(pid: number): number | undefined {
  if (zombie(pid)) return undefined;
  if (!waitingShell(pid)) return pid;
  return children(pid).find((child) => !zombie(child));
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
  /**
   * The most hosts of the promoted stage (`bounded`) with a command running at the same instant, from
   * each command's interval: its start time (/proc/<pid>/stat, rounded up to the clock tick) to the
   * last moment a sample saw it running on that host. Both ends lie inside the command's real life, so
   * this is a lower bound that a slow sample cannot inflate (a command no sample saw is missed).
   */
  maxBusyHosts: number;
  /**
   * The same counted per sample: hosts seen busy while one sample read all hosts. A sample is not one
   * instant (see maxSampleMs): a worker that moves from one host to the next while the sample is
   * being read is seen busy on both, so this overstates on a loaded machine. Kept for comparison.
   */
  maxBusyHostsSampled: number;
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
  const o: SshObservation = { samples: 0, everyMs, maxConnectionsPerHost: 0, maxConnections: 0, maxBusyHosts: 0, maxBusyHostsSampled: 0, maxCommands: 0, maxDistinctConnectionsPerHost: 0, hostsConnected: 0, maxSampleMs: 0 };
  // Per bounded host: each command seen (by pid) with its start and the last time it was seen running.
  const seen = new Map<string, Map<number, [number, number]>>();
  const tick = () => {
    const began = performance.now();
    const clock = uptimeMs() - began; // + performance.now(): ms since boot
    let connections = 0;
    let busy = 0;
    let commands = 0;
    for (const h of hosts) {
      const conns = children(h.pid);
      for (const c of conns) distinct.get(h.name)!.add(c);
      let running = 0;
      for (const c of conns) {
        for (const session of children(c)) {
          for (const cmd of children(session)) {
            const pid = commandUnder(cmd);
            if (pid === undefined) continue;
            running += 1;
            if (!bounded.has(h.name)) continue;
            const at = clock + performance.now();
            const commands = seen.get(h.name) ?? seen.set(h.name, new Map()).get(h.name)!;
            const known = commands.get(pid);
            if (known) known[1] = at;
            else {
              const start = startedMs(pid);
              if (start !== undefined) commands.set(pid, [Math.min(start, at), at]);
            }
          }
        }
      }
      connections += conns.length;
      commands += running;
      if (running > 0 && bounded.has(h.name)) busy += 1;
      o.maxConnectionsPerHost = Math.max(o.maxConnectionsPerHost, conns.length);
    }
    o.samples += 1;
    o.maxConnections = Math.max(o.maxConnections, connections);
    o.maxBusyHostsSampled = Math.max(o.maxBusyHostsSampled, busy);
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
      o.maxBusyHosts = mostAtOnce(new Map([...seen].map(([host, commands]) => [host, [...commands.values()]])));
      return { ...o };
    },
  };
}
