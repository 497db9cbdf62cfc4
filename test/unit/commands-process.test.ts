import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import { type Service, type SlotName } from '../../src/config/model.js';
import { alive, loadSampleService, serviceAt } from './fixtures.js';
import type { SlotContext } from '../../src/commands/placeholders.js';
import { ALIVE, slotRunning, startSlot, stopSlot } from '../../src/commands/process.js';
import { logFile, pidFile, pointSlot, prepareReleaseDirs, releaseDir } from '../../src/commands/release.js';

const R1 = '2026.11.22-223104-1.0.0-3fa9c2d1';

const SAMPLE_START = 'node server.mjs --port {port} --release {release}';

// Loaded before any test is defined: every fixture below derives from it.
const BASE = await loadSampleService(SAMPLE_START);

const makeService = (rootDir: string, overrides: Partial<Service> = {}): Service => serviceAt(BASE, rootDir, overrides);

function ctxFor(service: Service, slot: SlotName, release = R1): SlotContext {
  return {
    stage: 'staging', service: service.name, host: 'h1', address: '127.0.0.1', slot,
    port: service.slots[slot].port, dir: service.slots[slot].dir, release, config: `${service.root}/run/${slot}`,
  };
}

interface Shell { code: number | null; stdout: string; stderr: string; ms: number }

/** Runs a command with bash as a host's shell would: stdin closed, output collected, and bounded in time. */
function bash(command: string): Shell {
  const t0 = Date.now();
  const r = spawnSync('bash', ['-c', command], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - t0 };
}

interface ProcStat { state: string; ppid: number; pgrp: number; session: number; comm: string }

function procStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const [state, ppid, pgrp, session] = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: state ?? '', ppid: Number(ppid), pgrp: Number(pgrp), session: Number(session), comm: text.slice(text.indexOf('(') + 1, text.lastIndexOf(')')) };
}

/** Runs code: a zombie waiting for its parent to reap it runs nothing, so it counts as gone. */

async function waitFor(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const SAMPLE = makeService(BASE.root);

describe('process commands, exactly', () => {
  test('the sample service, as the loader resolves it', () => {
    assert.equal(SAMPLE.root, '/srv/web');
    assert.deepEqual(SAMPLE.slots, {
      a: { name: 'a', port: 8081, dir: '/srv/web/a', backend: 'web_a' },
      b: { name: 'b', port: 8082, dir: '/srv/web/b', backend: 'web_b' },
    });
    assert.equal(SAMPLE.stop, undefined);
    assert.equal(SAMPLE.stopTimeoutMs, 10_000);
  });

  test('startSlot runs the expanded start command detached, in the slot dir, logging and recording its pid', () => {
    assert.equal(startSlot(SAMPLE, 'b', ctxFor(SAMPLE, 'b')),
      'cd /srv/web/b/ && { setsid bash -c \'node server.mjs --port 8082 --release 2026.11.22-223104-1.0.0-3fa9c2d1\' ' +
      '</dev/null >>/srv/web/run/b.log 2>&1 & echo $! > /srv/web/run/b.pid; }');
  });

  test('ALIVE: a shell function true for a running process, false for a zombie or no process', () => {
    assert.equal(ALIVE, 'alive() { s=$(sed -n \'s/^.*) \\(.\\).*/\\1/p\' /proc/$1/stat 2>/dev/null); [ -n "$s" ] && [ "$s" != Z ]; }');
    assert.equal(bash(`${ALIVE}; alive $$`).code, 0);
    assert.equal(bash(`${ALIVE}; alive 999999999`).code, 1);
    assert.equal(bash(`${ALIVE}; alive ''`).code, 1);
    // A zombie: the child has exited and its parent (this bash) has not reaped it yet.
    assert.equal(bash(`${ALIVE}; sleep 0 & z=$!; sleep 0.3; alive $z`).code, 1);
  });

  test('stopSlot without a stop command: TERM to the group, wait stopTimeoutMs in 50 ms steps, then KILL', () => {
    assert.equal(stopSlot(SAMPLE, 'a', ctxFor(SAMPLE, 'a')),
      `${ALIVE}; if [ -f /srv/web/run/a.pid ]; then p=$(cat /srv/web/run/a.pid); ` +
      'if alive "$p"; then kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null; ' +
      'i=0; while alive "$p" && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; ' +
      'if alive "$p"; then kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p"; echo "killed after 10000 ms" >&2; fi; fi; ' +
      'rm -f /srv/web/run/a.pid; fi');
  });

  test('stopSlot with the profile\'s stop command runs it, expanded, in the slot dir', () => {
    const service = makeService('/srv/web', { stop: 'curl -fsS -X POST http://127.0.0.1:{port}/quit?slot={slot}', stopTimeoutMs: 250 });
    assert.equal(stopSlot(service, 'b', ctxFor(service, 'b')),
      `${ALIVE}; if [ -f /srv/web/run/b.pid ]; then p=$(cat /srv/web/run/b.pid); ` +
      'if alive "$p"; then ( cd /srv/web/b/ && curl -fsS -X POST http://127.0.0.1:8082/quit?slot=b ); ' +
      'i=0; while alive "$p" && [ $i -lt 5 ]; do sleep 0.05; i=$((i+1)); done; ' +
      'if alive "$p"; then kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p"; echo "killed after 250 ms" >&2; fi; fi; ' +
      'rm -f /srv/web/run/b.pid; fi');
  });

  test('stopSlot waits at least one step even with stopTimeoutMs 0', () => {
    assert.match(stopSlot(makeService('/srv/web', { stopTimeoutMs: 0 }), 'a', ctxFor(SAMPLE, 'a')), /\[ \$i -lt 1 \]/);
  });

  test('slotRunning', () => {
    assert.equal(slotRunning(SAMPLE, 'a'), `${ALIVE}; [ -f /srv/web/run/a.pid ] && alive "$(cat /srv/web/run/a.pid)"`);
  });
});

describe('start and stop run by bash on this machine', () => {
  let root: string;
  const started = new Set<number>();

  /** A temp root with releases/R1, run/, and slot b pointing at R1, the way a plan's copy phase leaves it. */
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'updateserver-process-'));
    const service = makeService(root);
    mkdirSync(releaseDir(service, R1), { recursive: true });
    const r = bash(`${prepareReleaseDirs(service)} && ${pointSlot(service, 'b', R1)} && ${pointSlot(service, 'a', R1)}`);
    assert.equal(r.code, 0, r.stderr);
  });

  afterEach(() => {
    // Every process these tests started, whatever happened: each leads its own group (setsid).
    for (const pid of started) {
      if (alive(pid) && procStat(pid)?.session === pid) process.kill(-pid, 'SIGKILL');
    }
    started.clear();
    rmSync(root, { recursive: true, force: true });
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  function start(service: Service, slot: SlotName): { pid: number; shell: Shell } {
    const shell = bash(startSlot(service, slot, ctxFor(service, slot)));
    assert.equal(shell.code, 0, shell.stderr);
    const pid = Number(readFileSync(pidFile(service, slot), 'utf8'));
    assert.ok(Number.isInteger(pid) && pid > 1, `pid file holds ${JSON.stringify(readFileSync(pidFile(service, slot), 'utf8'))}`);
    started.add(pid);
    return { pid, shell };
  }

  test('startSlot detaches the app: the shell returns at once and the app runs on in its own session', async () => {
    const service = makeService(root, { start: 'sleep 30' });
    const { pid, shell } = start(service, 'b');
    assert.ok(shell.ms < 5000, `the shell returned after ${shell.ms} ms: the app must not hold its output open`);
    assert.equal(shell.stdout, '');
    assert.equal(readFileSync(pidFile(service, 'b'), 'utf8'), `${pid}\n`);
    // The shell has exited; the recorded pid is the app itself, not a wrapper, and it survives the shell.
    await new Promise((r) => setTimeout(r, 200));
    const stat = procStat(pid);
    assert.ok(stat && alive(pid), 'the app is running after the shell exited');
    assert.equal(stat.comm, 'sleep');
    assert.equal(stat.session, pid, 'the app leads its own session');
    assert.equal(stat.pgrp, pid, 'the app leads its own process group');
    assert.equal(readlinkSync(`/proc/${pid}/cwd`), releaseDir(service, R1), 'the app runs in the release its slot points at');
    assert.equal(bash(slotRunning(service, 'b')).code, 0);
    assert.equal(bash(slotRunning(service, 'a')).code, 1);
  });

  test('startSlot sends the app\'s output to the slot\'s log, with placeholders expanded', async () => {
    const service = makeService(root, { start: 'bash -c \'echo "started {service}/{slot} on {port} from $PWD"; exec sleep 30\'' });
    start(service, 'b');
    await waitFor('the log line', () => existsSync(logFile(service, 'b')) && readFileSync(logFile(service, 'b'), 'utf8').includes('\n'));
    assert.equal(readFileSync(logFile(service, 'b'), 'utf8'), `started web/b on 8082 from ${service.slots.b.dir}\n`);
  });

  test('startSlot runs a start command that sets environment variables first (PORT={port} app)', async () => {
    // A common way to hand an app its port; bash's `exec NAME=value cmd` would look for a program "NAME=value".
    const service = makeService(root, { start: 'APP_PORT={port} bash -c \'echo "port $APP_PORT"; exec sleep 30\'' });
    const { pid } = start(service, 'b');
    await waitFor('the log line', () => existsSync(logFile(service, 'b')) && readFileSync(logFile(service, 'b'), 'utf8').includes('\n'));
    assert.equal(readFileSync(logFile(service, 'b'), 'utf8'), 'port 8082\n');
    await waitFor('the app to run', () => procStat(pid) !== undefined);
    assert.equal(bash(slotRunning(service, 'b')).code, 0, 'the slot runs');
  });

  test('stopSlot stops a running app with TERM, without waiting for init to reap it, and removes the pid file', async () => {
    const service = makeService(root, { start: 'sleep 30' });
    const { pid } = start(service, 'b');
    const stop = bash(stopSlot(service, 'b', ctxFor(service, 'b')));
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal(stop.stderr, '', 'TERM was enough: no KILL');
    // The TERMed app is a zombie until pid 1 reaps it; that counts as stopped.
    assert.ok(stop.ms < 3000, `stop took ${stop.ms} ms`);
    assert.equal(alive(pid), false);
    assert.equal(existsSync(pidFile(service, 'b')), false);
    assert.equal(bash(slotRunning(service, 'b')).code, 1);
  });

  test('stopSlot sends KILL after stopTimeoutMs to an app that ignores TERM', async () => {
    const service = makeService(root, {
      start: 'bash -c \'trap "" TERM; echo ready; while :; do sleep 0.1; done\'', stopTimeoutMs: 500,
    });
    const { pid } = start(service, 'b');
    await waitFor('the app to ignore TERM', () => existsSync(logFile(service, 'b')) && readFileSync(logFile(service, 'b'), 'utf8').includes('ready'));
    const stop = bash(stopSlot(service, 'b', ctxFor(service, 'b')));
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal(stop.stderr, 'killed after 500 ms\n');
    assert.ok(stop.ms >= 500, `KILL came after ${stop.ms} ms, before stopTimeoutMs`);
    await waitFor('the killed app to be gone', () => !alive(pid));
    assert.equal(existsSync(pidFile(service, 'b')), false);
  });

  test('stopSlot stops the app\'s whole process group, children included', async () => {
    const childPidFile = join(root, 'child.pid');
    const service = makeService(root, { start: `bash -c 'sleep 30 & echo $! > ${childPidFile}; wait'`, stopTimeoutMs: 8000 });
    const { pid } = start(service, 'b');
    await waitFor('the child pid', () => existsSync(childPidFile) && readFileSync(childPidFile, 'utf8').endsWith('\n'));
    const child = Number(readFileSync(childPidFile, 'utf8'));
    assert.ok(alive(child));
    assert.equal(procStat(child)?.pgrp, pid);
    const stop = bash(stopSlot(service, 'b', ctxFor(service, 'b')));
    assert.equal(stop.code, 0, stop.stderr);
    await waitFor('the app and its child to be gone', () => !alive(pid) && !alive(child));
  });

  test('stopSlot stops only its own slot', () => {
    const service = makeService(root, { start: 'sleep 30', stopTimeoutMs: 8000 });
    const a = start(service, 'a');
    const b = start(service, 'b');
    assert.equal(bash(stopSlot(service, 'b', ctxFor(service, 'b'))).code, 0);
    assert.equal(alive(b.pid), false);
    assert.equal(alive(a.pid), true, 'slot a still runs');
    assert.equal(readFileSync(pidFile(service, 'a'), 'utf8'), `${a.pid}\n`);
  });

  test('stopSlot runs the profile\'s stop command in the slot dir, then waits for the app to exit', () => {
    const marker = join(root, 'stop-ran');
    const service = makeService(root, {
      start: 'sleep 30', stopTimeoutMs: 8000,
      stop: `pwd -P > ${marker} && echo {slot} {port} >> ${marker} && kill -TERM "$(cat ${root}/run/{slot}.pid)"`,
    });
    const { pid } = start(service, 'b');
    const stop = bash(stopSlot(service, 'b', ctxFor(service, 'b')));
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal(stop.stderr, '');
    assert.equal(readFileSync(marker, 'utf8'), `${releaseDir(service, R1)}\nb 8082\n`);
    assert.equal(alive(pid), false);
    assert.equal(existsSync(pidFile(service, 'b')), false);
  });

  test('stopSlot succeeds when nothing runs: no pid file', () => {
    const service = makeService(root);
    assert.deepEqual(bash(stopSlot(service, 'b', ctxFor(service, 'b'))).code, 0);
    assert.equal(bash(stopSlot(service, 'b', ctxFor(service, 'b'))).stderr, '');
  });

  test('stopSlot succeeds when nothing runs: a stale pid file is removed', () => {
    const service = makeService(root);
    writeFileSync(pidFile(service, 'a'), '999999999\n');
    const stop = bash(stopSlot(service, 'a', ctxFor(service, 'a')));
    assert.equal(stop.code, 0);
    assert.equal(stop.stderr, '');
    assert.equal(existsSync(pidFile(service, 'a')), false);
  });

  test('stop then start again: the slot can be restarted', () => {
    const service = makeService(root, { start: 'sleep 30', stopTimeoutMs: 8000 });
    const first = start(service, 'b');
    assert.equal(bash(stopSlot(service, 'b', ctxFor(service, 'b'))).code, 0);
    const second = start(service, 'b');
    assert.notEqual(first.pid, second.pid);
    assert.equal(alive(second.pid), true);
    assert.equal(bash(slotRunning(service, 'b')).code, 0);
  });
});
