/*
 * The part of a promotion's wall time that is not the tool's: read from the run's journal (every step's
 * begin and end, with timestamps), the time the run waited for the application to start and pass its
 * checks. Per host, from the end of the step that spawned the new slot's process ("start web/a ...")
 * to the end of that host's last pre-switch check (the first moment its checks passed); plus every
 * post-switch check step. Hosts run in parallel, so the waiting time is the union of those intervals,
 * not their sum. The tool's own overhead is the wall time minus that union.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface StepLine { type: string; at: string; phase?: string; target?: string; title?: string; state?: string }

/** The newest archived journal of `stage` (each run's journal is renamed to <stage>.<ms>.done.jsonl when it ends). */
export async function lastJournal(stateDir: string, stage: string): Promise<StepLine[]> {
  const dir = join(stateDir, 'journal');
  const last = (await readdir(dir)).filter((f) => f.startsWith(`${stage}.`) && f.endsWith('.done.jsonl')).sort().at(-1);
  if (!last) throw new Error(`no finished journal of ${stage} in ${dir}`);
  return (await readFile(join(dir, last), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as StepLine);
}

export type Interval = [number, number];

/** Total length of the union of intervals. */
export function unionMs(intervals: readonly Interval[]): number {
  const sorted = intervals.filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0]);
  let total = 0;
  let cur: Interval | undefined;
  for (const [a, b] of sorted) {
    if (cur && a <= cur[1]) cur[1] = Math.max(cur[1], b);
    else {
      if (cur) total += cur[1] - cur[0];
      cur = [a, b];
    }
  }
  return cur ? total + cur[1] - cur[0] : total;
}

export interface Waiting {
  /** union of the per-host "slot spawned -> checks passed" intervals and the post-check steps, ms */
  waitingMs: number;
  /** per host: slot spawned -> last pre check passed, ms */
  appStartMs: Record<string, number>;
  postCheckMs: number;
  /** the journal's first entry to its last, ms */
  journalMs: number;
}

export function applicationWaiting(lines: readonly StepLine[]): Waiting {
  const t = (l: StepLine) => Date.parse(l.at);
  const steps = lines.filter((l) => l.type === 'step');
  const spawned = new Map<string, number>();
  const passed = new Map<string, number>();
  const post: Interval[] = [];
  const postBegin = new Map<string, number>();
  for (const s of steps) {
    const key = `${s.target}\u0000${s.title}`;
    if (s.phase === 'start' && s.state === 'end' && /^start /.test(s.title ?? '')) spawned.set(s.target ?? '', t(s));
    if (s.phase === 'check' && s.state === 'end') passed.set(s.target ?? '', Math.max(passed.get(s.target ?? '') ?? 0, t(s)));
    if (s.phase === 'post' && s.state === 'begin') postBegin.set(key, t(s));
    if (s.phase === 'post' && s.state === 'end' && postBegin.has(key)) post.push([postBegin.get(key)!, t(s)]);
  }
  const perHost: Interval[] = [];
  const appStartMs: Record<string, number> = {};
  for (const [host, from] of spawned) {
    const to = passed.get(host);
    if (to !== undefined && to >= from) {
      perHost.push([from, to]);
      appStartMs[host] = to - from;
    }
  }
  const journalMs = lines.length > 1 ? t(lines.at(-1)!) - t(lines[0]!) : 0;
  return { waitingMs: unionMs([...perHost, ...post]), appStartMs, postCheckMs: unionMs(post), journalMs };
}
