/*
 * The traffic split of a progressive rollout (issue 20, src/rollout/) on the run page: one row per
 * step of each service, with its weight, where it is (waiting, holding, passed, failed) and the gate
 * figures as the run records them: the same `rollout-gate`, `rollout-step`, `rollout-pause`, `rollout-continue` and `rollout-abort` events
 * the run log gets (src/rollout/gate.ts), read from the run's logger, not measured a second time.
 */
import type { Plan } from '../plan/plan.js';
import type { StepEvent } from '../apply/context.js';
import type { GateFigures } from '../rollout/gates.js';
import type { Logger } from '../log.js';
import { esc } from './html.js';

export interface RolloutStepView {
  service: string; step: number; weight: number; holdMs: number;
  /** The gate step's title in the plan: how its step events are recognised. */
  title: string;
  state: 'waiting' | 'holding' | 'passed' | 'paused' | 'failed';
  /** The latest figures the gate judged, and its verdict then. */
  figures?: GateFigures;
  /** The figures in words (figuresText), for the page's live script. */
  figuresText?: string;
  verdict?: string;
}

/** The rollout steps of a plan, in order; empty without a rollout. */
export function rolloutSteps(plan: Plan): RolloutStepView[] {
  return plan.phases.flatMap((p) => p.items.flatMap((i) => i.actions)).flatMap((a) => (a.kind === 'gate'
    ? [{ service: a.service, step: a.step, weight: a.weight, holdMs: a.holdMs, title: a.title, state: 'waiting' as const }]
    : []));
}

/** Moves a step on from the plan's step events; returns the step changed, if any. */
export function onStepEvent(steps: RolloutStepView[], e: StepEvent): RolloutStepView | undefined {
  const s = steps.find((x) => x.title === e.title);
  if (!s) return undefined;
  s.state = e.state === 'begin' ? 'holding' : e.state === 'end' ? 'passed' : 'failed';
  return s;
}

/** Moves a step on from a rollout log event (gate.ts); returns the step changed, if any. */
export function onLogEvent(steps: RolloutStepView[], fields: Record<string, unknown> | undefined): RolloutStepView | undefined {
  const event = fields?.event;
  if (event !== 'rollout-gate' && event !== 'rollout-step' && event !== 'rollout-abort' && event !== 'rollout-pause' && event !== 'rollout-continue') return undefined;
  const s = steps.find((x) => x.service === fields!.service && x.step === fields!.step);
  if (!s) return undefined;
  if (fields!.figures && typeof fields!.figures === 'object') {
    s.figures = fields!.figures as GateFigures;
    s.figuresText = figuresText(s.figures);
  }
  if (event === 'rollout-gate') s.verdict = String(fields!.result ?? '');
  if (event === 'rollout-step') { s.state = 'passed'; s.verdict = 'pass'; }
  if (event === 'rollout-abort') { s.state = 'failed'; s.verdict = `gate ${String(fields!.gate ?? '')} failed`; }
  // A pause (src/rollout/pause.ts) holds the step's share until someone answers or its deadline passes.
  if (event === 'rollout-pause') { s.state = 'paused'; s.verdict = `until ${String(fields!.deadline ?? '')}: continue or abort`; }
  if (event === 'rollout-continue') { s.state = 'passed'; s.verdict = `continued by ${String(fields!.user ?? '')}`; }
  return s;
}

/** A logger that also tells `listen` of every line (the run log stays as it was). */
export function teeLogger(logger: Logger, listen: (fields: Record<string, unknown> | undefined) => void): Logger {
  const wrap = (level: 'info' | 'warn' | 'error' | 'debug') => (m: string, f?: Record<string, unknown>) => { logger[level](m, f); listen(f); };
  return { info: wrap('info'), warn: wrap('warn'), error: wrap('error'), debug: wrap('debug'), close: () => logger.close() };
}

const pct = (x: number) => `${(x * 100).toFixed(2)}%`;

/** The figures in words, the same ones the log line gives (describeFigures), short enough for a cell. */
export function figuresText(f: GateFigures | undefined): string {
  if (!f) return '';
  const seen = (w: GateFigures['new']) => w.responses + w.errors;
  return `new slot ${seen(f.new)} req (${pct(f.share)} of the window), old ${seen(f.old)}; 5xx ${pct(f.rate5xx.new)} vs ${pct(f.rate5xx.old)}; errors ${pct(f.errorRate.new)} vs ${pct(f.errorRate.old)}; response time ${f.new.rtimeMs.toFixed(0)} ms vs ${f.old.rtimeMs.toFixed(0)} ms (ratio ${f.latencyRatio.toFixed(2)})`;
}

export const rolloutRowId = (s: Pick<RolloutStepView, 'service' | 'step'>) => `ro-${s.service.replace(/[^A-Za-z0-9_-]/g, '_')}-${s.step}`;

/** One row's cells, shared by the page and its live script (which receives them already escaped). */
export function rolloutCells(s: RolloutStepView): string {
  return `<th scope="row">${esc(s.service)} step ${esc(s.step)}</th><td class="weight">${esc(s.weight)}%</td><td class="old-weight">${esc(100 - s.weight)}%</td><td class="ro-${esc(s.state)}">${esc(s.state)}${s.verdict ? ` (${esc(s.verdict)})` : ''}</td><td class="figures">${esc(s.figuresText ?? '')}</td>`;
}

export function rolloutTable(steps: readonly RolloutStepView[]): string {
  if (steps.length === 0) return '';
  return `<table id="rollout"><caption>Traffic split during the rollout (the switch to 100% follows the last step)</caption>
<thead><tr><th scope="col">step</th><th scope="col">new slot</th><th scope="col">old slot</th><th scope="col">state</th><th scope="col">gate figures</th></tr></thead>
<tbody>${steps.map((s) => `<tr id="${esc(rolloutRowId(s))}">${rolloutCells(s)}</tr>`).join('')}</tbody></table>`;
}
