/*
 * Soak on the real lab (net 142): 100 consecutive operations on beta, alternating a promotion of a new
 * release and a flip, under load through HAProxy the whole time. dev makes each new release while beta
 * flips (another stage: its own lock, hosts and HAProxy), which keeps the soak within its time budget.
 * One operation in ten goes through the command line as a user runs it; the others call the same
 * functions the command line calls, in this process, so that this process's descriptors and handles
 * show what a long-lived caller would leak. Afterwards:
 *  - no failed request;
 *  - no leaked process: on each lab host only the app of the live slot (and of the previous slot, if
 *    still running) is left, no rsync, ssh, shell or database client; no child left under this process;
 *  - no leaked SSH connection: none established to any host's sshd, no sshd session, after every operation;
 *  - file descriptors flat: HAProxy's workers, each sshd listener, and this process (/proc/self/fd and
 *    active handles) within a small tolerance of where they were;
 *  - disk bounded by retention: each host keeps at most keepReleases releases, its /srv does not grow,
 *    and the local state directory's journal archive, run logs and release cache stay bounded.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { startLoad, type LoadResult } from '../lab/load.js';
import { childrenOf, establishedTo, fdCount, hostProcesses, type Proc } from '../lab/leaks.js';
import { updateserver, type CliResult } from '../integration/cli.js';
import { promote } from '../../src/promote/promote.js';
import { flip } from '../../src/promote/flip.js';
import type { Logger } from '../../src/log.js';
import { RUN_LOGS_KEPT } from '../../src/state/run-logs.js';
import { CACHE_KEPT } from '../../src/promote/source.js';

const NET = 142;
const OPS = Number(process.env.SOAK_OPS ?? 100);
const KEEP = 3;
/** dev keeps the default number of releases. */
const DEV_KEEP = 5;
/** The journal archive is pruned to this many finished runs (src/state/journal.ts). */
const JOURNAL_ARCHIVE = 20;

let p: Pipeline;
const explain = (r: CliResult) => `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Warnings and errors of the in-process runs, to show on failure. */
const logged: string[] = [];
const logger: Logger = {
  info: () => {}, debug: () => {},
  warn: (m) => { logged.push(`warn: ${m}`); },
  error: (m) => { logged.push(`error: ${m}`); },
  close: async () => {},
};

before(async () => {
  p = await startPipeline({ net: NET, betaTopExtra: `keepReleases: ${KEEP}` });
  for (const stage of ['dev', 'beta']) {
    const r = await updateserver(p.project.dir, stage);
    assert.equal(r.code, 0, explain(r));
  }
});

after(async () => {
  await p?.stop();
});

async function run(viaCli: boolean, what: 'promote' | 'flip', stage: 'dev' | 'beta'): Promise<void> {
  if (viaCli) {
    const r = await updateserver(p.project.dir, ...(what === 'flip' ? ['flip', stage] : [stage]));
    assert.equal(r.code, 0, explain(r));
    return;
  }
  const options = { project: p.project, stage, logger };
  const result = what === 'promote' ? await promote(options) : await flip(options);
  assert.equal(result.applied, true, `${what} ${stage}: not applied (${result.skipped ?? ''})\n${logged.join('\n')}`);
}

/** Polls until fn() holds (sessions take a moment to close after the client ends them). */
async function eventually(what: string, fn: () => Promise<boolean> | boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) assert.fail(what);
    await sleep(25);
  }
}

const betaHosts = () => p.lab.hosts.filter((h) => h.name.startsWith('beta'));
/** HAProxy's workers: the master's children (a reload leaves the old one until its sessions end). */
const haproxyFds = () => childrenOf(p.lbs.beta.pid).reduce((n, w) => n + fdCount(w.pid), 0);
const labPids = () => new Set([...p.lab.hosts.map((h) => h.pid), p.lbs.dev.pid, p.lbs.beta.pid]);
const ourChildren = () => childrenOf(process.pid).filter((c) => !labPids().has(c.pid)).map((c) => c.args);
const activeHandles = () => (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length;

async function du(dir: string): Promise<number> {
  let bytes = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) bytes += (await stat(join(e.parentPath, e.name))).size;
  }
  return bytes;
}

const srvBytes = async () => Object.fromEntries(await Promise.all(p.lab.hosts.map(async (h) => [h.name, await du(join(h.srv, 'web'))] as const)));

test(`${OPS} consecutive promotions and flips under load: no failed request, no leaked process, connection, descriptor or disk`, async (t) => {
  // Two connections keep HAProxy busy (hundreds of requests a second) and leave CPU for the runs.
  const load = startLoad(p.url.beta, { connections: 2, maxDurationMs: 30 * 60_000 });
  const started = Date.now();
  const times: Record<'promote' | 'flip', number[]> = { promote: [], flip: [] };
  const start = { haproxyFds: haproxyFds(), sshdFds: Object.fromEntries(p.lab.hosts.map((h) => [h.name, fdCount(h.pid)])), children: ourChildren() };
  let warm: { fds: number; handles: number; srv: Record<string, number> } | undefined;
  let lastRelease = '';
  let result: LoadResult | undefined;
  try {
    // The first promotion's release: dev makes it here; later ones are made while beta flips.
    await writeFile(join(p.appDir, 'VERSION'), '3.0.0\n');
    await run(false, 'promote', 'dev');
    for (let i = 0; i < OPS; i++) {
      // 10 of the 100 through the command line: 5 promotions and 5 flips.
      const viaCli = i % 20 === 0 || i % 20 === 11;
      const t0 = Date.now();
      if (i % 2 === 0) {
        await run(viaCli, 'promote', 'beta');
        times.promote.push(Date.now() - t0);
        const { release } = (await (await fetch(`${p.url.beta}/`)).json()) as { release: string };
        assert.notEqual(release, lastRelease, `operation ${i}: beta still serves ${release}`);
        assert.match(release, new RegExp(`-3\\.${i}\\.0-`), `operation ${i}: beta serves ${release}`);
        lastRelease = release;
      } else {
        // dev makes the next promotion's release meanwhile: another stage, its own lock and hosts.
        await writeFile(join(p.appDir, 'VERSION'), `3.${i + 1}.0\n`);
        await Promise.all([run(viaCli, 'flip', 'beta'), run(viaCli, 'promote', 'dev')]);
        times.flip.push(Date.now() - t0);
      }
      // No SSH connection outlives its run: neither in the kernel's table nor as an sshd session.
      for (const h of p.lab.hosts) {
        await eventually(`operation ${i}: ${h.name} still has an SSH connection or session open`, async () => (await establishedTo(h.address, h.port)) === 0 && childrenOf(h.pid).length === 0);
      }
      // After warming up (modules loaded, pools created), this process's descriptors and handles are the reference.
      if (i === 9) warm = { fds: fdCount(process.pid), handles: activeHandles(), srv: await srvBytes() };
    }
  } finally {
    result = await load.stop();
  }
  const wallMs = Date.now() - started;
  const mean = (xs: number[]) => Math.round(xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length));
  t.diagnostic(`${OPS} operations in ${(wallMs / 1000).toFixed(1)} s: beta promotion mean ${mean(times.promote)} ms, beta flip (with dev's promotion beside it) mean ${mean(times.flip)} ms; ${result.requests} requests, ${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts, ${result.retried} retried`);

  // Load: every request answered with a 2xx.
  assert.ok(result.requests > 1000, `only ${result.requests} requests`);
  assert.deepEqual({ non2xx: result.non2xx, errors: result.errors, timeouts: result.timeouts }, { non2xx: 0, errors: 0, timeouts: 0 }, JSON.stringify(result));
  assert.ok(Object.keys(result.byRelease).length >= OPS / 2, `answers came from ${Object.keys(result.byRelease).length} releases`);

  // Processes: on each host, only the apps of the slots; nothing under this process.
  for (const h of p.lab.hosts) {
    const left: Proc[] = hostProcesses(h.pid);
    const apps = left.filter((x) => /\bnode server\.mjs --host /.test(x.args));
    assert.deepEqual(left.filter((x) => !apps.includes(x)).map((x) => x.args), [], `${h.name}: processes other than the apps`);
    assert.ok(apps.length >= 1 && apps.length <= 2, `${h.name}: ${apps.length} app processes:\n${apps.map((a) => a.args).join('\n')}`);
    assert.equal(new Set(apps.map((a) => /--slot (\w)/.exec(a.args)?.[1])).size, apps.length, `${h.name}: two apps of one slot`);
  }
  assert.deepEqual(ourChildren(), start.children, 'child processes left under the test process');

  // Descriptors.
  const endHaproxy = haproxyFds();
  assert.ok(endHaproxy <= start.haproxyFds + 20, `HAProxy workers' descriptors ${start.haproxyFds} -> ${endHaproxy}`);
  for (const h of p.lab.hosts) assert.ok(fdCount(h.pid) <= start.sshdFds[h.name]! + 2, `${h.name}: sshd descriptors ${start.sshdFds[h.name]} -> ${fdCount(h.pid)}`);
  if (warm) {
    // The load generator's connections may be between reconnects at either moment.
    const fds = fdCount(process.pid);
    const handles = activeHandles();
    t.diagnostic(`this process after operation 9 -> ${OPS - 1}: ${warm.fds} -> ${fds} descriptors, ${warm.handles} -> ${handles} active handles; HAProxy workers ${start.haproxyFds} -> ${endHaproxy} descriptors`);
    assert.ok(fds <= warm.fds + 8, `this process's descriptors grew ${warm.fds} -> ${fds}`);
    assert.ok(handles <= warm.handles + 8, `this process's active handles grew ${warm.handles} -> ${handles}`);
  }

  // Disk: retention on every host, /srv no bigger than after 10 operations (same app, same number of releases).
  for (const h of p.lab.hosts) {
    const releases = (await readdir(join(h.srv, 'web', 'releases'))).filter((r) => !r.startsWith('.'));
    const keep = h.name.startsWith('beta') ? KEEP : DEV_KEEP;
    assert.ok(releases.length <= keep, `${h.name}: ${releases.length} releases kept (keepReleases ${keep}): ${releases.join(' ')}`);
  }
  if (warm) {
    const end = await srvBytes();
    for (const h of p.lab.hosts) assert.ok(end[h.name]! <= warm.srv[h.name]! * 1.5 + 64 * 1024, `${h.name}: /srv/web grew ${warm.srv[h.name]} -> ${end[h.name]} bytes`);
  }
  // The local state directory: the journal archive, the run logs and the release cache are pruned.
  const state = p.project.stateDir;
  const listing = async (dir: string) => (await readdir(join(state, dir)).catch((): string[] => [])).filter((f) => !f.startsWith('.'));
  const journals = (await listing('journal')).filter((f) => f.endsWith('.done.jsonl'));
  t.diagnostic(`state dir: ${journals.length} archived journals, ${(await listing('logs')).length} run logs, ${(await listing('cache/web')).length} cached releases; hosts keep ${betaHosts().length} x ${KEEP} beta releases`);
  assert.ok(journals.length <= JOURNAL_ARCHIVE, `${journals.length} archived journals`);
  for (const stage of ['dev', 'beta']) {
    const logs = (await listing('logs')).filter((f) => f.startsWith(`${stage}-`));
    assert.ok(logs.length >= 1 && logs.length <= RUN_LOGS_KEPT, `${logs.length} run logs of ${stage}`);
  }
  // Every promotion added a release to the cache: 51 of them went through it.
  assert.ok((await listing('cache/web')).length <= CACHE_KEPT, `${(await listing('cache/web')).length} releases in the local cache`);
});
