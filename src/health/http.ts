/*
 * The HTTP sanity check: GET a path until it answers an expected status, waiting out a slow start
 * up to the check's deadline instead of failing on the first refused connection.
 */
import got from 'got';
import pRetry, { AbortError } from 'p-retry';
import type { HttpCheckData } from '../config/schema.js';
import { HealthCheckFailed } from '../errors.js';

export interface CheckReport {
  check: string;
  host: string;
  url: string;
  ok: boolean;
  attempts: number;
  latencyMs: number;
  lastError?: string;
}

export async function httpCheck(host: string, url: string, check: Readonly<HttpCheckData>, signal?: AbortSignal): Promise<CheckReport> {
  const started = Date.now();
  let attempts = 0;
  let lastError = '';
  const name = `http GET ${new URL(url).pathname}`;
  try {
    await pRetry(async () => {
      attempts++;
      const remaining = check.deadlineMs - (Date.now() - started);
      if (remaining <= 0) throw new AbortError(lastError || 'deadline passed');
      const t0 = Date.now();
      let status: number;
      try {
        const res = await got(url, {
          throwHttpErrors: false, retry: { limit: 0 }, followRedirect: false,
          timeout: { request: Math.min(check.attemptTimeoutMs, remaining) }, ...(signal ? { signal } : {}),
        });
        status = res.statusCode;
      } catch (err) {
        lastError = (err as Error).message;
        throw err;
      }
      if (!check.expectStatus.includes(status)) {
        lastError = `status ${status}, expected ${check.expectStatus.join(' or ')}`;
        throw new Error(lastError);
      }
      return Date.now() - t0;
    }, {
      // p-retry precomputes every delay, so the count must be finite; the deadline is what really bounds it.
      retries: Math.ceil(check.deadlineMs / Math.max(1, check.intervalMs)) + 1,
      minTimeout: check.intervalMs,
      maxTimeout: Math.max(check.intervalMs, 1000),
      factor: 1.3,
      maxRetryTime: check.deadlineMs,
      ...(signal ? { signal } : {}),
    });
    return { check: name, host, url, ok: true, attempts, latencyMs: Date.now() - started };
  } catch (err) {
    const report: CheckReport = { check: name, host, url, ok: false, attempts, latencyMs: Date.now() - started, lastError: lastError || (err as Error).message };
    throw Object.assign(new HealthCheckFailed(host, `${name} on ${url}`, `${report.lastError} after ${attempts} attempt(s) in ${report.latencyMs} ms`, { cause: err }), { report });
  }
}
