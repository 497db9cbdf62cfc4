/*
 * Two HAProxies in front of beta (an HA pair, `lb` and `lb2`), on the real lab, under load through
 * both with every failed request counted (test/lab/load.ts): a promotion switches both; when the
 * second fails in the middle of the switch, the first is put back (the slot it serves and its map file
 * on disk), the command exits 1 naming the second and why, and the stage is left consistent for the
 * next run.
 *
 * lb2's socket in the profile is a fault-injecting proxy (test/lab/fault-socket.ts) in front of its real
 * runtime socket: it forwards everything (the read phase's `show map`, `set server ... health up`),
 * and, when told, refuses `set map` with HAProxy's "Permission denied" or drops it by closing the
 * connection without an answer. The switch goes lb first, then lb2, so lb has switched when lb2 fails.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startFaultSocket, type FaultSocket } from '../lab/fault-socket.js';
import { haproxyCommand } from '../lab/lab-haproxy.js';
import { startLoad, type LoadResult } from '../lab/load.js';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { updateserver, type CliResult, explain } from './cli.js';

let p: Pipeline;
let fault: FaultSocket;
let faultDir: string;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface StatusJson {
  services: Array<{ service: string; loadBalancers: Record<string, string>; recorded: string; hosts: Record<string, { releases: Record<string, string>; running: Record<string, boolean> }> }>;
  problems: string[];
}

async function status(): Promise<StatusJson> {
  const r = await updateserver(p.project.dir, 'status', 'beta', '--json');
  assert.equal(r.code, 0, explain(r));
  return JSON.parse(r.stdout) as StatusJson;
}

/** Slots and releases that answer n requests through a load balancer. */
async function served(url: string, n = 10): Promise<{ slots: string[]; versions: string[] }> {
  const slots = new Set<string>();
  const versions = new Set<string>();
  for (let i = 0; i < n; i++) {
    const res = await fetch(`${url}/`, { headers: { connection: 'close' } });
    assert.equal(res.status, 200);
    const body = await res.json() as { slot: string; version: string };
    slots.add(body.slot);
    versions.add(body.version);
  }
  return { slots: [...slots], versions: [...versions] };
}

/** The web entry of a load balancer's runtime map, and of its map file on disk. */
async function mapEntries(lb: 'lb' | 'lb2'): Promise<{ runtime: string | undefined; file: string }> {
  const h = lb === 'lb' ? p.lbs.beta : p.lb2!;
  const runtime = /^\S+ web (\S+)$/m.exec(await haproxyCommand(h.socket, `show map ${h.mapFile}`))?.[1];
  return { runtime, file: await readFile(h.mapFile, 'utf8') };
}

async function newRelease(version: string): Promise<void> {
  await writeFile(join(p.appDir, 'VERSION'), `${version}\n`);
  const dev = await updateserver(p.project.dir, 'dev');
  assert.equal(dev.code, 0, explain(dev));
}

/** Runs fn with load through both load balancers from 300 ms before it to 300 ms after it. */
async function underLoadOnBoth<T>(fn: () => Promise<T>): Promise<{ value: T; loads: Record<string, LoadResult> }> {
  const running = Object.entries(p.betaUrls).map(([lb, url]) => [lb, startLoad(`${url}/`, { connections: 4, maxDurationMs: 60_000 })] as const);
  try {
    await sleep(300);
    const value = await fn();
    await sleep(300);
    return { value, loads: Object.fromEntries(await Promise.all(running.map(async ([lb, l]) => [lb, await l.stop()] as const))) };
  } finally {
    await Promise.all(running.map(([, l]) => l.stop()));
  }
}

function assertNoFailures(loads: Record<string, LoadResult>): void {
  assert.deepEqual(Object.keys(loads).sort(), ['lb', 'lb2']);
  for (const [lb, load] of Object.entries(loads)) {
    assert.ok(load.requests > 500, `${lb}: only ${load.requests} requests`);
    assert.equal(load.non2xx + load.errors + load.timeouts, 0, `${lb}: ${JSON.stringify(load)}`);
  }
}

const describeLoads = (loads: Record<string, LoadResult>) => Object.entries(loads)
  .map(([lb, l]) => `${lb} ${l.requests} requests, ${l.non2xx + l.errors + l.timeouts} failed, by release ${JSON.stringify(l.byRelease)}`).join('; ');

before(async () => {
  faultDir = await mkdtemp('/tmp/updateserver-fault-');
  const faultPath = join(faultDir, 'lb2-admin.sock');
  p = await startPipeline({ net: 68, betaLoadBalancers: 2, betaSockets: { lb2: faultPath } });
  fault = await startFaultSocket(faultPath, p.lb2!.socket); // refuses nothing until a test says so
  for (const stage of ['dev', 'beta']) {
    const r = await updateserver(p.project.dir, stage);
    assert.equal(r.code, 0, explain(r));
  }
  for (const url of Object.values(p.betaUrls)) assert.deepEqual((await served(url)).slots, ['b']);
});

after(async () => {
  await fault?.close();
  await p?.stop();
  if (faultDir) await rm(faultDir, { recursive: true, force: true });
});

test('lb render beta --check renders and checks both load balancers', async () => {
  const r = await updateserver(p.project.dir, 'lb', 'render', 'beta', '--check');
  assert.equal(r.code, 0, explain(r));
  const [lb, lb2] = r.stdout.split(/^# ---- lb2 ----$/m);
  assert.match(lb!, /^# ---- lb ----$/m);
  for (const [text, address, dir] of [[lb!, p.betaUrls.lb!, 'haproxy-beta/'], [lb2!, p.betaUrls.lb2!, 'haproxy-beta2/']] as const) {
    assert.match(text, /^frontend web$/m);
    assert.ok(text.includes(`bind ${address.replace('http://', '')}`), address);
    assert.ok(text.includes(`${dir}backends.map,web_a)]`), dir);
    assert.match(text, /^backend web_a$/m);
    assert.match(text, /^backend web_b$/m);
  }
});

test('a promotion switches both load balancers: both serve the new slot, both map files name it, status --json shows both', async () => {
  await newRelease('1.1.0');
  fault.passed.length = 0;
  const { value: r, loads } = await underLoadOnBoth(() => updateserver(p.project.dir, 'beta'));
  assert.equal(r.code, 0, explain(r));
  assertNoFailures(loads);
  for (const lb of ['lb', 'lb2'] as const) {
    assert.deepEqual(await served(p.betaUrls[lb]!), { slots: ['a'], versions: ['1.1.0'] }, lb);
    const map = await mapEntries(lb);
    assert.equal(map.runtime, 'web_a', `${lb} runtime map`);
    assert.match(map.file, /^web web_a$/m, `${lb} map file`);
  }
  assert.ok(fault.passed.some((c) => /^set map \S+haproxy-beta2\/backends\.map web web_a$/.test(c)), 'lb2 was switched through its socket in the profile');
  const s = await status();
  assert.deepEqual(s.services[0]!.loadBalancers, { lb: 'a', lb2: 'a' });
  assert.equal(s.services[0]!.recorded, 'a');
  assert.deepEqual(s.problems, []);
  console.log(`HA promotion b -> a: ${describeLoads(loads)}`);
});

for (const mode of [
  { name: 'refuses `set map` with "Permission denied"', answer: undefined, reason: /load balancer lb2: HAProxy refused "set map \S+haproxy-beta2\/backends\.map web web_b": Permission denied/ },
  { name: 'drops `set map` by closing the connection without an answer', answer: 'close' as const, reason: /load balancer lb2: after the switch the map says web -> web_a; expected web -> web_b/ },
]) {
  test(`lb2 ${mode.name} mid-switch: lb is put back (slot and map file), exit 1 naming lb2 and the reason, 0 failed requests`, async () => {
    await newRelease(mode.answer === 'close' ? '1.3.0' : '1.2.0');
    const before = { lb: await mapEntries('lb'), lb2: await mapEntries('lb2') };
    fault.refused.length = 0;
    fault.passed.length = 0;
    fault.set({ refuse: /^set map /, ...(mode.answer ? { answer: mode.answer } : {}) });
    let r: CliResult;
    let loads: Record<string, LoadResult>;
    try {
      ({ value: r, loads } = await underLoadOnBoth(() => updateserver(p.project.dir, 'beta')));
    } finally {
      fault.set({});
    }
    assert.equal(r.code, 1, explain(r));
    assert.match(r.stderr, new RegExp(`switching traffic on lb2 failed: ${mode.reason.source}`));
    assert.match(r.stderr, /lb: switched back to the previous slots/);
    // lb2 is asked to switch back too (it might have moved before failing); it refuses (or drops) that as
    // well, and reading its map back shows it never moved: no "could not switch back", nothing to fix by hand.
    assert.match(r.stderr, mode.answer === 'close' ? /lb2: switched back to the previous slots/ : /lb2: on the previous slots \(it had not switched/);
    assert.doesNotMatch(r.stderr, /could not switch back|may disagree/);
    // The failure was in the switch: what came before it on lb2 went through the proxy.
    assert.deepEqual(fault.refused, [`set map ${p.lb2!.mapFile} web web_b`, `set map ${p.lb2!.mapFile} web web_a`]);
    assert.ok(fault.passed.some((c) => c === `show map ${p.lb2!.mapFile}`), `read phase passed: ${JSON.stringify(fault.passed)}`);
    assert.ok(fault.passed.some((c) => c === 'set server web_b/beta1 health up'), `the switch began on lb2: ${JSON.stringify(fault.passed)}`);
    // lb serves the old slot again, and its runtime map and map file say so; lb2 never moved.
    for (const lb of ['lb', 'lb2'] as const) {
      assert.deepEqual(await served(p.betaUrls[lb]!), { slots: ['a'], versions: ['1.1.0'] }, lb);
      const map = await mapEntries(lb);
      assert.equal(map.runtime, 'web_a', `${lb} runtime map`);
      assert.equal(map.file, before[lb].file, `${lb} map file as before the run`);
    }
    assertNoFailures(loads);
    // The new slot was stopped again; the load balancers and the record agree.
    const s = await status();
    assert.deepEqual(s.services[0]!.loadBalancers, { lb: 'a', lb2: 'a' });
    assert.equal(s.services[0]!.recorded, 'a');
    for (const h of p.betaHosts) assert.deepEqual(s.services[0]!.hosts[h]!.running, { a: true, b: false }, h);
    assert.deepEqual(s.problems, []);
    const reason = r.stderr.split('\n').find((l) => l.includes('switching traffic on lb2 failed'));
    console.log(`HA failure (${mode.answer ?? 'Permission denied'}): exit ${r.code}, "${reason?.trim()}"; ${describeLoads(loads)}`);
  });
}

test('with lb2 answering again, the next promotion switches both', async () => {
  const { value: r, loads } = await underLoadOnBoth(() => updateserver(p.project.dir, 'beta'));
  assert.equal(r.code, 0, explain(r));
  assertNoFailures(loads);
  for (const lb of ['lb', 'lb2'] as const) {
    assert.deepEqual(await served(p.betaUrls[lb]!), { slots: ['b'], versions: ['1.3.0'] }, lb);
    assert.match((await mapEntries(lb)).file, /^web web_b$/m);
  }
  const s = await status();
  assert.deepEqual(s.services[0]!.loadBalancers, { lb: 'b', lb2: 'b' });
  assert.deepEqual(s.problems, []);
  console.log(`HA promotion a -> b after the failures: ${describeLoads(loads)}`);
});
