/*
 * Runs one health check against one target, retried with p-retry until it passes, its attempts run
 * out or its deadline passes. Every run yields a report (passed or not, attempts, last error, latency)
 * for the console, the JSON log and the failure message.
 */
import { connect } from 'node:net';
import pRetry, { AbortError } from 'p-retry';
import type { CheckPhase, CheckSpec, HttpSpec } from '../config/healthchecks.js';
import { checkKind } from '../config/healthchecks.js';
import { expand, type SlotContext } from '../commands/placeholders.js';
import { HealthCheckFailed } from '../errors.js';
import { urlHost } from '../commands/shell.js';
import { httpRequest } from './http.js';
import type { DatabaseConnection } from '../config/model.js';
import { openDb } from '../data/db.js';
import { describeConnection } from '../data/connection.js';
import type { Transport } from '../transport/transport.js';

export interface CheckTarget {
  /** Where the check runs: a host's slot (pre) or a load balancer's frontend (post, watch). */
  label: string;
  /** Host name for errors (the slot's host, or the load balancer's name). */
  host: string;
  address: string;
  port: number;
  /** The slot and release the answers must come from. */
  slot: string;
  release: string;
  /** For sql checks: the slot's database. */
  database?: DatabaseConnection;
  /** For command checks: the slot's host connection and placeholders. */
  transport?: Transport;
  context?: SlotContext;
  /** For command checks: the command as the plan expanded it (run as is; else expanded from context here). */
  command?: string;
}

export interface CheckReport {
  check: string;
  kind: string;
  phase: CheckPhase;
  target: string;
  ok: boolean;
  attempts: number;
  /** Time of the whole check, all attempts. */
  ms: number;
  /** Time of the last attempt. */
  latencyMs: number;
  lastError?: string;
}

const DEFAULTS: Record<CheckPhase, { attempts: number; intervalMs: number; backoff: number; deadlineMs: number; attemptTimeoutMs: number }> = {
  pre: { attempts: 1_000_000, intervalMs: 100, backoff: 1.3, deadlineMs: 15_000, attemptTimeoutMs: 1000 },
  // Users already see the new slot: a failing post check should hand traffic back quickly.
  post: { attempts: 1_000_000, intervalMs: 100, backoff: 1.3, deadlineMs: 1500, attemptTimeoutMs: 1000 },
  // While watching, one failed answer is enough: the old slot is still there to take the traffic back.
  watch: { attempts: 1, intervalMs: 100, backoff: 1, deadlineMs: 5000, attemptTimeoutMs: 1000 },
};

export function retryOf(spec: CheckSpec, phase: CheckPhase) {
  const d = DEFAULTS[phase];
  return {
    attempts: spec.attempts ?? d.attempts, intervalMs: spec.intervalMs ?? d.intervalMs, backoff: spec.backoff ?? d.backoff,
    deadlineMs: spec.deadlineMs ?? d.deadlineMs, attemptTimeoutMs: spec.attemptTimeoutMs ?? d.attemptTimeoutMs,
  };
}

function field(value: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((v, k) => (v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined), value);
}

async function httpAttempt(spec: HttpSpec, target: CheckTarget, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  const url = `http://${urlHost(target.address)}:${target.port}${spec.path}`;
  const res = await httpRequest(url, {
    method: spec.method, headers: spec.headers, ...(spec.body !== undefined ? { body: spec.body } : {}),
    timeoutMs, ...(signal ? { signal } : {}),
  }).catch((err: unknown) => {
    // The driver's messages do not say which request failed.
    if (signal?.aborted) throw err;
    throw new Error(`${spec.method} ${url}: ${(err as Error).message}`, { cause: err });
  });
  const latency = res.totalMs;
  if (!spec.status.includes(res.statusCode)) throw new Error(`${spec.method} ${url}: status ${res.statusCode}, expected ${spec.status.join(' or ')}`);
  if (spec.bodyContains !== undefined && !res.body.includes(spec.bodyContains)) throw new Error(`${url}: body does not contain ${JSON.stringify(spec.bodyContains)}`);
  if (spec.bodyMatches !== undefined && !new RegExp(spec.bodyMatches).test(res.body)) throw new Error(`${url}: body does not match /${spec.bodyMatches}/`);
  if (spec.json) {
    let parsed: unknown;
    try { parsed = JSON.parse(res.body); } catch { throw new Error(`${url}: answer is not JSON`); }
    const actual = field(parsed, spec.json.path);
    if (actual !== spec.json.equals) throw new Error(`${url}: ${spec.json.path} is ${JSON.stringify(actual)}, expected ${JSON.stringify(spec.json.equals)}`);
  }
  for (const [name, want] of Object.entries(spec.expectHeaders)) {
    const expected = want.replaceAll('{slot}', target.slot).replaceAll('{release}', target.release);
    const actual = res.headers[name.toLowerCase()];
    if (actual !== expected) throw new Error(`${url}: header ${name} is ${JSON.stringify(actual ?? null)}, expected ${JSON.stringify(expected)}`);
  }
  if (spec.maxLatencyMs !== undefined && latency > spec.maxLatencyMs) throw new Error(`${url}: answered in ${latency} ms, more than ${spec.maxLatencyMs} ms`);
}

function tcpAttempt(target: CheckTarget, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: target.address, port: target.port });
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`tcp ${target.address}:${target.port}: no connection within ${timeoutMs} ms`)); }, timeoutMs);
    socket.once('connect', () => { clearTimeout(timer); socket.destroy(); resolve(); });
    socket.once('error', (err) => { clearTimeout(timer); reject(new Error(`tcp ${target.address}:${target.port}: ${err.message}`)); });
  });
}

async function commandAttempt(spec: { run: string }, target: CheckTarget, timeoutMs: number): Promise<void> {
  if (!target.transport || (!target.context && target.command === undefined)) throw new AbortError('a command check runs on a slot\'s host; it has no host here');
  const command = target.command ?? expand(spec.run, target.context!);
  const r = await target.transport.exec(command, { timeoutMs });
  if (r.code !== 0) throw new Error(`\`${command}\` exited ${r.code ?? 'on a signal'}${(r.stderr || r.stdout).trim() ? `: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' / ')}` : ''}`);
}

async function sqlAttempt(spec: { query: string; expect: string }, target: CheckTarget): Promise<void> {
  if (!target.database) throw new AbortError('an sql check needs the slot\'s database; this service has none');
  const db = await openDb(target.database);
  try {
    const rows = await db.query<Record<string, unknown>>(spec.query);
    const first = rows[0] === undefined ? undefined : Object.values(rows[0])[0];
    const actual = first === undefined || first === null ? '' : String(first);
    if (actual !== spec.expect) throw new Error(`${describeConnection(target.database)}: \`${spec.query}\` returned ${JSON.stringify(actual)}, expected ${JSON.stringify(spec.expect)}`);
  } finally {
    await db.close();
  }
}

async function attempt(spec: CheckSpec, target: CheckTarget, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  switch (checkKind(spec)) {
    case 'http': return httpAttempt(spec.http!, target, timeoutMs, signal);
    case 'tcp': return tcpAttempt(target, timeoutMs);
    case 'command': return commandAttempt(spec.command!, target, timeoutMs);
    case 'sql': return sqlAttempt(spec.sql!, target);
  }
}

/** Runs the check; resolves with its report when it passes, throws HealthCheckFailed (with the report) when not. */
export async function runCheck(spec: CheckSpec, phase: CheckPhase, target: CheckTarget, signal?: AbortSignal): Promise<CheckReport> {
  const r = retryOf(spec, phase);
  const started = Date.now();
  let attempts = 0;
  let lastError = '';
  let lastStart = started;
  const report = (ok: boolean): CheckReport => ({
    check: spec.name, kind: checkKind(spec), phase, target: target.label, ok, attempts,
    ms: Date.now() - started, latencyMs: Date.now() - lastStart, ...(ok ? {} : { lastError }),
  });
  try {
    await pRetry(async () => {
      const remaining = r.deadlineMs - (Date.now() - started);
      if (remaining <= 0) throw new AbortError(lastError || 'deadline passed');
      attempts++;
      lastStart = Date.now();
      try {
        await attempt(spec, target, Math.min(r.attemptTimeoutMs, remaining), signal);
      } catch (err) {
        lastError = (err as Error).message;
        throw err;
      }
    }, {
      // p-retry computes every delay up front, so the count must be finite; the deadline bounds it anyway.
      retries: Math.min(r.attempts - 1, Math.ceil(r.deadlineMs / Math.max(1, r.intervalMs)) + 1),
      // The pause between attempts is not cut to the time left, so it is kept to a quarter of the deadline at most.
      minTimeout: r.intervalMs, maxTimeout: Math.max(r.intervalMs, Math.min(2000, r.deadlineMs / 4)), factor: r.backoff, maxRetryTime: r.deadlineMs,
      ...(signal ? { signal } : {}),
    });
    return report(true);
  } catch (err) {
    const failed = report(false);
    throw Object.assign(new HealthCheckFailed(target.host, `${spec.name} (${phase}, ${failed.kind}) on ${target.label}`,
      `${failed.lastError ?? (err as Error).message} after ${attempts} attempt(s) in ${failed.ms} ms`, { cause: err }), { report: failed });
  }
}
