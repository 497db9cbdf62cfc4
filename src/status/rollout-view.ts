/*
 * What `updateserver status` shows of a rollout under way (issue 20): the step the run recorded (held
 * and judged, or paused with its deadline), the share each load balancer sends to the new slot, and the
 * gate figures live: the same reading of `show stat` the gates use (src/rollout/gates.ts), over the
 * window from the step's (or the pause's) start, which the run recorded, to now.
 */
import type { StatRow } from '../lb/stat.js';
import { countersOf, describeFigures, figuresOf, sumWindows, windowOf, type GateFigures } from '../rollout/gates.js';
import type { RolloutProgress } from '../state/rollout-control.js';

export interface RolloutView {
  step: number;
  steps: number;
  weight: number;
  state: 'hold' | 'paused';
  since: string;
  deadline?: string;
  /** The run's process (it holds the stage's lock while it runs). */
  pid: number;
  /** Whether that process still holds the stage's lock: false after a run killed mid-rollout. */
  running: boolean;
  /** The share (weight, %) of requests each load balancer sends to the new slot now. */
  shares: Record<string, number>;
  oldBackend: string;
  newBackend: string;
  /** The gate figures over the window since the step (or pause) began, summed over the load balancers read now. */
  figures?: GateFigures;
  /** One line of them, as the run's log words them. */
  summary?: string;
}

/** The view, or undefined when the recorded progress is not this split's (another service, another step, or a rollout long over). */
export function rolloutView(progress: RolloutProgress | undefined, service: string, shares: Record<string, number>, stats: Record<string, readonly StatRow[] | undefined>, lockPid: number | undefined): RolloutView | undefined {
  if (!progress || progress.service !== service || Object.keys(shares).length === 0) return undefined;
  // A record behind the map (a run killed between a step's share and its gate) would name the wrong step.
  if (!Object.values(shares).includes(progress.weight)) return undefined;
  const windows = { old: [] as ReturnType<typeof windowOf>[], new: [] as ReturnType<typeof windowOf>[] };
  for (const lb of progress.loadBalancers) {
    const rows = stats[lb];
    const start = progress.start[lb];
    if (!rows || !start) continue;
    windows.old.push(windowOf(start.old, countersOf(rows, progress.oldBackend)));
    windows.new.push(windowOf(start.new, countersOf(rows, progress.newBackend)));
  }
  const figures = windows.new.length > 0 ? figuresOf(sumWindows(windows.old), sumWindows(windows.new), progress.gates.latencyFloorMs) : undefined;
  return {
    step: progress.step, steps: progress.steps, weight: progress.weight, state: progress.state, since: progress.since, ...(progress.deadline ? { deadline: progress.deadline } : {}),
    pid: progress.pid, running: lockPid === progress.pid, shares, oldBackend: progress.oldBackend, newBackend: progress.newBackend,
    ...(figures ? { figures, summary: describeFigures(figures) } : {}),
  };
}

export function renderRolloutView(stage: string, v: RolloutView): string[] {
  const head = !v.running
    ? `rollout stopped at step ${v.step} of ${v.steps} (${v.weight}%): its run (pid ${v.pid}) is gone; updateserver ${stage} --resume goes on from this step, --abandon puts all traffic back on the old slot`
    : v.state === 'paused'
    ? `rollout PAUSED at step ${v.step} of ${v.steps} (${v.weight}%) since ${v.since}, run pid ${v.pid}; aborts at ${v.deadline}: updateserver continue ${stage} | updateserver abort ${stage}`
    : `rollout at step ${v.step} of ${v.steps} (${v.weight}%) since ${v.since}, run pid ${v.pid}`;
  return [
    `    ${head}`,
    `      shares: ${Object.entries(v.shares).map(([lb, w]) => `${lb} ${w}% to ${v.newBackend}`).join(', ')}`,
    `      gates since then: ${v.summary ?? 'counters not readable'}`,
  ];
}
