/*
 * An aborted rollout as the webhook and the release mail tell it (issue 20): which gate stopped it, at
 * which step, and the figures it judged by, as data (the message alone is for people). A pause ended by
 * `abort` or by its deadline is named as the gate `pause` or `pauseDeadline`.
 */
import { GateFailed } from '../rollout/gate.js';
import { describeFigures, type GateFigures } from '../rollout/gates.js';
import { PauseEnded } from '../rollout/pause.js';

export interface RolloutAbort {
  service: string;
  step: number;
  gate: string;
  message: string;
  figures?: GateFigures;
  /** Who aborted a pause. */
  user?: string;
}

/** The rollout abort behind a run's error (a PromotionFailed wraps it as its cause), if that is what ended it. */
export function rolloutAbortOf(err: unknown): RolloutAbort | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof GateFailed) return { service: e.service, step: e.step, gate: e.gate, message: e.message, figures: e.figures as GateFigures };
    if (e instanceof PauseEnded) return { service: e.service, step: e.step, gate: e.reason === 'deadline' ? 'pauseDeadline' : 'pause', message: e.message, ...(e.user ? { user: e.user } : {}) };
  }
  return undefined;
}

/** The mail's lines for it. */
export function rolloutAbortLines(r: RolloutAbort): string[] {
  return [
    `Rollout of ${r.service} aborted at step ${r.step}: gate ${r.gate}${r.user ? ` (by ${r.user})` : ''}`,
    ...(r.figures ? [`  figures: ${describeFigures(r.figures)}`] : []),
  ];
}
