/*
 * BENCHMARKS.md from bench/results/*.json: the machine and date of the run, then every figure next to
 * its target with a verdict computed from the numbers (met / NOT met), and the command that measured
 * it; then each benchmark's own table. Written by `npm run bench` (bench/run-all.ts) after the run;
 * also runnable alone to write it again from the results there are:
 *
 *   node dist/bench/report.js            (writes BENCHMARKS.md at the repository root)
 *
 * A figure whose benchmark did not run, or failed before writing its result, is "not measured".
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO } from '../test/lab/pipeline.js';
import { readMachine, type Machine } from './machine.js';
import { RESULTS_DIR } from './result.js';

/* ---- the shapes read from the results (every field optional: a result may be partial or old) ---- */

interface Common { benchmark?: string; command?: string; at?: string; durationMs?: number; loadavg?: { start?: number[]; end?: number[] }; table?: string }
interface PromoteRow { hosts: number; runs?: number; ok?: boolean; wallMsMedian?: number; wallMsMax?: number; overheadMsMedian?: number; waitingMsMedian?: number; peakMb?: number; requests?: number; failed?: number }
interface FleetRow extends PromoteRow { parallel?: number; maxConnectionsPerHost?: number; maxDistinctConnectionsPerHost?: number; maxConnections?: number; maxBusyHosts?: number; maxBusyHostsSampled?: number; maxSampleMs?: number; hostsWatched?: number; hostsConnected?: number; maxConnectionsPerHostLogged?: number; hostsConnectedLogged?: number; sampledWallMs?: number }
interface FlipSummary { command: 'flip' | 'rollback'; count?: number; ok?: boolean; requests?: number; failed?: number; switchedEveryTime?: boolean; wallMsMedian?: number }
interface Stats { min?: number; median?: number; p95?: number; max?: number }
interface SwitchSummary { condition: string; switches?: number; latencyMs?: Stats; requests?: number; failed?: number }
interface TransferRow { hosts: number; files?: number; ratioPct?: number; deltaBytesPerHost?: number; firstBytesPerHost?: number; extraReleaseKb?: number; releaseKb?: number; extraReleasePct?: number }
interface SnapshotRow { name: string; ms?: number; mbPerS?: number; ratioToBaseline?: number }
interface VersusRow { hosts: number; mode: 'clean' | 'field'; runs?: number; ok?: boolean; shellMs?: number; rttMs?: number; updateserverMsMedian?: number; scriptMsMedian?: number; ratio?: number; failed?: { updateserver?: number; script?: number }; requests?: { updateserver?: number; script?: number } }
interface StartupResult { runs?: number; versionMsMedian?: number; versionMsMax?: number; firstConnectionMsMedian?: number; firstConnectionMsMax?: number }

export interface Results {
  promote?: Common & { rows?: PromoteRow[] };
  fleet?: Common & { rows?: FleetRow[] };
  flip?: Common & { hosts?: number; summary?: FlipSummary[] };
  rollback?: Common & { summary?: { runs?: number; checkToOldSlotMs?: Stats; cliRollbackMs?: Stats; failedRequests?: number; requests?: number }; runs?: Array<{ checkToOldSlotMs?: number; exit?: number | null }> };
  'switch-latency'?: Common & { summaries?: SwitchSummary[] };
  transfer?: Common & { rows?: TransferRow[] };
  snapshot?: Common & { source?: { bytes?: number; rows?: number; size?: number }; runs?: number; rows?: SnapshotRow[] };
  validate?: Common & { boundBytes?: number; rows?: Array<{ bytes: number; validMs?: number; brokenMs?: number }>; linear?: { validRatio?: number; brokenRatio?: number }; overBoundMs?: number };
  versus?: Common & { rows?: VersusRow[] };
  startup?: Common & StartupResult;
  'fleet-light'?: Common & { rows?: FleetRow[] };
  /** Issue 21: inserts per second without and with the change log (bench/write-cost.ts); no target, a measure. */
  /** Issue 22: the console's pipeline page at size (bench/console-page.ts). */
  'console-page'?: Common & { stages?: number; services?: number; hosts?: number; runs?: number; medianMs?: number; maxMs?: number; pageBytes?: number };
  'write-cost'?: Common & { engines?: Array<{ engine: string; plainMedian?: number; loggedMedian?: number; costPercent?: number }> };
}

/** What run-all.ts records about the run itself (bench/results/run.json). */
export interface RunInfo {
  at?: string;
  quick?: boolean;
  durationMs?: number;
  /** BENCH_ONLY: the benchmarks this run measured; the others' figures are from earlier runs. */
  only?: string[];
  machine?: Machine;
  benches?: Array<{ name: string; exit: number | null; durationMs: number; env: Record<string, string> }>;
}

export const BENCHES = ['promote', 'fleet', 'flip', 'rollback', 'switch-latency', 'transfer', 'snapshot', 'validate', 'versus', 'startup', 'fleet-light', 'write-cost', 'console-page'] as const;

/** updateserver's wall time over the bare shell script's, in the same run (issue 17). */
export const VERSUS_TARGET: Record<'clean' | 'field', number> = { clean: 1.0, field: 0.7 };

/* ---- figures and verdicts ---- */

export type Verdict = 'met' | 'NOT met' | 'no target' | 'not measured';

export interface Figure { section: string; name: string; value: string; target: string; verdict: Verdict; bench: string; command: string }

/** `value <= limit`, or not measured when there is no number. */
export function atMost(value: number | undefined, limit: number, extraOk = true): Verdict {
  if (value === undefined || !Number.isFinite(value)) return 'not measured';
  return value <= limit && extraOk ? 'met' : 'NOT met';
}

const ms = (x: number | undefined) => (x === undefined ? '—' : `${Math.round(x * 100) / 100} ms`);
const num = (x: number | undefined) => (x === undefined ? '—' : x.toLocaleString('en-US'));
const runs = (n: number | undefined) => `${n ?? '?'} run${n === 1 ? '' : 's'}`;
const sum = (xs: Array<number | undefined>) => (xs.some((x) => x === undefined) ? undefined : xs.reduce<number>((a, b) => a + b!, 0));

/** Promotion wall-time targets by host count (health checks included, watch window 0). */
export const PROMOTION_TARGET_MS: Record<number, number> = { 2: 1500, 8: 4000, 32: 8000 };

export function figures(r: Results): Figure[] {
  const out: Figure[] = [];
  const cmd = (bench: keyof Results) => r[bench]?.command ?? `node dist/bench/${bench}.js`;
  const add = (f: Omit<Figure, 'command'> & { bench: keyof Results }) => out.push({ ...f, command: cmd(f.bench) });
  const missing = (section: string, name: string, target: string, bench: keyof Results) => add({ section, name, value: '—', target, verdict: 'not measured', bench });

  // Failed requests: every kind of switch, under load.
  const S1 = 'Failed requests under sustained load';
  const promo = r.promote?.rows ?? [];
  if (promo.length > 0) {
    const failed = sum(promo.map((x) => x.failed));
    const requests = sum(promo.map((x) => x.requests));
    const count = sum(promo.map((x) => x.runs));
    add({ section: S1, name: `promotion (${count ?? '?'} promotions, ${promo.map((x) => x.hosts).join('/')} hosts)`, value: `${num(failed)} failed of ${num(requests)} requests`, target: '0 failed', verdict: failed === undefined || !requests ? 'not measured' : failed === 0 && promo.every((x) => x.ok !== false) ? 'met' : 'NOT met', bench: 'promote' });
  } else missing(S1, 'promotion', '0 failed', 'promote');
  for (const command of ['flip', 'rollback'] as const) {
    const s = r.flip?.summary?.find((x) => x.command === command);
    const name = `${command === 'flip' ? 'manual flip' : 'manual rollback'}${s ? ` (${runs(s.count)}, ${r.flip?.hosts ?? '?'} hosts)` : ''}`;
    if (s && s.failed !== undefined && s.requests) {
      const ok = s.ok !== false && s.switchedEveryTime !== false;
      add({ section: S1, name, value: `${num(s.failed)} failed of ${num(s.requests)} requests${ok ? '' : ' (a run did not complete or did not move traffic)'}`, target: '0 failed', verdict: s.failed === 0 && ok ? 'met' : 'NOT met', bench: 'flip' });
    } else missing(S1, name, '0 failed', 'flip');
  }
  const rb = r.rollback?.summary;
  if (rb && rb.failedRequests !== undefined && rb.requests) {
    add({ section: S1, name: `automatic rollback (${runs(rb.runs)})`, value: `${num(rb.failedRequests)} failed of ${num(rb.requests)} requests`, target: '0 failed', verdict: rb.failedRequests === 0 ? 'met' : 'NOT met', bench: 'rollback' });
  } else missing(S1, 'automatic rollback', '0 failed', 'rollback');

  // Promotion wall time and the tool's own part of it.
  const S2 = 'Promotion wall time (health checks included, watch window 0, under load)';
  for (const hosts of [1, 2, 8, 32]) {
    const row = promo.find((x) => x.hosts === hosts);
    const limit = PROMOTION_TARGET_MS[hosts];
    const target = limit === undefined ? '—' : `<= ${limit} ms`;
    if (!row) { missing(S2, `promotion, ${hosts} host${hosts === 1 ? '' : 's'}`, target, 'promote'); continue; }
    add({ section: S2, name: `promotion, ${hosts} host${hosts === 1 ? '' : 's'}, median of ${row.runs ?? '?'}`, value: `${ms(row.wallMsMedian)} (max ${ms(row.wallMsMax)})${row.ok === false ? ', a run failed' : ''}`, target, verdict: limit === undefined ? (row.wallMsMedian === undefined ? 'not measured' : 'no target') : atMost(row.wallMsMedian, limit, row.ok !== false), bench: 'promote' });
    add({ section: S2, name: `${hosts} host${hosts === 1 ? '' : 's'}: the tool's own overhead (wall minus app start and checks), median`, value: `${ms(row.overheadMsMedian)} (waited for the app: ${ms(row.waitingMsMedian)})`, target: '—', verdict: row.overheadMsMedian === undefined ? 'not measured' : 'no target', bench: 'promote' });
  }
  for (const row of promo.filter((x) => ![1, 2, 8, 32].includes(x.hosts))) {
    add({ section: S2, name: `promotion, ${row.hosts} hosts, median of ${row.runs ?? '?'}`, value: `${ms(row.wallMsMedian)}, overhead ${ms(row.overheadMsMedian)}`, target: '—', verdict: 'no target', bench: 'promote' });
  }

  // Switching and reacting.
  const S3 = 'Switch latency and rollback reaction';
  const sw = r['switch-latency']?.summaries ?? [];
  if (sw.length === 0) missing(S3, 'switch latency, p95', '<= 5 ms per LB', 'switch-latency');
  for (const s of sw) {
    add({ section: S3, name: `switch latency, ${s.condition} (${s.switches} switches), p95`, value: `${ms(s.latencyMs?.p95)} (median ${ms(s.latencyMs?.median)}, max ${ms(s.latencyMs?.max)}; ${num(s.failed)} failed of ${num(s.requests)} requests)`, target: '<= 5 ms per LB', verdict: atMost(s.latencyMs?.p95, 5, s.failed === 0), bench: 'switch-latency' });
  }
  const reaction = r.rollback?.runs?.map((x) => x.checkToOldSlotMs);
  if (rb?.checkToOldSlotMs?.max !== undefined && reaction) {
    const all = reaction.every((x) => typeof x === 'number');
    add({ section: S3, name: `automatic rollback: failing check -> old slot serves, worst of ${reaction.length}`, value: `${ms(rb.checkToOldSlotMs.max)} (median ${ms(rb.checkToOldSlotMs.median)})${all ? '' : `; ${reaction.filter((x) => typeof x !== 'number').length} run(s) not measured`}`, target: '<= 500 ms', verdict: atMost(rb.checkToOldSlotMs.max, 500, all), bench: 'rollback' });
  } else missing(S3, 'automatic rollback: failing check -> old slot serves', '<= 500 ms', 'rollback');

  // Transfer and disk.
  const S4 = 'Transfer and disk';
  const tr = r.transfer?.rows ?? [];
  if (tr.length === 0) missing(S4, 'bytes moved by a 1% change', '<= 3% of the bytes', 'transfer');
  for (const row of tr) {
    add({ section: S4, name: `bytes moved by a 1% change, ${row.hosts} host${row.hosts === 1 ? '' : 's'} (${num(row.files)} files), per host`, value: `${row.ratioPct}% (${num(row.deltaBytesPerHost)} of ${num(row.firstBytesPerHost)} B)`, target: '<= 3% of the bytes', verdict: atMost(row.ratioPct, 3), bench: 'transfer' });
  }
  const disk = tr[0];
  if (disk) add({ section: S4, name: 'disk per extra release after a 1% change (hard links)', value: `+${num(disk.extraReleaseKb)} KB (${disk.extraReleasePct}% of ${num(disk.releaseKb)} KB)`, target: '—', verdict: disk.extraReleaseKb === undefined ? 'not measured' : 'no target', bench: 'transfer' });
  else missing(S4, 'disk per extra release', '—', 'transfer');

  // Database snapshot against the raw pipeline, measured in the same run.
  const S5 = 'PostgreSQL snapshot';
  const snap = r.snapshot;
  const base = snap?.rows?.find((x) => x.name === 'baseline');
  const src = snap?.source;
  const about = src?.bytes ? ` (${Math.round(src.bytes / 1e6)} MB source${src.size !== undefined ? `, SIZE=${src.size}` : ''}, median of ${snap?.runs ?? '?'})` : '';
  if (base) add({ section: S5, name: `baseline pg_dump -Fc \\| pg_restore${about}`, value: `${((base.ms ?? NaN) / 1000).toFixed(1)} s, ${base.mbPerS} MB/s`, target: '—', verdict: 'no target', bench: 'snapshot' });
  const us = snap?.rows?.find((x) => x.name === 'updateserver (jobs 1)');
  if (us) add({ section: S5, name: `updateserver's snapshot (jobs 1, the default) vs the baseline${about}`, value: `${us.ratioToBaseline}x the baseline's time (${((us.ms ?? NaN) / 1000).toFixed(1)} s, ${us.mbPerS} MB/s)`, target: '<= 0.65x', verdict: atMost(us.ratioToBaseline, 0.65), bench: 'snapshot' });
  else missing(S5, "updateserver's snapshot vs pg_dump | pg_restore", '<= 0.65x', 'snapshot');
  for (const other of snap?.rows?.filter((x) => x.name !== 'baseline' && x.name !== 'updateserver (jobs 1)') ?? []) {
    add({ section: S5, name: `${other.name} vs the baseline`, value: `${other.ratioToBaseline}x (${((other.ms ?? NaN) / 1000).toFixed(1)} s, ${other.mbPerS} MB/s)`, target: '—', verdict: 'no target', bench: 'snapshot' });
  }

  // Memory and fleet scale.
  const S6 = 'Orchestrator memory and fleet scale';
  const p32 = promo.find((x) => x.hosts === 32);
  if (p32) add({ section: S6, name: 'peak memory (VmHWM) at 32 hosts', value: `${p32.peakMb} MB`, target: '<= 150 MB', verdict: atMost(p32.peakMb, 150), bench: 'promote' });
  else missing(S6, 'peak memory (VmHWM) at 32 hosts', '<= 150 MB', 'promote');
  const fleet = r.fleet?.rows ?? [];
  if (fleet.length === 0) missing(S6, 'fleet promotion (50 hosts)', 'completes', 'fleet');
  for (const row of fleet) {
    add({ section: S6, name: `fleet ${row.hosts} hosts: promotion completes, wall time (median of ${row.runs ?? '?'}), peak memory`, value: `${row.ok === false ? 'FAILED' : 'completed'}: ${ms(row.wallMsMedian)}, tool overhead ${ms(row.overheadMsMedian)}, peak ${row.peakMb} MB`, target: 'completes, <= 150 MB', verdict: row.ok === undefined ? 'not measured' : atMost(row.peakMb, 150, row.ok), bench: 'fleet' });
    add({ section: S6, name: `fleet ${row.hosts} hosts: SSH connections per host (${connectionsHow(row)})`, value: connectionsValue(row), target: '1 per host', verdict: connectionsVerdict(row), bench: 'fleet' });
    add({ section: S6, name: `fleet ${row.hosts} hosts: beta hosts with a command running at once (${busyHow(row)})`, value: `${row.maxBusyHosts}${sampledNote(row)}`, target: `<= parallel (${row.parallel ?? '?'})`, verdict: row.parallel === undefined ? 'not measured' : atMost(row.maxBusyHosts, row.parallel), bench: 'fleet' });
  }
  const light = r['fleet-light']?.rows ?? [];
  if (light.length === 0) missing(S6, 'fleet with a light app, 200 hosts', '<= 10 s, <= 150 MB, 1 connection per host', 'fleet-light');
  for (const row of light) {
    add({ section: S6, name: `fleet ${row.hosts} hosts, light app: wall time (median of ${row.runs ?? '?'}${row.sampledWallMs === undefined ? '' : ' runs not sampled'})`, value: `${row.ok === false ? 'FAILED: ' : ''}${ms(row.wallMsMedian)} (max ${ms(row.wallMsMax)}${row.sampledWallMs === undefined ? '' : `; the sampled run: ${ms(row.sampledWallMs)}`})`, target: '<= 10000 ms', verdict: row.ok === undefined ? 'not measured' : atMost(row.wallMsMedian, 10_000, row.ok), bench: 'fleet-light' });
    add({ section: S6, name: `fleet ${row.hosts} hosts, light app: peak memory`, value: `${row.peakMb} MB`, target: '<= 150 MB', verdict: atMost(row.peakMb, 150), bench: 'fleet-light' });
    add({ section: S6, name: `fleet ${row.hosts} hosts, light app: SSH connections per host (${connectionsHow(row)})`, value: connectionsValue(row), target: '1 per host', verdict: connectionsVerdict(row), bench: 'fleet-light' });
    add({ section: S6, name: `fleet ${row.hosts} hosts, light app: beta hosts with a command running at once (${busyHow(row)})`, value: `${row.maxBusyHosts}${sampledNote(row)}`, target: `<= parallel (${row.parallel ?? '?'})`, verdict: row.parallel === undefined ? 'not measured' : atMost(row.maxBusyHosts, row.parallel), bench: 'fleet-light' });
  }
  if (fleet.length > 1) {
    const lo = fleet.reduce((a, b) => (a.hosts < b.hosts ? a : b));
    const hi = fleet.reduce((a, b) => (a.hosts > b.hosts ? a : b));
    if (lo.peakMb !== undefined && hi.peakMb !== undefined) {
      add({ section: S6, name: `memory from ${lo.hosts} to ${hi.hosts} hosts (stays flat)`, value: `${lo.peakMb} -> ${hi.peakMb} MB (+${Math.round((hi.peakMb - lo.peakMb) * 10) / 10} MB, ${((hi.peakMb - lo.peakMb) / (hi.hosts - lo.hosts)).toFixed(2)} MB per host)`, target: '—', verdict: 'no target', bench: 'fleet' });
    }
  }
  // Validation against profile size (issue 15): linear up to the bound on a file, and bounded there.
  const S7 = 'Profile validation';
  const v = r.validate;
  const largest = v?.rows?.[v.rows.length - 1];
  if (v?.linear && largest) {
    const worst = Math.max(v.linear.validRatio ?? NaN, v.linear.brokenRatio ?? NaN);
    add({ section: S7, name: `time per KB at ${Math.round(largest.bytes / 1024)} KB against the cheapest size (valid / broken profile; quadratic would be ~${Math.round(largest.bytes / (v.rows![0]!.bytes))}x)`, value: `${v.linear.validRatio}x / ${v.linear.brokenRatio}x`, target: '<= 2x (linear)', verdict: atMost(worst, 2), bench: 'validate' });
    add({ section: S7, name: `validation of a profile at the bound (${Math.round(largest.bytes / 1024)} KB, valid / broken)`, value: `${ms(largest.validMs)} / ${ms(largest.brokenMs)}`, target: '<= 1500 ms', verdict: atMost(Math.max(largest.validMs ?? NaN, largest.brokenMs ?? NaN), 1500), bench: 'validate' });
    add({ section: S7, name: 'a file twice the bound: refused', value: ms(v.overBoundMs), target: '—', verdict: v.overBoundMs === undefined ? 'not measured' : 'no target', bench: 'validate' });
  } else missing(S7, 'validation time linear in profile size', '<= 2x (linear)', 'validate');
  // Against a bare shell script, on clean and on field hosts (issue 17), and the command's start-up.
  const S8 = 'Against a bare shell script (same run, under load), and start-up';
  const vs = r.versus?.rows ?? [];
  if (vs.length === 0) missing(S8, 'updateserver / shell script, field hosts', `<= ${VERSUS_TARGET.field}x`, 'versus');
  for (const row of vs) {
    const limit = VERSUS_TARGET[row.mode];
    const failed = (row.failed?.updateserver ?? 0) + (row.failed?.script ?? 0);
    const where = row.mode === 'field' ? `field hosts (${row.shellMs ?? '?'} ms shell, ${row.rttMs ?? '?'} ms rtt)` : 'clean hosts';
    add({ section: S8, name: `updateserver / shell script, ${row.hosts} ${where}, median of ${row.runs ?? '?'}`, value: `${row.ratio}x (${ms(row.updateserverMsMedian)} vs ${ms(row.scriptMsMedian)}; failed requests ${row.failed?.updateserver ?? '?'} / ${row.failed?.script ?? '?'})${row.ok === false ? ', a run failed' : ''}`, target: `<= ${limit}x, 0 failed`, verdict: atMost(row.ratio, limit, row.ok !== false && failed === 0), bench: 'versus' });
  }
  const st = r.startup;
  if (st?.versionMsMedian !== undefined) add({ section: S8, name: `\`updateserver --version\`, median of ${st.runs ?? '?'}`, value: `${ms(st.versionMsMedian)} (max ${ms(st.versionMsMax)})`, target: '<= 120 ms', verdict: atMost(st.versionMsMedian, 120), bench: 'startup' });
  else missing(S8, '`updateserver --version`', '<= 120 ms', 'startup');
  if (st?.firstConnectionMsMedian !== undefined) add({ section: S8, name: `command start -> first connection to a host, median of ${st.runs ?? '?'}`, value: `${ms(st.firstConnectionMsMedian)} (max ${ms(st.firstConnectionMsMax)})`, target: '<= 150 ms', verdict: atMost(st.firstConnectionMsMedian, 150), bench: 'startup' });
  else missing(S8, 'command start -> first connection to a host', '<= 150 ms', 'startup');
  const cp = r['console-page'];
  const cpName = `web console: the pipeline page, ${cp?.stages ?? 4} stages x ${cp?.services ?? 10} services x ${cp?.hosts ?? 50} hosts, at the server (median of ${cp?.runs ?? '?'})`;
  if (cp?.medianMs !== undefined) add({ section: 'Web console', name: cpName, value: `${ms(cp.medianMs)} (max ${ms(cp.maxMs)}, ${num(cp.pageBytes)} bytes)`, target: '<= 100 ms', verdict: atMost(cp.medianMs, 100), bench: 'console-page' });
  else missing('Web console', cpName, '<= 100 ms', 'console-page');
  // Counted at the transport and asserted by an integration test, not timed: the test fails if they change.
  out.push({ section: S8, name: 'sequential remote exchanges per host in a promotion: the previous stage\'s host / each target host', value: '1 / 5 (before issue 17: 2 / 5); 3 / 5 when the release must be pulled into the local cache (unchanged)', target: '—', verdict: 'no target', bench: 'exchanges', command: 'node --test dist/test/integration/exchanges.test.js' });
  return out;
}

/* ---- rendering ---- */

const cell = (s: string) => s.replace(/\n/g, ' ');

export function render(results: Results, run: RunInfo, opts: { machineReadNow?: boolean } = {}): string {
  const figs = figures(results);
  const judged = figs.filter((f) => f.verdict === 'met' || f.verdict === 'NOT met');
  const notMet = judged.filter((f) => f.verdict === 'NOT met');
  const unmeasured = figs.filter((f) => f.verdict === 'not measured');
  const m = run.machine;
  const lines: string[] = [
    '# Benchmarks',
    '',
    `Written by \`npm run bench\` (bench/run-all.ts, then bench/report.ts) from bench/results/*.json. ${run.only ? `Last run ${run.at ?? 'date unknown'} measured only ${run.only.join(', ')}; the other figures are from earlier runs (each benchmark's own date is under "Conditions" below)` : `Run ${run.at ?? 'date unknown'}`}${run.durationMs !== undefined ? `, ${Math.round(run.durationMs / 60000 * 10) / 10} min` : ''}. Each figure comes with the command that measured it; bench/README.md says what each benchmark does.`,
    '',
  ];
  if (run.quick) lines.push('> **BENCH_QUICK=1: a smoke run (one run each, small sizes) to test the pipeline. These are not the project\'s figures.**', '');
  if (m) {
    lines.push(`## Machine${opts.machineReadNow ? ' (read when this report was written: the run did not record it)' : ''}`, '', '| | |', '|---|---|',
      `| CPU | ${m.cpu}, ${m.cores} cores |`, `| memory | ${m.memory} |`, `| OS | ${m.os}, kernel ${m.kernel} |`, `| Node | ${m.node} |`,
      `| HAProxy | ${m.haproxy} |`, `| PostgreSQL | ${m.postgres} |`, `| rsync | ${m.rsync} |`, `| OpenSSH | ${m.openssh} |`, '');
  }
  lines.push('## Figures against the targets', '',
    `${judged.length - notMet.length} of ${judged.length} targets met${notMet.length ? `; NOT met: ${notMet.map((f) => f.name).join('; ')}` : ''}${unmeasured.length ? `; ${unmeasured.length} figure(s) not measured` : ''}.`, '');
  for (const section of [...new Set(figs.map((f) => f.section))]) {
    lines.push(`### ${section}`, '', '| figure | value | target | verdict | command |', '|---|---|---|---|---|');
    for (const f of figs.filter((x) => x.section === section)) {
      const verdict = f.verdict === 'NOT met' ? '**NOT met**' : f.verdict;
      lines.push(`| ${cell(f.name)} | ${cell(f.value)} | ${f.target} | ${verdict} | \`${f.command}\` |`);
    }
    lines.push('');
  }
  lines.push('## Conditions of each benchmark', '',
    'The load average (1 min) at the start and the end of each: figures from a loaded machine are slower than the same code on a quiet one.', '',
    '| benchmark | measured | took | load avg start -> end | exit | command |', '|---|---|---|---|---|---|');
  for (const name of BENCHES) {
    const res = results[name];
    const ran = run.benches?.find((b) => b.name === name);
    if (!res && !ran) continue;
    const load = res?.loadavg ? `${res.loadavg.start?.[0] ?? '?'} -> ${res.loadavg.end?.[0] ?? '?'}` : '—';
    const took = res?.durationMs !== undefined ? `${Math.round(res.durationMs / 1000)} s` : ran ? `${Math.round(ran.durationMs / 1000)} s` : '—';
    lines.push(`| ${name} | ${res?.at ?? 'no result'} | ${took} | ${load} | ${ran ? String(ran.exit) : '—'} | \`${res?.command ?? `node dist/bench/${name}.js`}\` |`);
  }
  lines.push('');
  lines.push('## Details', '');
  for (const name of BENCHES) {
    const res = results[name];
    if (!res?.table) continue;
    lines.push(`### ${name} — \`${res.command ?? name}\``, '', res.table, '');
  }
  return `${lines.join('\n').trimEnd()}\n`;
}

/* ---- files ---- */

export function readResults(dir = RESULTS_DIR): { results: Results; run: RunInfo } {
  const results: Results = {};
  let run: RunInfo = {};
  if (existsSync(dir)) {
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
      const data = JSON.parse(readFileSync(join(dir, file), 'utf8')) as unknown;
      const name = file.replace(/\.json$/, '');
      if (name === 'run') run = data as RunInfo;
      else if ((BENCHES as readonly string[]).includes(name)) (results as Record<string, unknown>)[name] = data;
    }
  }
  return { results, run };
}

/**
 * Figures measured by integration tests rather than by a bench of this folder (the rollout's shares and
 * aborts, issue 20), kept as written in bench/sections/*.md and appended, so that a new report keeps them.
 */
function sections(dir = join(REPO, 'bench', 'sections')): string {
  if (!existsSync(dir)) return '';
  return readdirSync(dir).filter((f) => f.endsWith('.md')).sort().map((f) => `\n${readFileSync(join(dir, f), 'utf8').trimEnd()}\n`).join('');
}

export function writeReport(file = join(REPO, 'BENCHMARKS.md'), dir = RESULTS_DIR): { file: string; text: string } {
  const { results, run } = readResults(dir);
  const machineReadNow = run.machine === undefined;
  const text = render(results, machineReadNow ? { ...run, machine: readMachine() } : run, { machineReadNow }) + sections();
  writeFileSync(file, text);
  return { file, text };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { file, text } = writeReport();
  const summary = /^\d+ of \d+ targets met.*$/m.exec(text)?.[0];
  process.stdout.write(`wrote ${file}${summary ? `: ${summary}` : ''}\n`);
}

/** Connections are counted from the sshds' logs in every run when the row has them; earlier rows were sampled only. */
function connectionsHow(row: FleetRow): string {
  return row.maxConnectionsPerHostLogged === undefined ? 'most at once / distinct in a run' : 'accepted in a run, from the sshds\' logs; sampled run: most at once / distinct';
}

function connectionsValue(row: FleetRow): string {
  const sampled = `${row.maxConnectionsPerHost} / ${row.maxDistinctConnectionsPerHost} (${row.hostsConnected} of ${row.hostsWatched} hosts connected${row.maxConnections === undefined ? '' : `; ${row.maxConnections} at once`})`;
  if (row.maxConnectionsPerHostLogged === undefined) return sampled;
  return `${row.maxConnectionsPerHostLogged} (${row.hostsConnectedLogged} of ${row.hostsWatched} hosts connected); sampled run: ${sampled}`;
}

function connectionsVerdict(row: FleetRow): Verdict {
  if (row.maxConnectionsPerHost === undefined || !row.hostsConnected) return 'not measured';
  const logged = row.maxConnectionsPerHostLogged ?? 1;
  return logged <= 1 && row.maxConnectionsPerHost <= 1 && (row.maxDistinctConnectionsPerHost ?? 99) <= 1 ? 'met' : 'NOT met';
}

/**
 * How the busy-host figure was counted: from each command's interval (start time in /proc to the last
 * sample that saw it, bench/ssh-sessions.ts), or, in results from before that, per sample.
 */
function busyHow(row: FleetRow): string {
  return row.maxBusyHostsSampled === undefined ? 'sampled every 25 ms' : 'commands\' start time to last seen running, sampled every 25 ms';
}

/** The per-sample count next to the interval one, with how long a sample took (it overstates when slow). */
function sampledNote(row: FleetRow): string {
  const took = row.maxSampleMs === undefined ? '' : `one sample of the ${row.hostsWatched ?? '?'} hosts took up to ${row.maxSampleMs} ms`;
  if (row.maxBusyHostsSampled === undefined) return took ? ` (${took})` : '';
  return ` (counted per sample: ${row.maxBusyHostsSampled}; ${took})`;
}
