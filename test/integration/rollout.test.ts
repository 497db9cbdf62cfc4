/*
 * Progressive rollouts (issue 20) on the real lab, under load (test/lab/load.ts, every outcome counted):
 *   - a clean 5/25/50 rollout then the switch: zero failed requests, and the share of requests each step
 *     sent to the new slot, read by this test from HAProxy's own counters (show stat, polled every 50 ms
 *     with show map), within 3 points of its weight;
 *   - a release answering 5% of GET / with 500 (the sample app's error-rate knob; /health passes) is
 *     aborted at the first gate: weight 0 in the map at once, traffic back on the old slot, the release
 *     marked bad, and the only failed requests are the 500s the bad slot itself answered;
 *   - a release 200 ms slower (response-delay-ms) is aborted by the latency gate;
 *   - an HAProxy reload in the middle of a rollout keeps the share (the map file holds it) and fails nothing;
 *   - a run killed (SIGKILL) mid-rollout leaves the split where it was; --abandon puts everything back on
 *     the old slot and stops the new one; --resume after another kill goes on to the switch.
 * Holds are 3 s; one pipeline for the file (net 11).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rm, writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseShowStat } from '../../src/lb/stat.js';
import { parseShowMap } from '../../src/lb/map.js';
import { haproxyCommand } from '../lab/lab-haproxy.js';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { startLoad, type LoadResult } from '../lab/load.js';
import { updateserver, updateserverKilledAt, explain, type CliResult } from './cli.js';

let p: Pipeline;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const ROLLOUT = [
  '    rollout:',
  '      steps: [{ weight: 5, holdMs: 3000 }, { weight: 25, holdMs: 3000 }, { weight: 50, holdMs: 3000 }]',
  '      gates: { minRequests: 30, tooFewWaitMs: 4000, latencyFloorMs: 20 }',
].join('\n');

before(async () => {
  p = await startPipeline({ net: 11, betaServiceExtra: ROLLOUT });
  const dev = await updateserver(p.project.dir, 'dev');
  assert.equal(dev.code, 0, explain(dev));
  // The first promotion of an empty stage switches at once: there is no old slot to share with.
  const beta = await updateserver(p.project.dir, 'beta');
  assert.equal(beta.code, 0, explain(beta));
  assert.doesNotMatch(beta.stderr, /step 1/);
});

after(async () => {
  await p?.stop();
});

interface Sample { t: number; weight: number; web: string; a: { responses: number; http5xx: number }; b: { responses: number; http5xx: number } }

async function sample(): Promise<Sample> {
  const [map, stat] = await Promise.all([haproxyCommand(p.lbs.beta.socket, `show map ${p.lbs.beta.mapFile}`), haproxyCommand(p.lbs.beta.socket, 'show stat')]);
  const entries = new Map(parseShowMap(map).map((e) => [e.key, e.value]));
  const rows = parseShowStat(stat);
  const of = (backend: string) => {
    const raw = rows.find((r) => r.proxy === backend && r.type === 'backend')?.raw ?? {};
    return { responses: ['hrsp_1xx', 'hrsp_2xx', 'hrsp_3xx', 'hrsp_4xx', 'hrsp_5xx', 'hrsp_other'].reduce((s, c) => s + Number(raw[c] ?? 0), 0), http5xx: Number(raw.hrsp_5xx ?? 0) };
  };
  return { t: Date.now(), weight: Number(entries.get('web.weight') ?? 0), web: entries.get('web') ?? 'web_a', a: of('web_a'), b: of('web_b') };
}

/** Runs the CLI under load while sampling the map and the counters every 50 ms. */
async function rollout(...args: string[]): Promise<{ cli: CliResult; load: LoadResult; samples: Sample[] }> {
  return rolloutWith({}, ...args);
}

async function rolloutWith(opts: { onSample?: (s: Sample) => void }, ...args: string[]): Promise<{ cli: CliResult; load: LoadResult; samples: Sample[] }> {
  const samples: Sample[] = [];
  let sampling = true;
  const sampler = (async () => { while (sampling) { const s = await sample(); samples.push(s); opts.onSample?.(s); await sleep(50); } })();
  const load = startLoad(p.url.beta, { connections: 8 });
  await sleep(300);
  const cli = await updateserver(p.project.dir, 'beta', ...args);
  await sleep(300);
  const result = await load.stop();
  sampling = false;
  await sampler;
  samples.push(await sample());
  return { cli, load: result, samples };
}

/** For each weight the map held (in order), the share of responses the new backend gave meanwhile. */
function shares(samples: Sample[], newSlot: 'a' | 'b'): Array<{ weight: number; share: number; requests: number }> {
  const out: Array<{ weight: number; share: number; requests: number }> = [];
  for (let i = 0; i < samples.length;) {
    let j = i;
    while (j + 1 < samples.length && samples[j + 1]!.weight === samples[i]!.weight && samples[j + 1]!.web === samples[i]!.web) j++;
    const [s, e] = [samples[i]!, samples[j]!];
    const oldSlot = newSlot === 'a' ? 'b' : 'a';
    const dn = e[newSlot].responses - s[newSlot].responses;
    const dold = e[oldSlot].responses - s[oldSlot].responses;
    // The final switch sets the live entry and the weight back to 0 one after the other: a sample taken
    // between the two (the new backend live, the weight not yet 0) is no rollout step.
    if (s.weight > 0 && s.web !== `web_${newSlot}`) out.push({ weight: s.weight, share: dn / Math.max(1, dn + dold), requests: dn + dold });
    i = j + 1;
  }
  return out;
}

async function release(version: string, knobs: Record<string, string | undefined>): Promise<void> {
  for (const [name, value] of Object.entries(knobs)) {
    if (value === undefined) await rm(join(p.appDir, name), { force: true });
    else await writeFile(join(p.appDir, name), `${value}\n`);
  }
  await writeFile(join(p.appDir, 'VERSION'), `${version}\n`);
  const dev = await updateserver(p.project.dir, 'dev');
  assert.equal(dev.code, 0, explain(dev));
}

const liveBackend = async () => (await sample()).web;

test('a clean 5/25/50 rollout then the switch: 0 failed requests, each step\'s share within 3 points of its weight', async () => {
  await release('1.1.0', {});
  const before = await liveBackend();
  const newSlot = before === 'web_a' ? 'b' : 'a';
  const dry = await updateserver(p.project.dir, 'beta', '--dry-run');
  assert.equal(dry.code, 0, explain(dry));
  assert.match(dry.stdout, /rollout: 5% for 3000 ms, then 25% for 3000 ms, then 50% for 3000 ms, then the switch \(100%\); gates 5xx <= 1%, errors <= 1%, response time <= 1\.5x/);
  for (const w of [5, 25, 50]) assert.match(dry.stdout, new RegExp(`set map \\S+ web\\.weight ${w}\\n`));
  assert.match(dry.stdout, /in rollout: automatic rollback/);
  assert.match(dry.stdout, /in current, post, watch: automatic rollback/);
  const t0 = Date.now();
  const { cli, load, samples } = await rollout();
  assert.equal(cli.code, 0, explain(cli));
  const steps = shares(samples, newSlot);
  console.log(`clean rollout in ${cli.ms} ms (test ${Date.now() - t0} ms); load ${JSON.stringify(load)}; shares ${JSON.stringify(steps.map((s) => ({ ...s, share: Number((s.share * 100).toFixed(2)) })))}`);
  assert.equal(load.errors + load.timeouts + load.non2xx, 0, JSON.stringify(load));
  assert.deepEqual(steps.map((s) => s.weight), [5, 25, 50]);
  for (const s of steps) {
    assert.ok(s.requests >= 300, `step ${s.weight}%: only ${s.requests} requests`);
    assert.ok(Math.abs(s.share * 100 - s.weight) <= 3, `step ${s.weight}%: the new slot got ${(s.share * 100).toFixed(2)}% of ${s.requests}`);
  }
  const end = await sample();
  assert.equal(end.web, `web_${newSlot}`);
  assert.equal(end.weight, 0);
  // The file holds what is in force: a reload keeps the switch and no split.
  const file = await readFile(p.lbs.beta.mapFile, 'utf8');
  assert.match(file, new RegExp(`^web web_${newSlot}$`, 'm'));
  assert.match(file, /^web\.weight 0$/m);
});

test('a release answering 5% of requests with 500 (health passes) is aborted at the first gate; traffic back on the old slot; only the bad slot\'s own 500s failed', async () => {
  await release('1.2.0', { 'error-rate': '0.05' });
  const before = await sample();
  const newSlot = before.web === 'web_a' ? 'b' : 'a';
  const { cli, load, samples } = await rollout();
  assert.notEqual(cli.code, 0, explain(cli));
  assert.match(cli.stderr, /rollout of web stopped at step 1 \(5%\): gate max5xxRate failed: 5xx answers on the new slot \d+\.\d+% \(\d+ of \d+\) > max5xxRate 1\.00%/);
  const end = samples.at(-1)!;
  assert.equal(end.web, before.web);
  assert.equal(end.weight, 0);
  assert.match(await readFile(p.lbs.beta.mapFile, 'utf8'), /^web\.weight 0$/m);
  assert.deepEqual(shares(samples, newSlot).map((s) => s.weight), [5], 'never beyond the first step');
  // Once the map said weight 0, the new slot got at most the requests already on their way to it.
  const back = samples.find((s, i) => i > 0 && s.weight === 0 && samples[i - 1]!.weight > 0)!;
  assert.ok(back, 'the weight went back to 0');
  const after0 = end[newSlot].responses - back[newSlot].responses;
  const bad500 = end[newSlot].http5xx - before[newSlot].http5xx;
  console.log(`5% of 500s: aborted in ${cli.ms} ms; new slot answered ${end[newSlot].responses - before[newSlot].responses} (${bad500} of them 500) before the abort, ${after0} after weight 0 was seen; load ${JSON.stringify(load)}`);
  assert.ok(after0 <= 8, `${after0} requests reached the new slot after the weight went back to 0`);
  // From the judgement (logged right after the counter read that failed) to the load balancer read back
  // as switched (after weight 0, the old backend, show map and the file rewrite): the log's own clock.
  const at = (re: RegExp) => { const m = new RegExp(`^(\\d\\d):(\\d\\d):(\\d\\d)\\.(\\d{3}) ${re.source}`, 'm').exec(cli.stderr); assert.ok(m, `${re} in\n${cli.stderr}`); return ((Number(m[1]) * 60 + Number(m[2])) * 60 + Number(m[3])) * 1000 + Number(m[4]); };
  const abortMs = at(/error +rollout of web stopped/) ;
  const backMs = at(/warn +lb: switched back to the previous slots/);
  console.log(`abort: judged -> lb switched back (read back, file rewritten) in ${backMs - abortMs} ms`);
  assert.ok(backMs - abortMs <= 100, `${backMs - abortMs} ms from the judgement to the load balancer switched back`);
  assert.equal(load.errors + load.timeouts, 0, JSON.stringify(load));
  assert.ok(bad500 > 0);
  assert.equal(load.non2xx, bad500, 'the failed requests are exactly the 500s the bad slot answered');
  const again = await updateserver(p.project.dir, 'beta', '--dry-run');
  assert.notEqual(again.code, 0);
  assert.match(again.stderr, /marked bad in beta: .*gate max5xxRate failed/);
});

test('a release 200 ms slower is aborted by the latency gate, with no failed request', async () => {
  await release('1.3.0', { 'error-rate': undefined, 'response-delay-ms': '200' });
  const before = await sample();
  const { cli, load, samples } = await rollout();
  await rm(join(p.appDir, 'response-delay-ms'), { force: true });
  assert.notEqual(cli.code, 0, explain(cli));
  assert.match(cli.stderr, /rollout of web stopped at step 1 \(5%\): gate maxLatencyRatio failed: response time on the new slot \d+ ms vs \d+ ms on the old slot/);
  console.log(`200 ms slower: aborted in ${cli.ms} ms: ${/gate maxLatencyRatio failed: [^\n]*/.exec(cli.stderr)?.[0]}; load ${JSON.stringify(load)}`);
  const end = samples.at(-1)!;
  assert.equal(end.web, before.web);
  assert.equal(end.weight, 0);
  assert.equal(load.errors + load.timeouts + load.non2xx, 0, JSON.stringify(load));
});

test('an HAProxy reload in the middle of a rollout keeps the share from the map file; 0 failed requests', async () => {
  await release('1.4.0', { 'response-delay-ms': undefined });
  const before = await sample();
  const newSlot = before.web === 'web_a' ? 'b' : 'a';
  let reload: Promise<void> | undefined;
  const { cli, load, samples } = await rolloutWith({ onSample: (s) => { if (s.weight === 25 && !reload) reload = sleep(1000).then(() => p.lbs.beta.reload()); } });
  await reload;
  assert.ok(reload, 'the rollout reached 25%');
  assert.equal(cli.code, 0, explain(cli));
  // Counters restart at the reload: the share of the 25% step is read after it (the last samples of that weight).
  const at25 = samples.filter((s) => s.weight === 25);
  const afterReload = at25.filter((s, i) => i > 0 && s[newSlot].responses < at25[i - 1]![newSlot].responses);
  const first = afterReload[0] ?? at25[0]!;
  const last = at25.at(-1)!;
  const oldSlot = newSlot === 'a' ? 'b' : 'a';
  const dn = last[newSlot].responses - first[newSlot].responses;
  const share = dn / Math.max(1, dn + last[oldSlot].responses - first[oldSlot].responses);
  console.log(`reload at 25%: counters restarted ${afterReload.length > 0 ? 'yes' : 'no'}; share after it ${(share * 100).toFixed(2)}% of ${dn + last[oldSlot].responses - first[oldSlot].responses}; load ${JSON.stringify(load)}`);
  assert.ok(afterReload.length > 0, 'the reload restarted the counters during the 25% step');
  assert.ok(Math.abs(share * 100 - 25) <= 3, `after the reload the new slot got ${(share * 100).toFixed(2)}%`);
  assert.equal(load.errors + load.timeouts + load.non2xx, 0, JSON.stringify(load));
  assert.equal((await sample()).web, `web_${newSlot}`);
});

test('killed mid-rollout: the split stays; --abandon puts all traffic back on the old slot; killed again, --resume goes on to the switch', async () => {
  await release('1.5.0', {});
  const before = await sample();
  const newSlot = before.web === 'web_a' ? 'b' : 'a';
  // rollout:3: right after the first step's map file is rewritten (server-health, set-map, persist-map).
  const killed = await updateserverKilledAt(p.project.dir, 'rollout:3', 'beta');
  assert.equal(killed.signal, 'SIGKILL', killed.stderr);
  const split = await sample();
  assert.equal(split.weight, 5, 'the split stays where the run left it');
  assert.equal(split.web, before.web);
  const shown = await updateserver(p.project.dir, 'status', 'beta');
  assert.match(shown.stdout, new RegExp(`lb: rollout in progress: 5% of requests to web_${newSlot} \\(a run in progress, or an interrupted one`));
  const refused = await updateserver(p.project.dir, 'beta');
  assert.notEqual(refused.code, 0);
  const abandon = await updateserver(p.project.dir, 'beta', '--abandon');
  assert.equal(abandon.code, 0, explain(abandon));
  const back = await sample();
  assert.equal(back.weight, 0);
  assert.equal(back.web, before.web);
  assert.match(await readFile(p.lbs.beta.mapFile, 'utf8'), /^web\.weight 0$/m);
  const status = JSON.parse((await updateserver(p.project.dir, 'status', 'beta', '--json')).stdout) as { services: Array<{ hosts: Record<string, { running: Record<string, boolean> }> }> };
  for (const h of p.betaHosts) assert.equal(status.services[0]!.hosts[h]!.running[newSlot], false, `${h}: the new slot was stopped`);

  // Under load from here: the first step's gate needs requests before the kill after the second step's share.
  const loading = startLoad(p.url.beta, { connections: 8 });
  const again = await updateserverKilledAt(p.project.dir, 'rollout:6', 'beta');
  assert.equal(again.signal, 'SIGKILL', again.stderr);
  assert.equal((await sample()).weight, 25);
  // --resume goes on from the step the journal shows (25%): the split is never put back to 0 or 5% on the way.
  const weights: number[] = [];
  let watching = true;
  const watcher = (async () => { while (watching) { const s = await sample(); if (s.web === before.web && weights.at(-1) !== s.weight) weights.push(s.weight); await sleep(50); } })();
  const cli = await updateserver(p.project.dir, 'beta', '--resume');
  watching = false;
  await watcher;
  const load = await loading.stop();
  console.log(`killed at 25%, --resume: ${cli.ms} ms; weights seen before the switch ${JSON.stringify(weights)}; load ${JSON.stringify(load)}`);
  assert.equal(cli.code, 0, explain(cli));
  assert.match(cli.stderr, /going on with the interrupted rollout from step 2 of web/);
  assert.doesNotMatch(cli.stderr, /web step 1 \(5%\) passed/);
  assert.deepEqual(weights, [25, 50], 'from 25% on, never back to 0 or 5% before the switch');
  assert.equal(load.errors + load.timeouts + load.non2xx, 0, JSON.stringify(load));
  const end = await sample();
  assert.equal(end.web, `web_${newSlot}`);
  assert.equal(end.weight, 0);
});
