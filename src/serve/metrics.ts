/*
 * /metrics in OpenMetrics text (https://openmetrics.io): runs by stage, action and result, rollbacks,
 * the duration of the last run and of each phase of the latest console run, the live slot and release
 * of each service, whether each stage's lock is held, and a rollout's step, shares and gate figures. Read from the same state as the pages; no
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
  // During a rollout (the lock holder's): where it stands and its gates' latest figures, new slot against old.
  const rolling = stages.flatMap(({ view }) => (view.rollout ? [{ stage: view.stage, r: view.rollout }] : []));
  const per = (f: (r: NonNullable<StageView['rollout']>) => string | number | undefined, extra: Record<string, string> = {}) =>
    rolling.flatMap(({ stage, r }) => { const v = f(r); return v === undefined || (typeof v === 'number' && !Number.isFinite(v)) ? [] : [{ l: { stage, service: r.service, ...extra }, v }]; });
  const gauge = (name: string, help: string, rows: Array<{ l: Record<string, string>; v: string | number }>) =>
    family(name, 'gauge', help, rows.map((x) => `${name}${labels(x.l)} ${x.v}`));
  gauge('updateserver_rollout_step', 'The step a rollout is at (1-based); absent when none runs.', per((r) => r.step));
  gauge('updateserver_rollout_weight_percent', 'The share of requests the step sends to the new slot.', per((r) => r.weight));
  gauge('updateserver_rollout_paused', '1 while the step waits for continue or abort.', per((r) => (r.state === 'paused' ? 1 : 0)));
  gauge('updateserver_rollout_new_share', 'The new slot\'s share of the window\'s responses, read from HAProxy\'s counters.', per((r) => r.figures?.share));
  gauge('updateserver_rollout_5xx_rate', 'Share of 5xx answers in the step\'s window, per slot.', [...per((r) => r.figures?.rate5xx.new, { slot: 'new' }), ...per((r) => r.figures?.rate5xx.old, { slot: 'old' })]);
  gauge('updateserver_rollout_error_rate', 'Share of connection and response errors in the step\'s window, per slot.', [...per((r) => r.figures?.errorRate.new, { slot: 'new' }), ...per((r) => r.figures?.errorRate.old, { slot: 'old' })]);
  gauge('updateserver_rollout_latency_ratio', 'The new slot\'s response time over the old slot\'s in the step\'s window.', per((r) => r.figures?.latencyRatio));
  gauge('updateserver_rollout_responses', 'Responses in the step\'s window, per slot.', [...per((r) => r.figures?.new.responses, { slot: 'new' }), ...per((r) => r.figures?.old.responses, { slot: 'old' })]);
  out.push('# EOF');
  return `${out.join('\n')}\n`;
}
