/*
 * Reliability suite (issue 9), faults around the switch and the run itself: the HAProxy runtime socket
 * missing, the second load balancer of an HA pair failing mid-switch, a stale lock, a lock taken by hand,
 * the orchestrator killed (SIGKILL) at a step boundary. beta has two load balancers (lb, lb2); lb2's socket
 * in the profile is a fault-injecting proxy (test/lab/fault-socket.ts). Load runs through both.
 * beta's database: shared (harness.ts).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { hostname, userInfo } from 'node:os';
import { join } from 'node:path';
import { startFaultSocket, type FaultSocket } from '../lab/fault-socket.js';
import { explain, startFaultLab, updateserver, updateserverWith, withFault, type FaultLab } from './harness.js';

let fl: FaultLab;
let fault: FaultSocket;
let faultDir: string;
let n = 0;
const version = () => `1.${++n}.0`;

before(async () => {
  faultDir = await mkdtemp('/tmp/us-rel-fault-');
  const faultPath = join(faultDir, 'lb2-admin.sock');
  fl = await startFaultLab({
    net: 132, betaHosts: 1, betaLoadBalancers: 2, betaSockets: { lb2: faultPath },
    setUp: async (p) => { fault = await startFaultSocket(faultPath, p.lb2!.socket); }, // refuses nothing until told
  });
});

after(async () => {
  await fault?.close();
  await fl?.stop();
  if (faultDir) await rm(faultDir, { recursive: true, force: true });
});

test('fault: the HAProxy socket missing — exit 1 naming the load balancer and the socket, before anything changes', async (t) => {
  const socket = fl.p.lbs.beta.socket;
  await withFault(fl, t, {
    release: { version: version() },
    // HAProxy keeps listening on the renamed socket; nothing can find it at the profile's path.
    inject: () => rename(socket, `${socket}.moved`),
    expect: { exit: 1, message: new RegExp(`updateserver: .*load balancer lb: socket ${socket.replaceAll('.', '\\.')} not found`) },
    heal: () => rename(`${socket}.moved`, socket),
  });
});

test('fault: the second load balancer failing mid-switch — lb is switched back, exit 1 naming lb2 and HAProxy\'s refusal', async (t) => {
  fault.refused.length = 0;
  await withFault(fl, t, {
    release: { version: version() },
    inject: async () => fault.set({ refuse: /^set map / }),
    expect: {
      exit: 1,
      message: /updateserver: .*switching traffic on lb2 failed: load balancer lb2: HAProxy refused "set map \S+ web web_[ab]": Permission denied/,
      also: [/lb: switched back to the previous slots/],
    },
    heal: async () => fault.set({}),
  });
  assert.ok(fault.refused.some((c) => /^set map \S+ web web_[ab]$/.test(c)), `lb2 refused the switch: ${JSON.stringify(fault.refused)}`);
});

test('fault: a stale lock (its process is gone) — taken over and said so, the run promotes', async (t) => {
  // A run that died without releasing its lock: same machine, a heartbeat, a pid that no longer runs.
  const dead = spawnSync('true').pid!;
  const now = new Date().toISOString();
  await withFault(fl, t, {
    release: { version: version() },
    inject: async () => {
      await mkdir(join(fl.p.project.stateDir, 'locks'), { recursive: true });
      await writeFile(join(fl.p.project.stateDir, 'locks', 'beta.json'), JSON.stringify({
        stage: 'beta', token: 'dead-run', user: userInfo().username, machine: hostname(), pid: dead, since: now, message: 'updateserver beta', heartbeat: now, ttlMs: 60_000,
      }));
    },
    expect: { exit: 0, message: new RegExp(`took over the lock of beta from \\S+ \\(pid ${dead}\\) since .*: its process ${dead} is gone`) },
    heal: async () => { await fl.release(version()); },
  });
});

test('fault: a lock taken by hand — refused with exit 1 naming the holder and its reason; released, the next run promotes', async (t) => {
  await withFault(fl, t, {
    release: { version: version() },
    inject: async () => {
      const held = await updateserver(fl.p.project.dir, 'lock', 'acquire', 'beta', '-m', 'database maintenance');
      assert.equal(held.code, 0, explain(held));
    },
    expect: {
      exit: 1,
      message: new RegExp(`updateserver: stage beta is locked by ${userInfo().username}@\\S+ \\(pid \\d+\\) since .*: "database maintenance"`),
      also: [/updateserver lock release beta/],
    },
    heal: async () => {
      const released = await updateserver(fl.p.project.dir, 'lock', 'release', 'beta');
      assert.equal(released.code, 0, explain(released));
    },
  });
});

test('fault: the orchestrator killed (SIGKILL after the health checks) — live serves, the next run names the interrupted run and refuses; --resume promotes', async (t) => {
  await withFault(fl, t, {
    release: { version: version() },
    run: async (f) => {
      const killed = await updateserverWith(f.p.project.dir, { UPDATESERVER_KILL_AT: 'check:1' }, 'beta');
      assert.equal(killed.signal, 'SIGKILL', `the run was to kill itself after the health checks: ${explain(killed)}`);
      // The next plain run finds the journal and refuses: this is what the operator sees.
      return await updateserver(f.p.project.dir, 'beta');
    },
    expect: {
      exit: 1,
      message: /updateserver: an earlier promote of beta .* did not finish: it stopped during ".+" \(phase check, end\)/,
      also: [/took over the lock of beta from .*: its process \d+ is gone/, /--resume/, /--abandon/],
    },
    heal: async () => ['beta', '--resume'],
  });
});
