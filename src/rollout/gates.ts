/*
 * The judgement of one rollout step, as pure arithmetic over HAProxy's own counters (`show stat`): the
 * new slot's backend against the old slot's, over the same window, summed over every load balancer.
 * Counters are read at the start and at the end of the window; a counter that went down was restarted
 * by a reload and counts from zero.
 */
import type { StatRow } from '../lb/stat.js';
import type { RolloutGates } from './profile.js';

/** What one backend did, from its BACKEND row (or the sum of several load balancers' rows). */
export interface BackendCounters {
  /** Responses of every status class (hrsp_1xx .. hrsp_5xx, hrsp_other). */
  responses: number;
  http5xx: number;
  /** Connection errors to its servers and response errors (econ + eresp). */
  errors: number;
  /**
   * Response time (ms). Read from a row: rtime, HAProxy's sliding average (ms). In a window: the mean of
   * the window's own requests, recovered from the averages at its two ends (windowOf).
   */
  rtimeMs: number;
  /** How far rtimeMs may be off in a window: HAProxy prints whole milliseconds, and few requests magnify that. */
  rtimeErrMs?: number;
}

/**
 * rtime is a sliding average (swrate) over TIME_STATS_SAMPLES = 512 in HAProxy 2.x: each response moves it
 * by 1/512 of the difference, so after n responses of mean m, avg1 = avg0 * d + m * (1 - d) with
 * d = (1 - 1/512)^n. Read alone it mixes a slot's window with the requests it served long before (a slot
 * that was live earlier would hide a slowdown behind hundreds of old fast requests).
 */
export const RTIME_SAMPLES = 512;
export function windowMeanMs(avgBefore: number, avgAfter: number, n: number): number {
  if (n <= 0) return avgAfter;
  const d = (1 - 1 / RTIME_SAMPLES) ** n;
  return Math.max(0, (avgAfter - avgBefore * d) / (1 - d));
}

/** The most the window's mean can be off when both averages are whole milliseconds (each within 1 ms). */
export function windowMeanErrMs(n: number): number {
  if (n <= 0) return 1;
  const d = (1 - 1 / RTIME_SAMPLES) ** n;
  return (1 + d) / (1 - d);
}

const ZERO: BackendCounters = { responses: 0, http5xx: 0, errors: 0, rtimeMs: 0 };
const num = (row: StatRow, col: string) => Number(row.raw[col] || 0) || 0;

export function countersOf(rows: readonly StatRow[], backend: string): BackendCounters {
  const row = rows.find((r) => r.proxy === backend && r.type === 'backend');
  if (!row) return ZERO;
  return {
    responses: ['hrsp_1xx', 'hrsp_2xx', 'hrsp_3xx', 'hrsp_4xx', 'hrsp_5xx', 'hrsp_other'].reduce((s, c) => s + num(row, c), 0),
    http5xx: num(row, 'hrsp_5xx'),
    errors: num(row, 'econ') + num(row, 'eresp'),
    rtimeMs: num(row, 'rtime'),
  };
}

/** What happened between two readings of one backend on one load balancer. */
export function windowOf(before: BackendCounters, after: BackendCounters): BackendCounters {
  // A reload restarts the counters: what the new process counted is the window's part we can see.
  const restarted = after.responses < before.responses;
  const d = (a: number, b: number) => (restarted ? b : b - a);
  const responses = d(before.responses, after.responses);
  // After a reload the new process's average started from 0.
  return { responses, http5xx: d(before.http5xx, after.http5xx), errors: d(before.errors, after.errors), rtimeMs: windowMeanMs(restarted ? 0 : before.rtimeMs, after.rtimeMs, responses), rtimeErrMs: windowMeanErrMs(responses) };
}

/** Windows of several load balancers as one: counts add up, response times are weighted by responses. */
export function sumWindows(windows: readonly BackendCounters[]): BackendCounters {
  const responses = windows.reduce((s, w) => s + w.responses, 0);
  const weighted = windows.reduce((s, w) => s + w.rtimeMs * w.responses, 0);
  return {
    responses, http5xx: windows.reduce((s, w) => s + w.http5xx, 0), errors: windows.reduce((s, w) => s + w.errors, 0),
    rtimeMs: responses > 0 ? weighted / responses : Math.max(0, ...windows.map((w) => w.rtimeMs)),
    rtimeErrMs: Math.max(0, ...windows.map((w) => w.rtimeErrMs ?? 0)),
  };
}

export interface GateFigures {
  old: BackendCounters;
  new: BackendCounters;
  /** The new slot's share of the window's responses (0..1). */
  share: number;
  rate5xx: { old: number; new: number };
  errorRate: { old: number; new: number };
  latencyRatio: number;
}

export type Verdict =
  | { result: 'pass'; figures: GateFigures; note?: string }
  | { result: 'fail'; gate: 'max5xxRate' | 'maxErrorRate' | 'maxLatencyRatio' | 'minRequests'; figures: GateFigures; message: string }
  | { result: 'too-few'; figures: GateFigures };

const ratio = (part: number, whole: number) => (whole > 0 ? part / whole : 0);
const pct = (x: number) => `${(x * 100).toFixed(2)}%`;

export function figuresOf(oldW: BackendCounters, newW: BackendCounters, floorMs: number): GateFigures {
  // Errors are requests that got no answer from the slot: they count in the whole the rates are shares of.
  const all = (w: BackendCounters) => w.responses + w.errors;
  return {
    old: oldW, new: newW,
    share: ratio(all(newW), all(newW) + all(oldW)),
    rate5xx: { old: ratio(oldW.http5xx, all(oldW)), new: ratio(newW.http5xx, all(newW)) },
    errorRate: { old: ratio(oldW.errors, all(oldW)), new: ratio(newW.errors, all(newW)) },
    // Judged in the new slot's favour where whole-millisecond averages leave doubt: a gate fails only on a sure slowdown.
    latencyRatio: Math.max(newW.rtimeMs - (newW.rtimeErrMs ?? 0), floorMs) / Math.max(oldW.rtimeMs + (oldW.rtimeErrMs ?? 0), floorMs, 1e-9),
  };
}

/**
 * Judges a step's window. `final`: the step's deadline has come, so too few requests are judged as
 * configured (onTooFew) instead of waiting longer.
 */
export function judge(gates: RolloutGates, oldW: BackendCounters, newW: BackendCounters, final: boolean): Verdict {
  const figures = figuresOf(oldW, newW, gates.latencyFloorMs);
  const seen = newW.responses + newW.errors;
  if (seen < gates.minRequests) {
    if (!final) return { result: 'too-few', figures };
    if (gates.onTooFew === 'pass') return { result: 'pass', figures, note: `only ${seen} request(s) on the new slot (minRequests ${gates.minRequests}): passed as configured (onTooFew: pass)` };
    // None at all while the old slot was busy: most likely a frontend without the rollout rule (a project's own template).
    const why = seen === 0 && oldW.responses >= gates.minRequests ? `; the old slot answered ${oldW.responses}: does every frontend of the HAProxy configuration have the rollout lines of lb-templates/haproxy.cfg (docs/decisions/0016)?` : '';
    return { result: 'fail', gate: 'minRequests', figures, message: `only ${seen} request(s) reached the new slot by the step's deadline (minRequests ${gates.minRequests}, onTooFew: fail)${why}` };
  }
  if (figures.rate5xx.new > gates.max5xxRate) {
    return { result: 'fail', gate: 'max5xxRate', figures, message: `5xx answers on the new slot ${pct(figures.rate5xx.new)} (${newW.http5xx} of ${seen}) > max5xxRate ${pct(gates.max5xxRate)}; old slot ${pct(figures.rate5xx.old)} (${oldW.http5xx} of ${oldW.responses + oldW.errors})` };
  }
  if (figures.errorRate.new > gates.maxErrorRate) {
    return { result: 'fail', gate: 'maxErrorRate', figures, message: `connection and response errors on the new slot ${pct(figures.errorRate.new)} (${newW.errors} of ${seen}) > maxErrorRate ${pct(gates.maxErrorRate)}; old slot ${pct(figures.errorRate.old)}` };
  }
  if (figures.latencyRatio > gates.maxLatencyRatio) {
    return { result: 'fail', gate: 'maxLatencyRatio', figures, message: `response time on the new slot ${newW.rtimeMs.toFixed(0)} ms vs ${oldW.rtimeMs.toFixed(0)} ms on the old slot: ratio ${figures.latencyRatio.toFixed(2)} > maxLatencyRatio ${gates.maxLatencyRatio} (times below ${gates.latencyFloorMs} ms count as ${gates.latencyFloorMs} ms)` };
  }
  return { result: 'pass', figures };
}

/** One line of figures for logs and the dry run's readers. */
export function describeFigures(f: GateFigures): string {
  return `new slot ${f.new.responses + f.new.errors} request(s) (${pct(f.share)} of the window), 5xx ${pct(f.rate5xx.new)} vs ${pct(f.rate5xx.old)}, errors ${pct(f.errorRate.new)} vs ${pct(f.errorRate.old)}, response time ${f.new.rtimeMs.toFixed(0)} ms vs ${f.old.rtimeMs.toFixed(0)} ms`;
}
