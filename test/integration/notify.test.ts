/*
 * Webhook notifications on the lab: a local HTTP server on 127.0.0.1 receives what beta's profile
 * subscribes to (notify:) for a promotion and for an automatic rollback; a webhook answering 500, or
 * too slowly, is a warning and neither fails nor holds up the promotion past its timeoutMs.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { updateserver, type CliResult, explain } from './cli.js';
import type { NotificationBody } from '../../src/notify/notify.js';

const NET = 79;
const TIMEOUT_MS = 1000;
const BASIC = 'pre:\n  - name: health\n    http: { path: /health }\n    deadlineMs: 8000\n';
const FAILING_POST = `${BASIC}post:\n  - name: via-lb\n    http: { path: /, expectHeaders: { X-Slot: "wrong" } }\n    deadlineMs: 500\n`;

let p: Pipeline;
let server: Server;
/** What the webhook does: answer 204, answer 500, or answer only after 30 s. */
let mode: 'ok' | '500' | 'slow' = 'ok';
let received: NotificationBody[] = [];

async function newRelease(version: string): Promise<void> {
  await writeFile(join(p.appDir, 'VERSION'), `${version}\n`);
  const dev = await updateserver(p.project.dir, 'dev');
  assert.equal(dev.code, 0, explain(dev));
}

before(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => { body += d; });
    req.on('end', () => {
      assert.equal(req.headers['content-type'], 'application/json');
      received.push(JSON.parse(body) as NotificationBody);
      if (mode === 'slow') { setTimeout(() => res.end(), 30_000).unref(); return; }
      res.statusCode = mode === '500' ? 500 : 204;
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  p = await startPipeline({
    net: NET,
    betaTopExtra: `notify:\n  webhook: http://127.0.0.1:${port}/hook\n  events: [started, switched, rolled-back, failed]\n  timeoutMs: ${TIMEOUT_MS}`,
    betaServiceExtra: '    checks: web', projectFiles: { 'healthchecks/web.yaml': BASIC },
  });
  assert.equal((await updateserver(p.project.dir, 'dev')).code, 0);
});

after(async () => {
  await p?.stop();
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
});

test('a promotion posts started, then switched, with stage, service, release, slots, result, duration and run id', async () => {
  received = [];
  const r = await updateserver(p.project.dir, 'beta', '--json');
  assert.equal(r.code, 0, explain(r));
  const plan = (JSON.parse(r.stdout) as { plan: { services: Array<{ release: string; live: string; target: string }> } }).plan.services[0]!;
  assert.deepEqual(received.map((b) => b.event), ['started', 'switched']);
  const [started, switched] = received as [NotificationBody, NotificationBody];
  for (const b of received) {
    assert.equal(b.stage, 'beta');
    assert.equal(b.action, 'promote');
    assert.equal(b.from, 'dev');
    assert.deepEqual(b.services, [{ service: 'web', release: plan.release, fromSlot: plan.live, toSlot: plan.target, previousRelease: null }]);
  }
  assert.equal(started.result, 'started');
  assert.equal(switched.result, 'ok');
  assert.equal(switched.error, null);
  assert.equal(switched.runId, started.runId);
  assert.ok(switched.durationMs > 0 && switched.durationMs < r.ms, `duration ${switched.durationMs} ms within the command's ${r.ms} ms`);
});

test('an automatic rollback posts rolled-back with the failing check\'s message', async () => {
  await newRelease('2.0.0');
  await writeFile(join(p.project.dir, 'healthchecks', 'web.yaml'), FAILING_POST);
  received = [];
  try {
    const r = await updateserver(p.project.dir, 'beta');
    assert.equal(r.code, 1, explain(r));
    assert.match(r.stderr, /automatic rollback done/);
  } finally {
    await writeFile(join(p.project.dir, 'healthchecks', 'web.yaml'), BASIC);
  }
  assert.deepEqual(received.map((b) => b.event), ['started', 'rolled-back']);
  const back = received[1]!;
  assert.equal(back.result, 'rolled back');
  assert.match(back.error ?? '', /^check the new slot through every load balancer failed: lb: health check via-lb \(post, http\).*automatic rollback/s);
  assert.match(back.services[0]!.release, /-2\.0\.0-/);
});

test('a webhook answering 500 or too slowly is a warning: the promotion succeeds, held up at most timeoutMs per event', async () => {
  await newRelease('3.0.0');
  mode = '500';
  received = [];
  const failing = await updateserver(p.project.dir, 'beta');
  assert.equal(failing.code, 0, explain(failing));
  assert.match(failing.stderr, /notification "started" to http:\/\/127\.0\.0\.1:\d+\/\.\.\. failed \(the run goes on\): .*500/);
  assert.match(failing.stderr, /notification "switched" to .* failed \(the run goes on\)/);
  assert.deepEqual(received.map((b) => b.event), ['started', 'switched']);

  await newRelease('4.0.0');
  mode = 'slow';
  received = [];
  const slow = await updateserver(p.project.dir, 'beta');
  assert.equal(slow.code, 0, explain(slow));
  assert.match(slow.stderr, /notification "started" to .* failed \(the run goes on\): .*[Tt]imeout/);
  assert.deepEqual(received.map((b) => b.event), ['started', 'switched']);
  // Two notifications that never answer cost two timeouts, not the 30 s the webhook would take.
  assert.ok(slow.ms < failing.ms + 2 * TIMEOUT_MS + 5000, `slow webhook: ${slow.ms} ms vs ${failing.ms} ms with a fast one`);
  mode = 'ok';
  assert.match((await updateserver(p.project.dir, 'status', 'beta')).stdout, /web: live slot/);
});
