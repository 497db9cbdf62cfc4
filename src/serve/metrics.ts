/*
 * /metrics in OpenMetrics text (https://openmetrics.io): runs by stage, action and result, rollbacks,
 * the duration of the last run and of each phase of the latest console run, the live slot and release
 * of each service, and whether each stage's lock is held. Read from the same state as the pages; no
 * secret is ever a label (names of stages, services, slots and releases only).
 */
import type { PhaseTiming } from '../apply/apply.js';
import type { HistoryEntry } from '../state/store.js';
import type { StageView } from './pipeline-view.js';

const label = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const labels = (l: Record<string, string>) => `{${Object.entries(l).map(([k, v]) => `${k}="${label(v)}"`).join(',')}}`;

export function renderMetrics(stages: ReadonlyArray<{ view: StageView; history: readonly HistoryEntry[]; timings: readonly PhaseTiming[] | undefined }>): string {
  const out: string[] = [];
  const family = (name: string, type: string, help: string, samples: string[]) => {
    out.push(`# TYPE ${name} ${type}`, `# HELP ${name} ${help}`, ...samples);
  };
  const runs = new Map<string, { l: Record<string, string>; n: number }>();
  for (const { view, history } of stages) {
    for (const e of history) {
      const l = { stage: view.stage, action: e.action, result: e.result };
      const key = JSON.stringify(l);
      runs.set(key, { l, n: (runs.get(key)?.n ?? 0) + 1 });
    }
  }
  family('updateserver_runs', 'counter', 'Runs recorded in each stage\'s history, by action and result.', [...runs.values()].map((r) => `updateserver_runs_total${labels(r.l)} ${r.n}`));
  family('updateserver_rollbacks', 'counter', 'Rollbacks: the rollback command and automatic rollbacks after a failed check.',
    stages.map(({ view, history }) => `updateserver_rollbacks_total${labels({ stage: view.stage })} ${history.filter((e) => e.action === 'rollback' || e.result === 'rolled back').length}`));
  family('updateserver_last_run_duration_seconds', 'gauge', 'How long the latest recorded run of each stage took.',
    stages.flatMap(({ view, history }) => (history.length ? [`updateserver_last_run_duration_seconds${labels({ stage: view.stage })} ${history.at(-1)!.durationMs / 1000}`] : [])));
  family('updateserver_phase_duration_seconds', 'gauge', 'Each phase of the latest run started from this console, per stage.',
    stages.flatMap(({ view, timings }) => (timings ?? []).map((t) => `updateserver_phase_duration_seconds${labels({ stage: view.stage, phase: t.phase })} ${t.ms / 1000}`)));
  family('updateserver_live', 'info', 'The live slot of each service and the release it runs, as recorded.',
    stages.flatMap(({ view }) => view.services.filter((s) => s.live).map((s) => `updateserver_live_info${labels({ stage: view.stage, service: s.service, slot: s.live!, release: s.liveRelease ?? '' })} 1`)));
  family('updateserver_lock_held', 'gauge', '1 while a command (or a person) holds the stage\'s lock.',
    stages.map(({ view }) => `updateserver_lock_held${labels({ stage: view.stage })} ${view.lock ? 1 : 0}`));
  out.push('# EOF');
  return `${out.join('\n')}\n`;
}
