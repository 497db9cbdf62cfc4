import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { atMost, figures, render, writeReport, type Results, type RunInfo } from '../../bench/report.js';
import { applicationWaiting, unionMs } from '../../bench/timeline.js';
import { Knobs } from '../../bench/result.js';

/** Results in which every target is met, to change one figure at a time. */
function passing(): Results {
  return {
    promote: { command: 'HOSTS=1,2,8,32 RUNS=3 node dist/bench/promote.js', rows: [
      { hosts: 1, runs: 3, ok: true, wallMsMedian: 900, wallMsMax: 950, overheadMsMedian: 800, waitingMsMedian: 100, peakMb: 70, requests: 1000, failed: 0 },
      { hosts: 2, runs: 3, ok: true, wallMsMedian: 1200, wallMsMax: 1300, overheadMsMedian: 1100, waitingMsMedian: 100, peakMb: 72, requests: 1000, failed: 0 },
      { hosts: 8, runs: 3, ok: true, wallMsMedian: 2500, wallMsMax: 2600, overheadMsMedian: 2300, waitingMsMedian: 200, peakMb: 80, requests: 1000, failed: 0 },
      { hosts: 32, runs: 3, ok: true, wallMsMedian: 5000, wallMsMax: 5200, overheadMsMedian: 4600, waitingMsMedian: 400, peakMb: 90, requests: 1000, failed: 0 },
    ] },
    fleet: { command: 'HOSTS=8,32,50 RUNS=2 node dist/bench/fleet.js', rows: [
      { hosts: 8, runs: 2, ok: true, wallMsMedian: 2500, overheadMsMedian: 2000, peakMb: 80, parallel: 16, maxConnectionsPerHost: 1, maxDistinctConnectionsPerHost: 1, maxConnections: 9, maxBusyHosts: 9, hostsWatched: 9, hostsConnected: 9 },
      { hosts: 50, runs: 2, ok: true, wallMsMedian: 9000, overheadMsMedian: 7000, peakMb: 98, parallel: 16, maxConnectionsPerHost: 1, maxDistinctConnectionsPerHost: 1, maxConnections: 51, maxBusyHosts: 16, hostsWatched: 51, hostsConnected: 51 },
    ] },
    flip: { command: 'HOSTS=2 RUNS=3 node dist/bench/flip.js', hosts: 2, summary: [
      { command: 'flip', count: 6, ok: true, requests: 5000, failed: 0, switchedEveryTime: true, wallMsMedian: 900 },
      { command: 'rollback', count: 3, ok: true, requests: 2500, failed: 0, switchedEveryTime: true, wallMsMedian: 900 },
    ] },
    rollback: { command: 'RUNS=5 node dist/bench/rollback.js', summary: { runs: 2, checkToOldSlotMs: { min: 10, median: 12, max: 20 }, failedRequests: 0, requests: 3000 }, runs: [{ checkToOldSlotMs: 10 }, { checkToOldSlotMs: 20 }] },
    'switch-latency': { command: 'SWITCHES=20 LOAD_CONNECTIONS=8 node dist/bench/switch-latency.js', summaries: [{ condition: 'client loop alone', switches: 20, latencyMs: { min: 1, median: 2, p95: 4, max: 6 }, requests: 900, failed: 0 }] },
    transfer: { command: 'HOSTS=1,8 RUNS=3 FILES=2000 node dist/bench/transfer.js', rows: [{ hosts: 1, files: 2000, ratioPct: 2.03, deltaBytesPerHost: 111_000, firstBytesPerHost: 5_500_000, releaseKb: 8364, extraReleaseKb: 320, extraReleasePct: 3.83 }] },
    snapshot: { command: 'SIZE=0.25 RUNS=3 node dist/bench/snapshot.js', runs: 3, source: { bytes: 330e6, size: 0.25 }, rows: [
      { name: 'baseline', ms: 10_000, mbPerS: 33, ratioToBaseline: 1 },
      { name: 'updateserver (jobs 1)', ms: 5_300, mbPerS: 62, ratioToBaseline: 0.53 },
    ] },
    validate: { command: 'SIZES_KB=16,256 RUNS=7 node dist/bench/validate.js', boundBytes: 262_144, rows: [{ bytes: 15_000, validMs: 20, brokenMs: 20 }, { bytes: 255_000, validMs: 250, brokenMs: 240 }], linear: { validRatio: 1.1, brokenRatio: 1 }, overBoundMs: 0.4 },
    versus: { command: 'HOSTS=2 MODES=clean,field RUNS=3 node dist/bench/versus.js', rows: [
      { hosts: 2, mode: 'clean', runs: 3, ok: true, updateserverMsMedian: 900, scriptMsMedian: 1000, ratio: 0.9, failed: { updateserver: 0, script: 0 } },
      { hosts: 2, mode: 'field', runs: 3, ok: true, shellMs: 300, rttMs: 20, updateserverMsMedian: 1300, scriptMsMedian: 2000, ratio: 0.65, failed: { updateserver: 0, script: 0 } },
    ] },
    startup: { command: 'RUNS=10 node dist/bench/startup.js', runs: 10, versionMsMedian: 80, versionMsMax: 90, firstConnectionMsMedian: 120, firstConnectionMsMax: 140 },
    'fleet-light': { command: 'HOSTS=200 RUNS=2 node dist/bench/fleet-light.js', rows: [
      { hosts: 200, runs: 2, ok: true, wallMsMedian: 8000, wallMsMax: 8500, peakMb: 120, parallel: 16, maxConnectionsPerHost: 1, maxDistinctConnectionsPerHost: 1, maxConnections: 201, maxBusyHosts: 16, hostsWatched: 201, hostsConnected: 201 },
    ] },
    'console-page': { command: 'RUNS=30 node dist/bench/console-page.js', stages: 4, services: 10, hosts: 50, runs: 30, medianMs: 40, maxMs: 60, pageBytes: 18000 },
  };
}

const find = (r: Results, pattern: RegExp) => {
  const f = figures(r).filter((x) => pattern.test(x.name));
  assert.equal(f.length, 1, `one figure matches ${pattern}: ${f.map((x) => x.name).join(' | ')}`);
  return f[0]!;
};

const judged = (r: Results) => figures(r).filter((f) => f.verdict === 'met' || f.verdict === 'NOT met');

describe('bench report: verdicts', () => {
  test('atMost: at the limit is met, over it is not, no number is not measured', () => {
    assert.equal(atMost(5, 5), 'met');
    assert.equal(atMost(5.01, 5), 'NOT met');
    assert.equal(atMost(1, 5, false), 'NOT met');
    assert.equal(atMost(undefined, 5), 'not measured');
    assert.equal(atMost(NaN, 5), 'not measured');
  });

  test('every target of the synthetic results is met', () => {
    const notMet = judged(passing()).filter((f) => f.verdict !== 'met');
    assert.deepEqual(notMet, []);
    // Failed requests x4, promotion 2/8/32, switch, reaction, transfer, snapshot, memory at 32, fleet x3 per row, validation x2,
    // light fleet x4, versus x2, start-up x2, the console's pipeline page.
    assert.equal(judged(passing()).length, 4 + 3 + 1 + 1 + 1 + 1 + 1 + 3 * 2 + 2 + 4 + 2 + 2 + 1);
  });

  test('against the shell script: field hosts must be at most 0.7x, clean at most 1.0x, with no failed request', () => {
    const r = passing();
    r.versus!.rows![1]!.ratio = 0.71;
    assert.equal(find(r, /shell script, 2 field hosts/).verdict, 'NOT met');
    assert.equal(find(r, /shell script, 2 field hosts/).target, '<= 0.7x, 0 failed');
    r.versus!.rows![0]!.ratio = 1.0;
    assert.equal(find(r, /shell script, 2 clean hosts/).verdict, 'met');
    r.versus!.rows![0]!.failed = { updateserver: 0, script: 1 };
    assert.equal(find(r, /shell script, 2 clean hosts/).verdict, 'NOT met');
  });

  test('start-up and the light fleet are judged against their limits', () => {
    const r = passing();
    r.startup!.versionMsMedian = 121;
    assert.equal(find(r, /--version/).verdict, 'NOT met');
    assert.equal(find(r, /first connection/).verdict, 'met');
    r['fleet-light']!.rows![0]!.maxDistinctConnectionsPerHost = 2;
    assert.equal(find(r, /light app: SSH connections/).verdict, 'NOT met');
    assert.equal(find(r, /light app: wall time/).verdict, 'met');
  });

  test('a promotion over its target is NOT met, with the figure and its command', () => {
    const r = passing();
    r.promote!.rows![1]!.wallMsMedian = 1501;
    const f = find(r, /^promotion, 2 hosts/);
    assert.equal(f.verdict, 'NOT met');
    assert.equal(f.target, '<= 1500 ms');
    assert.match(f.value, /^1501 ms/);
    assert.equal(f.command, 'HOSTS=1,2,8,32 RUNS=3 node dist/bench/promote.js');
    assert.equal(find(r, /^promotion, 8 hosts/).verdict, 'met');
  });

  test('one failed request during a flip fails the flip figure only', () => {
    const r = passing();
    r.flip!.summary![0]!.failed = 1;
    assert.equal(find(r, /^manual flip/).verdict, 'NOT met');
    assert.equal(find(r, /^manual rollback/).verdict, 'met');
  });

  test('a flip that did not move traffic is NOT met even with 0 failed', () => {
    const r = passing();
    r.flip!.summary![0]!.switchedEveryTime = false;
    assert.equal(find(r, /^manual flip/).verdict, 'NOT met');
  });

  test('snapshot ratio, switch p95, reaction worst case, transfer ratio, memory: each judged on its own number', () => {
    const r = passing();
    r.snapshot!.rows![1]!.ratioToBaseline = 0.66;
    r['switch-latency']!.summaries![0]!.latencyMs!.p95 = 5.2;
    r.rollback!.summary!.checkToOldSlotMs!.max = 501;
    r.transfer!.rows![0]!.ratioPct = 3.1;
    r.promote!.rows![3]!.peakMb = 151;
    const notMet = judged(r).filter((f) => f.verdict === 'NOT met').map((f) => f.name);
    assert.equal(notMet.length, 5, notMet.join(' | '));
    assert.equal(find(r, /^updateserver's snapshot/).verdict, 'NOT met');
    assert.equal(find(r, /^switch latency/).verdict, 'NOT met');
    assert.equal(find(r, /^automatic rollback: failing check/).verdict, 'NOT met');
    assert.equal(find(r, /^bytes moved/).verdict, 'NOT met');
    assert.equal(find(r, /^peak memory \(VmHWM\) at 32/).verdict, 'NOT met');
  });

  test('validation: a cost per KB growing with the size (quadratic), or a slow profile at the bound, is NOT met', () => {
    const r = passing();
    assert.equal(find(r, /^time per KB at/).verdict, 'met');
    r.validate!.linear!.brokenRatio = 16;
    r.validate!.rows![1]!.validMs = 2000;
    assert.equal(find(r, /^time per KB at/).verdict, 'NOT met');
    assert.equal(find(r, /^validation of a profile at the bound/).verdict, 'NOT met');
  });

  test('fleet: two connections to one host, or more busy hosts than `parallel`, are NOT met', () => {
    const r = passing();
    r.fleet!.rows![1]!.maxConnectionsPerHost = 2;
    r.fleet!.rows![1]!.maxBusyHosts = 17;
    assert.equal(find(r, /^fleet 50 hosts: SSH connections/).verdict, 'NOT met');
    assert.equal(find(r, /^fleet 50 hosts: beta hosts with a command/).verdict, 'NOT met');
    assert.equal(find(r, /^fleet 8 hosts: SSH connections/).verdict, 'met');
  });

  test('a failed fleet run is NOT met although its memory is low', () => {
    const r = passing();
    r.fleet!.rows![1]!.ok = false;
    const f = find(r, /^fleet 50 hosts: promotion completes/);
    assert.equal(f.verdict, 'NOT met');
    assert.match(f.value, /^FAILED/);
  });

  test('a benchmark without a result is not measured, never met', () => {
    const r = passing();
    delete r.snapshot;
    delete r.flip;
    const f = find(r, /^updateserver's snapshot/);
    assert.equal(f.verdict, 'not measured');
    assert.equal(f.command, 'node dist/bench/snapshot.js');
    assert.equal(find(r, /^manual flip/).verdict, 'not measured');
    assert.ok(figures({}).every((x) => x.verdict === 'not measured' || x.verdict === 'no target'));
    assert.ok(figures({}).some((x) => x.verdict === 'not measured'));
  });
});

describe('bench report: rendering', () => {
  const machine = { cpu: 'Test CPU', cores: 2, memory: '24.0 GiB', os: 'Debian 12', kernel: '6.1.0', node: 'v20.0.0', haproxy: 'HAProxy version 2.6.12', postgres: 'server 15.20', rsync: 'rsync version 3.2.7', openssh: 'OpenSSH_9.2p1' };
  const run: RunInfo = { at: '2026-11-29T12:00:00.000Z', quick: false, durationMs: 600_000, machine };

  test('machine, date, summary, NOT met in bold and the command of each figure', () => {
    const r = passing();
    r.promote!.rows![1]!.wallMsMedian = 1600;
    const md = render(r, run);
    assert.match(md, /^# Benchmarks/);
    assert.match(md, /2026-11-29T12:00:00.000Z/);
    assert.match(md, /\| CPU \| Test CPU, 2 cores \|/);
    assert.match(md, /\| HAProxy \| HAProxy version 2\.6\.12 \|/);
    const total = judged(r).length;
    assert.match(md, new RegExp(`^${total - 1} of ${total} targets met; NOT met: promotion, 2 hosts, median of 3`, 'm'));
    assert.match(md, /\| promotion, 2 hosts, median of 3 \| 1600 ms \(max 1300 ms\) \| <= 1500 ms \| \*\*NOT met\*\* \| `HOSTS=1,2,8,32 RUNS=3 node dist\/bench\/promote\.js` \|/);
    assert.doesNotMatch(md, /BENCH_QUICK/);
  });

  test('a quick run says its figures are not the project\'s', () => {
    assert.match(render(passing(), { ...run, quick: true }), /BENCH_QUICK=1: a smoke run/);
  });

  test('writeReport reads a results directory and writes the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-report-'));
    const r = passing();
    for (const [name, data] of Object.entries(r)) writeFileSync(join(dir, `${name}.json`), JSON.stringify(data));
    writeFileSync(join(dir, 'run.json'), JSON.stringify(run));
    writeFileSync(join(dir, 'unrelated.json'), '{}');
    const out = join(dir, 'BENCHMARKS.md');
    writeReport(out, dir);
    const md = readFileSync(out, 'utf8');
    const total = judged(r).length;
    assert.match(md, new RegExp(`^${total} of ${total} targets met\\.$`, 'm'));
    assert.match(md, /Test CPU/);
  });
});

describe('bench timeline: the part of a promotion spent waiting for the application', () => {
  test('union of overlapping intervals', () => {
    assert.equal(unionMs([[0, 10], [5, 20], [30, 40]]), 30);
    assert.equal(unionMs([]), 0);
    assert.equal(unionMs([[5, 5], [1, 2]]), 1);
  });

  test('per host from the slot spawned to its last pre check, plus post checks; stop steps ignored', () => {
    const at = (ms: number) => new Date(Date.UTC(2026, 0, 1) + ms).toISOString();
    const step = (ms: number, phase: string, target: string, title: string, state: string) => ({ type: 'step', at: at(ms), phase, target, title, state });
    const w = applicationWaiting([
      { type: 'start', at: at(0) },
      step(100, 'start', 'h1', 'stop idle slot web/a if running', 'end'),
      step(150, 'start', 'h1', 'start web/a (port 8001)', 'end'),
      step(160, 'start', 'h2', 'start web/a (port 8001)', 'end'),
      step(250, 'check', 'h1', 'pre check health on h1', 'end'),
      step(300, 'check', 'h2', 'pre check health on h2', 'end'),
      step(320, 'check', 'h2', 'pre check ready on h2', 'end'),
      step(400, 'post', 'lb', 'post check health on lb', 'begin'),
      step(410, 'post', 'lb', 'post check health on lb', 'end'),
      { type: 'finish', at: at(500) },
    ]);
    assert.deepEqual(w.appStartMs, { h1: 100, h2: 160 });
    // [150, 320] and [400, 410]
    assert.equal(w.waitingMs, 170 + 10);
    assert.equal(w.postCheckMs, 10);
    assert.equal(w.journalMs, 500);
  });
});

describe('bench knobs', () => {
  test('the command names every knob read, with the value used', () => {
    const k = new Knobs({ RUNS: '2' });
    assert.deepEqual(k.numbers('HOSTS', '1,8'), [1, 8]);
    assert.equal(k.number('RUNS', 3), 2);
    assert.equal(k.command('transfer'), 'HOSTS=1,8 RUNS=2 node dist/bench/transfer.js');
    assert.throws(() => new Knobs({ HOSTS: '1,x' }).numbers('HOSTS', '1'), /env HOSTS="1,x"/);
    assert.throws(() => new Knobs({ RUNS: '-1' }).number('RUNS', 1), /env RUNS="-1"/);
  });
});
