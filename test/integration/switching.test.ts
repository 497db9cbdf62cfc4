/*
 * Traffic switching (issue 3) on the real lab under sustained load: manual flips, HAProxy reload and
 * restart after a switch, maintenance and read-only modes, an HA pair of load balancers where the
 * second fails in the middle of the switch, and the rendered configuration.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { startLoad, type LoadResult } from '../lab/load.js';
import { startFaultSocket, type FaultSocket } from '../lab/fault-socket.js';
import { updateserver, type CliResult } from './cli.js';

let p: Pipeline;
let fault: FaultSocket;
const explain = (r: CliResult) => `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;

async function answer(url: string, method = 'GET'): Promise<{ status: number; slot: string | null; retryAfter: string | null }> {
  const res = await fetch(`${url}/${method === 'POST' ? 'echo' : ''}`, { method, headers: { connection: 'close' }, ...(method === 'POST' ? { body: 'x' } : {}) });
  await res.text();
  return { status: res.status, slot: res.headers.get('x-slot'), retryAfter: res.headers.get('retry-after') };
}

/** Runs fn under load and keeps the load going until the window holds at least minRequests. */
async function underLoad<T>(url: string, fn: () => Promise<T>, minRequests = 20_000): Promise<{ value: T; load: LoadResult }> {
  const load = startLoad(url, { connections: 8, maxDurationMs: 60_000 });
  await new Promise((r) => setTimeout(r, 200));
  const value = await fn();
  const deadline = Date.now() + 20_000;
  while (load.snapshot().requests < minRequests && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  return { value, load: await load.stop() };
}

function assertNoFailures(load: LoadResult, minRequests = 20_000): void {
  assert.ok(load.requests >= minRequests, `only ${load.requests} requests in the window`);
  assert.equal(load.non2xx + load.errors + load.timeouts, 0, JSON.stringify(load));
}

before(async () => {
  const dir = await import('node:fs/promises').then((fs) => fs.mkdtemp('/tmp/updateserver-fault-'));
  const faultPath = join(dir, 'lb2.sock');
  p = await startPipeline({ net: 67, betaSecondLb: { socket: faultPath } });
  // Until a test asks for failures, the proxy refuses nothing.
  fault = await startFaultSocket(faultPath, p.lb2!.socket, /^$/);
  for (const stage of ['dev', 'beta']) {
    const r = await updateserver(p.project.dir, stage);
    assert.equal(r.code, 0, explain(r));
  }
  await updateserver(p.project.dir, 'beta', '--force');
});

after(async () => {
  await fault?.close();
  await p?.stop();
});

test('a manual flip and a flip back, each with >= 20,000 requests and 0 failed; both load balancers follow', async () => {
  const before = (await answer(p.url.beta)).slot;
  const { value: flip, load } = await underLoad(p.url.beta, () => updateserver(p.project.dir, 'flip', 'beta'));
  assert.equal(flip.code, 0, explain(flip));
  assertNoFailures(load);
  const after = (await answer(p.url.beta)).slot;
  assert.notEqual(after, before);
  assert.equal((await answer(`http://127.0.67.3:8080`)).slot, after, 'the second load balancer switched too');
  const { value: back, load: load2 } = await underLoad(p.url.beta, () => updateserver(p.project.dir, 'flip', 'beta'));
  assert.equal(back.code, 0, explain(back));
  assertNoFailures(load2);
  assert.equal((await answer(p.url.beta)).slot, before);
  console.log(`flip: ${load.requests} requests, flip back: ${load2.requests} requests, 0 failed`);
});

test('after a switch, an HAProxy reload (under load, 0 failed) and a restart keep the new slot live', async () => {
  const flip = await updateserver(p.project.dir, 'flip', 'beta');
  assert.equal(flip.code, 0, explain(flip));
  const live = (await answer(p.url.beta)).slot;
  assert.match(await readFile(p.lbs.beta.mapFile, 'utf8'), new RegExp(`^web web_${live}$`, 'm'));
  const { load } = await underLoad(p.url.beta, () => p.lbs.beta.reload(), 5000);
  assertNoFailures(load, 5000);
  assert.equal((await answer(p.url.beta)).slot, live);
  await p.lbs.beta.restart();
  assert.equal((await answer(p.url.beta)).slot, live, 'the map file on disk keeps the new slot across a restart');
});

test('maintenance on: every request gets the maintenance page (503, Retry-After); read-only: writes 503, reads served; off: normal', async () => {
  assert.equal((await updateserver(p.project.dir, 'maintenance', 'beta', 'on')).code, 0);
  const load = startLoad(`${p.url.beta}/`, { connections: 4 });
  await new Promise((r) => setTimeout(r, 1000));
  const during = await load.stop();
  assert.ok(during.requests > 100);
  assert.equal(during.ok, 0, 'no request reached the application');
  assert.equal(during.non2xx, during.requests, 'every request got the maintenance answer');
  assert.equal(during.errors + during.timeouts, 0);
  const m = await answer(p.url.beta);
  assert.deepEqual([m.status, m.retryAfter], [503, '120']);
  assert.equal((await answer('http://127.0.67.3:8080')).status, 503, 'both load balancers');

  assert.equal((await updateserver(p.project.dir, 'maintenance', 'beta', 'read-only')).code, 0);
  assert.equal((await answer(p.url.beta, 'POST')).status, 503);
  assert.equal((await answer(p.url.beta)).status, 200);

  assert.equal((await updateserver(p.project.dir, 'maintenance', 'beta', 'off')).code, 0);
  assert.equal((await answer(p.url.beta, 'POST')).status, 200);
  assert.equal((await answer(p.url.beta)).status, 200);
  // The modes survive in the map file as well (a reload does not undo them): off is written there.
  assert.match(await readFile(p.lbs.beta.mapFile, 'utf8'), /^web\.maintenance off$/m);
});

test('HA pair: the second load balancer fails mid-switch -> the first is put back, exit 1 naming it; traffic never failed', async () => {
  const before = (await answer(p.url.beta)).slot;
  const mapBefore = await readFile(p.lbs.beta.mapFile, 'utf8');
  const stopFaults = await startFaultSocketSwap();
  try {
    const { value: r, load } = await underLoad(p.url.beta, () => updateserver(p.project.dir, 'flip', 'beta'), 5000);
    assert.equal(r.code, 1, explain(r));
    assert.match(r.stderr, /switching traffic on lb2 failed: load balancer lb2: HAProxy refused "set map .*": Permission denied/);
    assert.match(r.stderr, /lb: switched back to the previous slots/);
    assertNoFailures(load, 5000);
    assert.ok(fault.refused.some((c) => c.startsWith('set map ')), 'the fault was really injected');
  } finally {
    await stopFaults();
  }
  assert.equal((await answer(p.url.beta)).slot, before, 'the first load balancer is back on the previous slot');
  assert.equal(await readFile(p.lbs.beta.mapFile, 'utf8'), mapBefore, 'and so is its map file');
  const status = JSON.parse((await updateserver(p.project.dir, 'status', 'beta', '--json')).stdout) as { problems: string[] };
  assert.deepEqual(status.problems, []);
});

/** Makes the fault proxy refuse `set map` from now on; returns the undo. */
async function startFaultSocketSwap(): Promise<() => Promise<void>> {
  await fault.close();
  fault = await startFaultSocket(fault.path, p.lb2!.socket, /^set map /);
  return async () => {
    await fault.close();
    fault = await startFaultSocket(fault.path, p.lb2!.socket, /^$/);
  };
}

test('lb render --check validates the rendered configuration with haproxy -c', async () => {
  const r = await updateserver(p.project.dir, 'lb', 'render', 'beta', '--check');
  assert.equal(r.code, 0, explain(r));
  for (const needle of ['frontend web', 'backend web_a', 'backend web_b', 'use_backend %[str(web),map(']) assert.ok(r.stdout.includes(needle), needle);
  assert.match(r.stdout, /# ---- lb2 ----/);
});
