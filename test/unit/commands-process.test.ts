import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import { type Service, type SlotName } from '../../src/config/model.js';
import { alive, loadSampleService, serviceAt, SHELLS } from './fixtures.js';
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
function bash(command: string, shell = 'bash'): Shell {
  const t0 = Date.now();
  const r = spawnSync(shell, ['-c', command], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - t0 };
}

interface ProcStat { state: string; ppid: number; pgrp: number; session: number; comm: string; start: string }

function procStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const [state, ppid, pgrp, session] = fields;
  return {
    state: state ?? '', ppid: Number(ppid), pgrp: Number(pgrp), session: Number(session),
    comm: text.slice(text.indexOf('(') + 1, text.lastIndexOf(')')), start: fields[19] ?? '',
  };
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

  test('startSlot runs the expanded start command detached, in the slot dir, logging and recording its pid and start time', () => {
    assert.equal(startSlot(SAMPLE, 'b', ctxFor(SAMPLE, 'b')),
      `${ALIVE}; cd /srv/web/b/` + ' && { setsid bash -c \'node server.mjs --port 8082 --release 2026.11.22-223104-1.0.0-3fa9c2d1\' ' +
      '</dev/null >>/srv/web/run/b.log 2>&1 & p=$!; started "$p" || s=-; echo "$p $s" > /srv/web/run/b.pid; }');
  });

  test('ALIVE: started sets s to a process\'s start time; alive is true for that process running, false for another, a zombie or none', () => {
    assert.equal(ALIVE,
      'started() { s=; case $1 in \'\'|*[!0-9]*) return 1;; esac; read -r s 2>/dev/null </proc/$1/stat || return 1; ' +
      's=${s##*") "}; case $s in Z*) return 1;; esac; local n=1; while [ $n -lt 20 ]; do s=${s#* }; n=$((n+1)); done; s=${s%% *}; }; ' +
      'alive() { started "$1" && { [ -z "$2" ] || [ "$s" = "$2" ]; }; }');
    // POSIX sh too (dash here): a host's login shell runs these through bash, but nothing in them needs it.
    for (const shell of SHELLS) {
      const run = (command: string) => bash(`${ALIVE}; ${command}`, shell);
      // Field 22 of /proc/<pid>/stat, as the lab's process helper reads it.
      const self = procStat(process.pid)!.start;
      assert.equal(run(`started ${process.pid} && echo "$s"`).stdout, `${self}\n`, shell);
      assert.equal(run(`alive ${process.pid} ${self}`).code, 0, shell);
      assert.equal(run('alive $$').code, 0, shell);
      assert.equal(run('started $$; alive $$ "$s"').code, 0, shell);
      assert.equal(run('alive $$ 1').code, 1, `${shell}: same pid, another start time: another process`);
      assert.equal(run('alive $$ -').code, 1, `${shell}: "-" (a start that was missed) matches no process`);
      assert.equal(run('alive 999999999').code, 1, shell);
      assert.equal(run('alive 999999999 1').code, 1, shell);
      assert.equal(run('alive').code, 1, shell);
      assert.equal(run("alive ''").code, 1, shell);
      assert.equal(run('alive self').code, 1, `${shell}: only numbers are pids (/proc/self is the reader)`);
      // A zombie: the child has exited and its parent (this shell) has not reaped it yet.
      assert.equal(run('sleep 0 & z=$!; sleep 0.3; alive $z').code, 1, shell);
      assert.equal(run('sleep 0 & z=$!; sleep 0.3; started $z').code, 1, shell);
      // The callers' variables survive: p, t and i hold stop's pid, start time and count.
      assert.equal(run('p=1; t=2; i=3; r=4; up=5; alive $$ 1; alive $$; echo "$p $t $i $r $up"').stdout, '1 2 3 4 5\n', shell);
    }
  });

  test('ALIVE: a command name with spaces and parentheses does not shift the fields', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'updateserver-comm-'));
    const program = join(dir, 'x) S 1 (y) z');
    try {
      writeFileSync(program, readFileSync('/bin/sleep'), { mode: 0o755 });
      const child = spawn(program, ['30'], { stdio: 'ignore' });
      try {
        const pid = child.pid!;
        await waitFor('the program to run', () => procStat(pid)?.comm.startsWith('x) S 1') === true);
        const stat = procStat(pid)!;
        assert.equal(bash(`${ALIVE}; started ${pid} && echo "$s"`).stdout, `${stat.start}\n`);
        assert.equal(bash(`${ALIVE}; alive ${pid} ${stat.start}`).code, 0);
      } finally {
        child.kill('SIGKILL');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('stopSlot without a stop command: TERM to the group, wait stopTimeoutMs in 50 ms steps, then KILL', () => {
    assert.equal(stopSlot(SAMPLE, 'a', ctxFor(SAMPLE, 'a')),
      `${ALIVE}; if [ -f /srv/web/run/a.pid ]; then p=; t=; read -r p t </srv/web/run/a.pid; ` +
      'if alive "$p" "$t"; then kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null; ' +
      'i=0; while alive "$p" "$t" && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; ' +
      'if alive "$p" "$t"; then kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p"; echo "killed after 10000 ms" >&2; fi; ' +
      'elif started "$p"; then echo "pid file named pid $p, which is another process now; not signalled" >&2; fi; ' +
      'rm -f /srv/web/run/a.pid; fi');
  });

  test('stopSlot with the profile\'s stop command runs it, expanded, in the slot dir', () => {
    const service = makeService('/srv/web', { stop: 'curl -fsS -X POST http://127.0.0.1:{port}/quit?slot={slot}', stopTimeoutMs: 250 });
    assert.equal(stopSlot(service, 'b', ctxFor(service, 'b')),
      `${ALIVE}; if [ -f /srv/web/run/b.pid ]; then p=; t=; read -r p t </srv/web/run/b.pid; ` +
      'if alive "$p" "$t"; then ( cd /srv/web/b/ && curl -fsS -X POST http://127.0.0.1:8082/quit?slot=b ); ' +
      'i=0; while alive "$p" "$t" && [ $i -lt 5 ]; do sleep 0.05; i=$((i+1)); done; ' +
      'if alive "$p" "$t"; then kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p"; echo "killed after 250 ms" >&2; fi; ' +
      'elif started "$p"; then echo "pid file named pid $p, which is another process now; not signalled" >&2; fi; ' +
      'rm -f /srv/web/run/b.pid; fi');
  });

  test('stopSlot waits at least one step even with stopTimeoutMs 0', () => {
    assert.match(stopSlot(makeService('/srv/web', { stopTimeoutMs: 0 }), 'a', ctxFor(SAMPLE, 'a')), /\[ \$i -lt 1 \]/);
  });

  test('slotRunning', () => {
    assert.equal(slotRunning(SAMPLE, 'a'), `${ALIVE}; [ -f /srv/web/run/a.pid ] && { p=; t=; read -r p t </srv/web/run/a.pid; alive "$p" "$t"; }`);
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

  /** Starts the slot and reads its pid file: "<pid> <start time>", the time /proc gives for that pid. */
  function start(service: Service, slot: SlotName): { pid: number; shell: Shell } {
    const shell = bash(startSlot(service, slot, ctxFor(service, slot)));
    assert.equal(shell.code, 0, shell.stderr);
    const text = readFileSync(pidFile(service, slot), 'utf8');
    const [pid, when] = text.trim().split(' ').map(Number) as [number, number];
    assert.ok(Number.isInteger(pid) && pid > 1 && Number.isInteger(when), `pid file holds ${JSON.stringify(text)}`);
    started.add(pid);
    assert.equal(text, `${pid} ${procStat(pid)?.start ?? 'gone'}\n`, 'the pid file names the process and when it started');
    return { pid, shell };
  }

  /** A process that is not the slot's: a pid file naming it with another start time is stale. */
  function stranger(): { pid: number; start: string } {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    const pid = child.pid!;
    strangers.add(pid);
    const stat = procStat(pid);
    assert.ok(stat && stat.start !== '1');
    return { pid, start: stat.start };
  }
  const strangers = new Set<number>();
  afterEach(() => {
    for (const pid of strangers) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    strangers.clear();
  });

  test('startSlot detaches the app: the shell returns at once and the app runs on in its own session', async () => {
    const service = makeService(root, { start: 'sleep 30' });
    const { pid, shell } = start(service, 'b');
    assert.ok(shell.ms < 5000, `the shell returned after ${shell.ms} ms: the app must not hold its output open`);
    assert.equal(shell.stdout, '');
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
    assert.equal(readFileSync(pidFile(service, 'a'), 'utf8'), `${a.pid} ${procStat(a.pid)?.start}\n`);
  });

  test('stopSlot runs the profile\'s stop command in the slot dir, then waits for the app to exit', () => {
    const marker = join(root, 'stop-ran');
    const service = makeService(root, {
      start: 'sleep 30', stopTimeoutMs: 8000,
      // A stop command that reads the pid file takes its first word: the second is the start time.
      stop: `pwd -P > ${marker} && echo {slot} {port} >> ${marker} && read -r p t < ${root}/run/{slot}.pid && kill -TERM "$p"`,
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

  test('stopSlot signals nothing when the pid file names another process (its pid reused): it says so and removes the file', () => {
    const other = stranger();
    for (const stop of [undefined, `touch ${join(root, 'stop-ran')}`]) {
      const service = makeService(root, { stop, stopTimeoutMs: 200 });
      // The slot's process was pid N, started at tick 1; pid N now belongs to someone else.
      writeFileSync(pidFile(service, 'b'), `${other.pid} 1\n`);
      const r = bash(stopSlot(service, 'b', ctxFor(service, 'b')));
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, `pid file named pid ${other.pid}, which is another process now; not signalled\n`);
      assert.ok(alive(other.pid), 'the other process runs on, untouched');
      assert.equal(existsSync(join(root, 'stop-ran')), false, 'the profile\'s stop command did not run');
      assert.equal(existsSync(pidFile(service, 'b')), false, 'the stale pid file is gone');
    }
    process.kill(other.pid, 'SIGKILL');
  });

  test('stopSlot run by POSIX sh stops the process startSlot recorded by pid and start time', async () => {
    const service = makeService(root, { start: 'sleep 30', stopTimeoutMs: 8000 });
    const { pid } = start(service, 'b');
    const stop = bash(stopSlot(service, 'b', ctxFor(service, 'b')), 'sh');
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal(stop.stderr, '');
    await waitFor('the app to be gone', () => !alive(pid));
    assert.equal(existsSync(pidFile(service, 'b')), false);
  });

  test('stopSlot still stops a slot whose pid file an earlier version wrote (the pid alone)', async () => {
    const service = makeService(root, { start: 'sleep 30', stopTimeoutMs: 8000 });
    const { pid } = start(service, 'b');
    writeFileSync(pidFile(service, 'b'), `${pid}\n`);
    assert.equal(bash(slotRunning(service, 'b')).code, 0, 'a pid-only file of a running slot: running');
    const stop = bash(stopSlot(service, 'b', ctxFor(service, 'b')));
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal(stop.stderr, '');
    await waitFor('the app to be gone', () => !alive(pid));
    assert.equal(existsSync(pidFile(service, 'b')), false);
  });

  test('slotRunning: not running when the pid file names another process, or a process that exited before its start time was read', () => {
    const service = makeService(root);
    const other = stranger();
    writeFileSync(pidFile(service, 'a'), `${other.pid} 1\n`);
    assert.equal(bash(slotRunning(service, 'a')).code, 1);
    writeFileSync(pidFile(service, 'a'), `${other.pid} -\n`);
    assert.equal(bash(slotRunning(service, 'a')).code, 1);
    writeFileSync(pidFile(service, 'a'), `${other.pid} ${other.start}\n`);
    assert.equal(bash(slotRunning(service, 'a')).code, 0, 'the same process, by pid and start time');
    assert.equal(bash(slotRunning(service, 'a'), 'sh').code, 0);
    process.kill(other.pid, 'SIGKILL');
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
