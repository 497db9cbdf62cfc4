/*
 * Reliability suite (issue 9), faults of the target hosts: a host unreachable before the copy (its sshd
 * is gone: connections refused), a host that becomes unreachable during the copy (its sshd and every
 * session killed while rsync runs), an SSH connection dropped mid-transfer (only the connection's sshd
 * process killed; the host still accepts new ones), and the target's disk full (a real ENOSPC). beta has
 * two hosts; every fault hits beta2. beta's database: shared (harness.ts).
 *
 * The copy faults need a release whose transfer takes a while: it carries a large file of new random
 * content (48 MB), and the fault is injected as soon as the journal shows the rsync to beta2 begun.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LabHost } from '../lab/lab.js';
import { ssh } from '../lab/remote.js';
import { dropSshConnections, stopSshd, type StoppedSshd } from '../lab/sshd-faults.js';
import { sleep, startFaultLab, updateserver, withFault, type CliResult, type FaultLab } from './harness.js';

let fl: FaultLab;
let n = 0;
const version = () => `1.${++n}.0`;
const beta2 = (): LabHost => fl.p.lab.hosts.find((h) => h.name === 'beta2')!;
/** A large file of fresh content: rsync finds nothing to reuse, the transfer takes a while. */
const bigFile = () => ({ 'data/big.txt': randomBytes(36 * 1024 * 1024).toString('base64') });

before(async () => {
  fl = await startFaultLab({ net: 130, betaHosts: 2 });
});

after(async () => { await fl?.stop(); });

interface JournalStep { type: string; phase?: string; target?: string; title?: string; state?: string }

/** The steps the current run of beta has journalled so far. */
function journalSteps(): JournalStep[] {
  const file = join(fl.p.project.stateDir, 'journal', 'beta.jsonl');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).flatMap((l) => { try { return [JSON.parse(l) as JournalStep]; } catch { return []; } });
}
const isRsyncTo = (host: string) => (s: JournalStep) => s.type === 'step' && s.phase === 'copy' && s.target === host && /^copy web release /.test(s.title ?? '');

/**
 * `updateserver beta`, with fault() called as soon as the journal shows the rsync of the release to
 * beta2 begun; asserts that the fault hit while that rsync was still running.
 */
async function runWithFaultDuringCopy(fault: () => Promise<unknown>): Promise<CliResult> {
  const run = updateserver(fl.p.project.dir, 'beta');
  let finished = false;
  void run.then(() => { finished = true; });
  const deadline = Date.now() + 60_000;
  while (!journalSteps().some((s) => isRsyncTo('beta2')(s) && s.state === 'begin')) {
    assert.ok(!finished && Date.now() < deadline, 'the run reached the copy to beta2');
    await sleep(10);
  }
  await fault();
  const ended = journalSteps().some((s) => isRsyncTo('beta2')(s) && s.state === 'end');
  assert.equal(ended, false, 'the fault hit while the rsync to beta2 was still running');
  return await run;
}

test('fault: a host unreachable before the copy — exit 1 naming the host and its address, nothing changed; back up, the next run promotes', async (t) => {
  let stopped: StoppedSshd | undefined;
  await withFault(fl, t, {
    release: { version: version() },
    inject: async () => { stopped = await stopSshd(fl.p.lab, beta2()); },
    expect: { exit: 1, message: /updateserver: .*beta2: cannot connect to 127\.0\.130\.13:2222/ },
    heal: async () => { await stopped!.restart(); },
  });
});

test('fault: the target disk full, seen by the free-space check — exit 1 before any copy, naming the host, the bytes needed and free', async (t) => {
  // A 2 MB filesystem over beta2's whole service root (the running slots keep their open files).
  const host = beta2();
  await withFault(fl, t, {
    release: { version: version(), files: { 'data/some.txt': randomBytes(3 * 1024 * 1024).toString('base64') } },
    inject: async () => { await ssh(fl.p.lab, host, 'mount -t tmpfs -o size=2m tmpfs /srv/web'); },
    expect: { exit: 1, message: /updateserver: not enough disk space; nothing was copied:\n {2}beta2: web needs [\d.]+ MiB \(\d+ bytes: release [\d.]+ [KMG]iB \+ margin\) under \/srv\/web, only [\d.]+ [KMG]iB \(\d+ bytes\) free/ },
    heal: async () => { await ssh(fl.p.lab, host, 'umount /srv/web'); },
  });
});

/** beta2's releases directory on a tmpfs of its own, holding the releases it had (copied: the originals are back after the umount). */
const mountReleases = (size: string) => ssh(fl.p.lab, beta2(), `set -e; cp -a /srv/web/releases /srv/releases-copy; mount -t tmpfs -o size=${size} tmpfs /srv/web/releases; cp -a /srv/releases-copy/. /srv/web/releases/; rm -rf /srv/releases-copy; df -k /srv/web/releases | tail -1`);

test('fault: the target disk full where releases are written (a small filesystem of their own) — refused by the free-space check before any copy, naming the host', async (t) => {
  await withFault(fl, t, {
    release: { version: version(), files: bigFile() },
    inject: async () => { t.diagnostic(`beta2 releases fs: ${(await mountReleases('24m')).trim()}`); },
    expect: { exit: 1, message: /updateserver: not enough disk space; nothing was copied:\n {2}beta2: web needs [\d.]+ MiB \(\d+ bytes: release [\d.]+ MiB \+ margin\) under \/srv\/web, only [\d.]+ [KM]iB \(\d+ bytes\) free/ },
    heal: async () => { await ssh(fl.p.lab, beta2(), 'umount /srv/web/releases'); },
  });
});

test('fault: the target disk filled after the free-space check (ENOSPC in the middle of rsync) — exit 1 naming the host and "No space left on device"', async (t) => {
  // Room enough for the check (release + margin); filled up as soon as the copy to beta2 has begun.
  await withFault(fl, t, {
    release: { version: version(), files: bigFile() },
    inject: async () => { t.diagnostic(`beta2 releases fs: ${(await mountReleases('200m')).trim()}`); },
    run: () => runWithFaultDuringCopy(() => ssh(fl.p.lab, beta2(), 'dd if=/dev/zero of=/srv/web/releases/.fill bs=1M 2>/dev/null; df -k /srv/web/releases | tail -1')),
    expect: { exit: 1, message: /updateserver: copy the release to every host failed: beta2: copy web release [^]*No space left on device/ },
    heal: async () => { await ssh(fl.p.lab, beta2(), 'umount /srv/web/releases'); },
  });
});

test('fault: a host unreachable during the copy (sshd and its sessions killed mid-rsync) — exit 1 naming the host; back up, the next run finishes the copy', async (t) => {
  let stopped: StoppedSshd | undefined;
  await withFault(fl, t, {
    release: { version: version(), files: bigFile() },
    run: () => runWithFaultDuringCopy(async () => { stopped = await stopSshd(fl.p.lab, beta2()); }),
    expect: { exit: 1, message: /updateserver: copy the release to every host failed: beta2: copy web release [^]*beta2: the SSH connection to 127\.0\.130\.13:2222 was lost/ },
    heal: async () => { await stopped!.restart(); },
  });
});

test('fault: the SSH connection dropped mid-transfer (the host still accepts new ones) — exit 1 naming the host; the next run finishes the copy', async (t) => {
  let dropped = 0;
  await withFault(fl, t, {
    release: { version: version(), files: bigFile() },
    run: () => runWithFaultDuringCopy(async () => { dropped = await dropSshConnections(beta2()); }),
    expect: { exit: 1, message: /updateserver: copy the release to every host failed: beta2: copy web release [^]*beta2: the SSH connection to 127\.0\.130\.13:2222 was lost/ },
    heal: async () => {},
  });
  assert.ok(dropped >= 1, `dropped ${dropped} connection(s)`);
});
