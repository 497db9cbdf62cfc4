/*
 * A service's progressive rollout in the profile (docs/decisions/0016-progressive-rollouts.md): the
 * steps (a share of requests for the new slot, held for a while, then judged) and the gates that judge
 * each step from HAProxy's counters. `--steps 5,25,50` on the command line gives steps with the
 * default hold and gates. The final 100% is not a step: it is the switch that follows the last one.
 */
import * as z from 'zod';
import { ConfigError } from '../errors.js';
import type { Database } from '../config/model.js';

const ms = (max: number) => z.int({ error: `expected a duration in milliseconds (integer 0-${max})` }).min(0, { error: `expected a duration in milliseconds (integer 0-${max})` }).max(max, { error: `expected a duration in milliseconds (integer 0-${max})` });
const rate = () => z.number({ error: 'expected a share between 0 and 1 (0.01 is 1%)' }).min(0, { error: 'expected a share between 0 and 1 (0.01 is 1%)' }).max(1, { error: 'expected a share between 0 and 1 (0.01 is 1%)' });
const WEIGHT_HINT = 'expected a whole percentage of requests between 1 and 99 (100 is the switch that follows the last step)';

export const DEFAULT_HOLD_MS = 60_000;
export const DEFAULT_PAUSE_DEADLINE_MS = 3_600_000;

export const rolloutStep = z.strictObject({
  /** Percentage of new requests sent to the new slot during this step. */
  weight: z.int({ error: WEIGHT_HINT }).min(1, { error: WEIGHT_HINT }).max(99, { error: WEIGHT_HINT }),
  /** How long the step holds before it is judged. */
  holdMs: ms(86_400_000).default(DEFAULT_HOLD_MS),
  /**
   * Hold for a person: once the step has passed its gates, the run waits (holding the stage's lock) until
   * `updateserver continue <stage>` or `updateserver abort <stage>`, at most pauseDeadlineMs.
   */
  pause: z.boolean({ error: 'expected true or false' }).default(false),
  /** How long a pause waits for a person before it aborts the rollout (default 1 hour). */
  pauseDeadlineMs: ms(7 * 86_400_000).default(DEFAULT_PAUSE_DEADLINE_MS),
});

export const rolloutGates = z.strictObject({
  /** Largest share of 5xx answers the new slot may give over a step's window. */
  max5xxRate: rate().default(0.01),
  /** Largest share of connection and response errors (econ + eresp) on the new slot. */
  maxErrorRate: rate().default(0.01),
  /** Largest ratio of the new slot's response time to the old slot's. */
  maxLatencyRatio: z.number({ error: 'expected a ratio of at least 1 (1.5: half as slow again)' }).min(1, { error: 'expected a ratio of at least 1 (1.5: half as slow again)' }).max(1000).default(1.5),
  /** Response times below this count as this much (a 1 ms old slot against a 3 ms new one is not a 3x slowdown). */
  latencyFloorMs: ms(60_000).default(10),
  /** Requests the new slot must have answered in the window for the step to be judged. */
  minRequests: z.int({ error: 'expected a number of requests (integer >= 1)' }).min(1, { error: 'expected a number of requests (integer >= 1)' }).default(100),
  /** With too few requests, the step waits up to this long beyond its hold (default: its hold again). */
  tooFewWaitMs: ms(86_400_000).optional(),
  /** What a step with too few requests at its deadline is: passed or failed. */
  onTooFew: z.enum(['pass', 'fail'], { error: 'expected pass or fail' }).default('fail'),
});

export const rollout = z.strictObject({
  steps: z.array(rolloutStep, { error: 'expected a list of steps such as [{ weight: 5, holdMs: 30000 }]' }).min(1, { error: 'expected at least one step' }).max(20),
  gates: rolloutGates.default({ max5xxRate: 0.01, maxErrorRate: 0.01, maxLatencyRatio: 1.5, latencyFloorMs: 10, minRequests: 100, onTooFew: 'fail' }),
});

export type RolloutData = z.infer<typeof rollout>;
export type RolloutGates = z.infer<typeof rolloutGates>;
export interface RolloutStep {
  readonly weight: number;
  readonly holdMs: number;
  /** Wait for `continue` or `abort` after the step passed its gates (absent: false). */
  readonly pause?: boolean;
  readonly pauseDeadlineMs?: number;
}
export interface Rollout { readonly steps: readonly RolloutStep[]; readonly gates: Readonly<RolloutGates> }

export const DEFAULT_GATES: RolloutGates = rolloutGates.parse({});

/** Why a service may not roll out, or undefined: two slots serving at once must write to one database. */
export function rolloutRefusal(strategy: Database['strategy'] | undefined): string | undefined {
  if (strategy === 'copy' || strategy === 'copy-self') {
    return `a progressive rollout sends requests to both slots at once, and with database strategy ${strategy} each slot has its own database: writes would split between two databases. Use strategy shared or none, or promote without a rollout`;
  }
  return undefined;
}

/** Cross-check of a profile: every service with a rollout has a database both slots share (or none). */
export function checkRollouts(data: { services: Record<string, { rollout?: unknown; database?: { strategy: Database['strategy'] } | undefined }> }): Array<{ path: string; message: string }> {
  return Object.entries(data.services).flatMap(([name, s]) => {
    const why = s.rollout === undefined ? undefined : rolloutRefusal(s.database?.strategy);
    return why ? [{ path: `services.${name}.rollout`, message: `service ${name}: ${why}` }] : [];
  });
}

/** `--steps 5,25,50`: weights in increasing order; bad input (exit 2) otherwise. */
export function parseSteps(text: string | undefined): number[] | undefined {
  if (text === undefined) return undefined;
  const parts = text.split(',').map((p) => p.trim());
  const bad = (message: string) => new ConfigError([{ file: 'command line', path: '--steps', message }], 'e.g. --steps 5,25,50: the new slot gets 5%, then 25%, then 50% of requests, then all of them');
  const weights = parts.map((p) => (/^\d{1,2}$/.test(p) ? Number(p) : NaN));
  if (parts.length === 0 || weights.some((w) => !Number.isInteger(w) || w < 1 || w > 99)) throw bad(`expected whole percentages between 1 and 99 separated by commas, found ${JSON.stringify(text)}`);
  if (weights.some((w, i) => i > 0 && w <= weights[i - 1]!)) throw bad(`expected increasing percentages, found ${JSON.stringify(text)}`);
  return weights;
}

/**
 * The rollout a promotion runs for a service: the command line's steps (with the profile's holds and
 * gates when it has a rollout, else the defaults) or the profile's, or none.
 */
export function rolloutOf(service: { name: string; rollout?: Rollout | undefined; database: Pick<Database, 'strategy'> | undefined }, steps: readonly number[] | undefined): Rollout | undefined {
  if (steps === undefined) return service.rollout;
  const why = rolloutRefusal(service.database?.strategy);
  if (why) throw new ConfigError([{ file: 'command line', path: '--steps', message: `service ${service.name}: ${why}` }], 'promote this service without --steps (--service names the others)');
  const hold = service.rollout?.steps[0]?.holdMs ?? DEFAULT_HOLD_MS;
  return { steps: steps.map((weight) => ({ weight, holdMs: hold })), gates: service.rollout?.gates ?? DEFAULT_GATES };
}
