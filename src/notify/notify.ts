/*
 * Webhook notifications (seed 003): one JSON POST per event of a run, for chat or paging. The run
 * never depends on them: each POST is bounded by the profile's timeoutMs, is not retried, and any
 * failure (refused, 500, too slow) becomes a warning in the log. got is loaded only when a profile
 * asks for notifications.
 */
import { userInfo } from 'node:os';
import type { Notify, NotifyEvent } from '../config/model.js';
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Plan } from '../plan/plan.js';
import { PromotionFailed } from '../apply/apply.js';
import { sendReleaseMail, type RunSummary } from './email.js';
import { rolloutAbortOf, type RolloutAbort } from './rollout-abort.js';
import type { ChangeCounts } from '../data/changes/report.js';

export interface NotificationBody {
  event: NotifyEvent;
  runId: string;
  stage: string;
  /** promote, flip or rollback. */
  action: Plan['action'];
  /** Where the release comes from: the previous stage, or "source" for the first stage. */
  from: string;
  services: Array<{ service: string; release: string; fromSlot: string; toSlot: string; previousRelease: string | null }>;
  /** started, ok, failed or rolled back. */
  result: 'started' | 'ok' | 'failed' | 'rolled back';
  error: string | null;
  durationMs: number;
  user: string;
  at: string;
  /** A rollback or flip: per service (and table), the rows inserted, updated and deleted on the slot left since it went live. */
  changes?: ChangeCounts;
  /** A progressive rollout that was aborted: the gate that failed, its step and its figures (src/notify/rollout-abort.ts). */
  rollout?: RolloutAbort;
}

export interface RunOutcome {
  runId: string;
  durationMs: number;
  at: Date;
  /** Set when the run failed; rolledBack when traffic had moved and was switched back to the old slot. */
  error?: unknown;
  rolledBack?: boolean;
}

/** Which event a finished run is: a rollback (automatic, or the rollback command), a failure, or traffic switched. */
export function eventOf(plan: Plan, outcome: Pick<RunOutcome, 'error' | 'rolledBack'>): NotifyEvent {
  if (outcome.error !== undefined) return outcome.rolledBack ? 'rolled-back' : 'failed';
  return plan.action === 'rollback' ? 'rolled-back' : 'switched';
}

/** The POST body: plain data, the same for every receiver. */
export function notificationBody(plan: Plan, event: NotifyEvent, outcome: RunOutcome): NotificationBody {
  return {
    event, runId: outcome.runId, stage: plan.stage, action: plan.action, from: plan.from,
    services: plan.services.map((s) => ({ service: s.service, release: s.release, fromSlot: s.live, toSlot: s.target, previousRelease: s.liveRelease ?? null })),
    result: event === 'started' ? 'started' : outcome.error === undefined ? 'ok' : outcome.rolledBack ? 'rolled back' : 'failed',
    error: outcome.error === undefined ? null : describeError(outcome.error),
    durationMs: outcome.durationMs, user: userInfo().username, at: outcome.at.toISOString(),
    ...withRolloutAbort(outcome.error),
  };
}

const withRolloutAbort = (error: unknown): { rollout?: RolloutAbort } => {
  const rollout = error === undefined ? undefined : rolloutAbortOf(error);
  return rollout ? { rollout } : {};
};

/**
 * The webhook as logs may show it: scheme, host and port only. Chat and paging webhooks carry their
 * token in the path or the query (https://hooks.example.com/services/T0/B0/<token>), and logs, the
 * journal and CI output are read by more people than the profile.
 */
export function webhookLabel(webhook: string): string {
  try {
    const url = new URL(webhook);
    return url.pathname === '/' && url.search === '' && url.hash === '' ? url.origin : `${url.origin}/...`;
  } catch {
    return 'the webhook';
  }
}

/** A message that may quote the webhook (a driver's error) with the URL replaced by its label. */
function withoutWebhook(message: string, webhook: string): string {
  const url = new URL(webhook);
  const parts = [webhook, url.href, `${url.pathname}${url.search}`, url.search.slice(1)].filter((p) => p.length > 1);
  return parts.reduce((m, p) => m.split(p).join(p === webhook || p === url.href ? webhookLabel(webhook) : '...'), message);
}

/** Posts the body if the profile subscribes to its event; never throws, never waits past timeoutMs. */
export async function sendNotification(notify: Notify | undefined, body: NotificationBody, logger: Logger): Promise<void> {
  const webhook = notify?.webhook;
  if (!notify || webhook === undefined || !notify.events.includes(body.event)) return;
  try {
    const { got } = await import('got');
    await got.post(webhook, { json: body, timeout: { request: notify.timeoutMs }, retry: { limit: 0 }, throwHttpErrors: true });
    logger.debug(`notified ${webhookLabel(webhook)}: ${body.event}`);
  } catch (err) {
    logger.warn(`notification "${body.event}" to ${webhookLabel(webhook)} failed (the run goes on): ${withoutWebhook(describeError(err), webhook)}`);
  }
}

/**
 * The notifications of one run: started before its first step, then how it ended: the webhook's
 * event and the release mail (issue 19), with what the caller knows by then (data versions, changes).
 */
export function runNotifier(notify: Notify | undefined, plan: Plan, logger: Logger, runId: string, now: () => Date = () => new Date()) {
  const t0 = Date.now();
  const send = (event: NotifyEvent, extra: Pick<RunOutcome, 'error' | 'rolledBack'> = {}, changes?: ChangeCounts) =>
    sendNotification(notify, { ...notificationBody(plan, event, { runId, durationMs: Date.now() - t0, at: now(), ...extra }), ...(changes ? { changes } : {}) }, logger);
  return {
    started: () => send('started'),
    /** `written`: what was written to the slot traffic left (a rollback or flip), for the webhook. */
    finished: async (error?: unknown, facts: Pick<RunSummary, 'data' | 'changes' | 'warnings'> & { written?: ChangeCounts | undefined } = {}) => {
      const outcome = error === undefined ? {} : { error, rolledBack: error instanceof PromotionFailed && error.rolledBack };
      const durationMs = Date.now() - t0;
      const { written, ...summary } = facts;
      await Promise.all([
        send(eventOf(plan, outcome), outcome, written),
        sendReleaseMail(notify?.email, {
          plan, runId, durationMs, ...summary,
          result: error === undefined ? 'ok' : outcome.rolledBack ? 'rolled back' : 'failed',
          ...(error === undefined ? {} : { error: describeError(error), ...withRolloutAbort(error) }),
        }, logger),
      ]);
    },
  };
}
