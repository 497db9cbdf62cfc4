/*
 * The release mail (issue 19, seed 003): the run's summary, when it ends, to the profile's addresses
 * through its SMTP server. STARTTLS is required unless the profile turns it off; the password comes
 * from the environment variable the profile names and is never logged. Like the webhook it never fails
 * or holds up a run: every stage of the conversation is bounded by timeoutMs, the whole send too, and
 * any failure is a warning. nodemailer is loaded only when a profile asks for mail.
 */
import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import type { EmailNotify } from '../config/model.js';
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Plan } from '../plan/plan.js';
import type { DataRecord } from '../state/store.js';
import type { ReleaseChanges } from './changes.js';
import { rolloutAbortLines, type RolloutAbort } from './rollout-abort.js';

export interface RunSummary {
  plan: Plan;
  runId: string;
  result: 'ok' | 'failed' | 'rolled back';
  error?: string;
  durationMs: number;
  /** What the data step left per service (the data version). */
  data?: Record<string, DataRecord | undefined>;
  changes?: ReleaseChanges[];
  warnings?: string[];
  /** An aborted rollout: the gate that failed and its figures. */
  rollout?: RolloutAbort;
}

export function mailSubject(s: RunSummary): string {
  const what = s.plan.action === 'promote' ? 'promoted' : s.plan.action === 'rollback' ? 'rolled back' : 'flipped';
  const services = s.plan.services.map((x) => `${x.service} ${x.release}`).join(', ');
  return `[updateserver] ${s.plan.stage}: ${services} ${s.result === 'ok' ? what : s.result.toUpperCase()}`;
}

/** The mail's text: plain lines, the same facts as the webhook's body and a little more. */
export function mailBody(s: RunSummary): string {
  const p = s.plan;
  const lines = [
    `Stage:    ${p.stage} (${p.action}${p.action === 'promote' ? ` from ${p.from}` : ''})`,
    `Result:   ${s.result}`,
    `Duration: ${(s.durationMs / 1000).toFixed(1)} s`,
    `Run:      ${s.runId} by ${userInfo().username}`,
    '',
    'Services:',
    ...p.services.flatMap((x) => {
      const d = s.data?.[x.service];
      return [
        `  ${x.service}: release ${x.release}`,
        `    slot ${x.live} -> ${x.target}; previous release ${x.liveRelease ?? 'none'}`,
        ...(d ? [`    data version ${d.version ?? 'none'} (database ${d.database})`] : []),
      ];
    }),
  ];
  for (const c of s.changes ?? []) {
    lines.push('', `Changes of ${c.service} since ${c.from || 'nothing'}:`);
    if (c.files) lines.push(`  files: ${c.files.added} added, ${c.files.changed} changed, ${c.files.removed} removed`);
    if (c.commits) lines.push(`  commits (${c.commits.length}):`, ...c.commits.map((l) => `    ${l}`));
    if (c.note) lines.push(`  ${c.note}`);
  }
  if (s.error) lines.push('', 'Error:', ...s.error.split('\n').map((l) => `  ${l}`));
  if (s.rollout) lines.push('', ...rolloutAbortLines(s.rollout));
  if (s.warnings?.length) lines.push('', 'Warnings:', ...s.warnings.map((w) => `  ${w}`));
  return `${lines.join('\n')}\n`;
}

/** Sends the summary; never throws, never takes much longer than timeoutMs. */
export async function sendReleaseMail(email: EmailNotify | undefined, summary: RunSummary, logger: Logger): Promise<void> {
  if (!email) return;
  const where = `${email.smtp.host}:${email.smtp.port}`;
  let timer: NodeJS.Timeout | undefined;
  try {
    const { createTransport } = await import('nodemailer');
    const ca = email.smtp.caFile ? await readFile(email.smtp.caFile, 'utf8') : undefined;
    const transport = createTransport({
      host: email.smtp.host, port: email.smtp.port, secure: false,
      requireTLS: email.smtp.starttls, ignoreTLS: !email.smtp.starttls,
      connectionTimeout: email.timeoutMs, greetingTimeout: email.timeoutMs, socketTimeout: email.timeoutMs, dnsTimeout: email.timeoutMs,
      ...(ca ? { tls: { ca } } : {}),
      ...(email.smtp.user ? { auth: { user: email.smtp.user, pass: email.smtp.password?.reveal() ?? '' } } : {}),
    });
    const sent = transport.sendMail({ from: email.from, to: [...email.to], subject: mailSubject(summary), text: mailBody(summary) });
    const deadline = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`no answer within ${email.timeoutMs} ms`)), email.timeoutMs); });
    await Promise.race([sent, deadline]).finally(() => transport.close());
    logger.info(`release mail sent to ${email.to.join(', ')} through ${where}`);
  } catch (err) {
    // nodemailer's errors name the server and the SMTP reply, never the password.
    logger.warn(`release mail to ${email.to.join(', ')} through ${where} failed (the run goes on): ${describeError(err)}`);
  } finally {
    if (timer) clearTimeout(timer);
  }
}
