import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eventOf, notificationBody, sendNotification, webhookLabel } from '../../src/notify/notify.js';
import type { Logger } from '../../src/log.js';
import { PromotionFailed } from '../../src/apply/apply.js';
import { PLAN_VERSION, type Plan } from '../../src/plan/plan.js';
import { profile } from '../../src/config/schema.js';

const plan = (action: Plan['action'] = 'promote'): Plan => ({
  version: PLAN_VERSION, action, stage: 'beta', from: 'dev', createdAt: '2026-01-01T00:00:00.000Z', liveAfter: { web: 'b' }, phases: [],
  services: [{ service: 'web', live: 'a', target: 'b', release: 'r2', liveRelease: 'r1', source: 'dev', hosts: ['h1'] }],
});
const at = new Date('2026-02-03T04:05:06.000Z');

test('the body names the stage, services, release, slots, result, error, duration and run', () => {
  const body = notificationBody(plan(), 'switched', { runId: 'run-1', durationMs: 1234, at });
  assert.deepEqual({ ...body, user: 'x' }, {
    event: 'switched', runId: 'run-1', stage: 'beta', action: 'promote', from: 'dev',
    services: [{ service: 'web', release: 'r2', fromSlot: 'a', toSlot: 'b', previousRelease: 'r1' }],
    result: 'ok', error: null, durationMs: 1234, user: 'x', at: '2026-02-03T04:05:06.000Z',
  });
  assert.equal(typeof body.user, 'string');
  const started = notificationBody(plan(), 'started', { runId: 'run-1', durationMs: 0, at });
  assert.equal(started.result, 'started');
});

test('a failed run carries its error; a run switched back is a rolled-back event', () => {
  const failed = new PromotionFailed('health-check the idle slot', new Error('h1: status 500'), true);
  assert.equal(eventOf(plan(), { error: failed, rolledBack: false }), 'failed');
  const body = notificationBody(plan(), 'failed', { runId: 'r', durationMs: 5, at, error: failed, rolledBack: false });
  assert.equal(body.result, 'failed');
  assert.match(body.error ?? '', /^health-check the idle slot failed: h1: status 500/);
  const back = new PromotionFailed('watch', new Error('500'), true, true);
  assert.equal(eventOf(plan(), { error: back, rolledBack: true }), 'rolled-back');
  assert.equal(notificationBody(plan(), 'rolled-back', { runId: 'r', durationMs: 5, at, error: back, rolledBack: true }).result, 'rolled back');
  // The rollback command that succeeds is a rolled-back event with result ok; a flip is "switched".
  assert.equal(eventOf(plan('rollback'), {}), 'rolled-back');
  assert.equal(eventOf(plan('flip'), {}), 'switched');
});

test('notify in a profile: events default to all four, an unknown event or a non-http URL is refused', () => {
  const base = { hosts: {}, services: {} };
  const ok = profile.parse({ ...base, notify: { webhook: 'http://127.0.0.1:9/hook' } });
  assert.deepEqual(ok.notify, { webhook: 'http://127.0.0.1:9/hook', events: ['started', 'switched', 'rolled-back', 'failed'], timeoutMs: 5000 });
  assert.equal(profile.safeParse({ ...base, notify: { webhook: 'http://x/', events: ['done'] } }).success, false);
  assert.equal(profile.safeParse({ ...base, notify: { webhook: 'ftp://x/' } }).success, false);
});

test('logs name a webhook by scheme, host and port only: its path and query carry the token', async () => {
  assert.equal(webhookLabel('https://hooks.example.com/services/T0/B0/s3cr3t?token=s3cr3t'), 'https://hooks.example.com/...');
  assert.equal(webhookLabel('http://127.0.0.1:9/'), 'http://127.0.0.1:9');
  assert.equal(webhookLabel('http://127.0.0.1:9'), 'http://127.0.0.1:9');
  // A webhook that fails: the warning says which one without the token, whatever the driver says.
  const lines: string[] = [];
  const logger: Logger = { info: (m) => lines.push(m), warn: (m) => lines.push(m), error: (m) => lines.push(m), debug: (m) => lines.push(m), close: async () => {} };
  const body = notificationBody(plan(), 'started', { runId: 'r', durationMs: 1, at });
  // Port 9 on a loopback address nobody listens on: refused at once.
  await sendNotification({ webhook: 'http://127.0.0.1:9/hooks/s3cr3t-token?key=s3cr3t-token', events: ['started'], timeoutMs: 2000 }, body, logger);
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /^notification "started" to http:\/\/127\.0\.0\.1:9\/\.\.\. failed \(the run goes on\): /);
  assert.ok(!lines[0]!.includes('s3cr3t'), lines[0]);
});

test('a rollback\'s notification carries the rows written to the slot it left (counts per service and table, issue 21)', async () => {
  const { createServer } = await import('node:http');
  const { runNotifier } = await import('../../src/notify/notify.js');
  const bodies: unknown[] = [];
  const server = createServer((req, res) => {
    let text = '';
    req.on('data', (d: Buffer) => { text += d.toString(); });
    req.on('end', () => { bodies.push(JSON.parse(text)); res.end('ok'); });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  try {
    const port = (server.address() as { port: number }).port;
    const logger: Logger = { info: () => {}, warn: (m) => assert.fail(m), error: (m) => assert.fail(m), debug: () => {}, close: async () => {} };
    const counts = { web: { inserted: 2, updated: 1, deleted: 0, tables: { writes: { inserted: 2, updated: 1, deleted: 0 } } } };
    await runNotifier({ webhook: `http://127.0.0.1:${port}/`, events: ['rolled-back'], timeoutMs: 2000 }, plan('rollback'), logger, 'run-9').finished(undefined, { written: counts });
    assert.equal(bodies.length, 1);
    assert.deepEqual((bodies[0] as { event: string; changes: unknown }).changes, counts);
    assert.equal((bodies[0] as { event: string }).event, 'rolled-back');
  } finally {
    await new Promise((r) => server.close(r));
  }
});
