import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import type { Service } from '../../src/config/model.js';
import { alive, loadSampleService, serviceAt, SHELLS } from './fixtures.js';
import {
  COMPLETE, finishRelease, logFile, MANIFEST, pidFile, pointSlot, prepareReleaseDirs, probeSlots, releaseDir, releasesDir, removeReleases,
  runDir, verifyManifest,
} from '../../src/commands/release.js';
import { ALIVE, startSlot } from '../../src/commands/process.js';
import { readHostSlots } from '../../src/observe/slots.js';
import { writeManifest } from '../../src/release/manifest.js';
import type { ExecOptions, ExecResult, Transport } from '../../src/transport/transport.js';

const R1 = '2026.11.22-223104-1.0.0-3fa9c2d1';
const R2 = '2026.11.23-080000-1.0.1-0badcafe';
const R0 = '2026.11.20-101010-0.9.0-00c0ffee';

const SAMPLE_START = 'node server.mjs --port {port}';

// Loaded before any test is defined: every fixture below derives from it.
const BASE = await loadSampleService(SAMPLE_START);

const makeService = (rootDir: string, overrides: Partial<Service> = {}): Service => serviceAt(BASE, rootDir, overrides);

interface Shell { code: number | null; stdout: string; stderr: string }

/** Runs a command with bash, as a host's shell would (stdin closed, output collected). */
function bash(command: string, shell = 'bash'): Shell {
  const r = spawnSync(shell, ['-c', command], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function bashAsync(command: string): Promise<Shell> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', command], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The host's side of the Transport interface, with bash on this machine. */
class BashTransport implements Transport {
  readonly host = 'h1';
  async exec(command: string, _options?: ExecOptions): Promise<ExecResult> {
    return bashAsync(command);
  }
  openUnixSocket(): Promise<Duplex> {
    throw new Error('not used');
  }
  async close(): Promise<void> {}
}


const SAMPLE = makeService(BASE.root);

describe('release layout', () => {
  test('paths under the service root', () => {
    assert.equal(SAMPLE.root, '/srv/web');
    assert.equal(releasesDir(SAMPLE), '/srv/web/releases');
    assert.equal(releaseDir(SAMPLE, R1), `/srv/web/releases/${R1}`);
    assert.equal(runDir(SAMPLE), '/srv/web/run');
    assert.equal(pidFile(SAMPLE, 'a'), '/srv/web/run/a.pid');
    assert.equal(logFile(SAMPLE, 'b'), '/srv/web/run/b.log');
    assert.equal(MANIFEST, '.updateserver-manifest');
    assert.equal(COMPLETE, '.updateserver-complete');
  });
});

describe('release commands, exactly', () => {
  test('probeSlots', () => {
    assert.equal(probeSlots(SAMPLE),
      `${ALIVE}; ` +
      "l=$(find /srv/web/a /srv/web/b -maxdepth 0 -type l -printf ' %p=%l' 2>/dev/null); " +
      "r=; case $l in *' /srv/web/a='*) r=${l#*' /srv/web/a='}; r=${r%%' /srv/web/b='*}; r=${r##*/};; esac; " +
      'if [ -f /srv/web/run/a.pid ] && { p=; t=; read -r p t </srv/web/run/a.pid; alive "$p" "$t"; }; then up=1; else up=0; fi; ' +
      'echo "a ${r:--} $up"; ' +
      "r=; case $l in *' /srv/web/b='*) r=${l#*' /srv/web/b='}; r=${r%%' /srv/web/a='*}; r=${r##*/};; esac; " +
      'if [ -f /srv/web/run/b.pid ] && { p=; t=; read -r p t </srv/web/run/b.pid; alive "$p" "$t"; }; then up=1; else up=0; fi; ' +
      'echo "b ${r:--} $up"; ' +
      'printf \'releases\'; for d in /srv/web/releases/*/; do [ -f "$d.updateserver-complete" ] && { r=${d%/}; printf \' %s\' "${r##*/}"; }; done; echo; ' +
      'printf \'partial\'; for d in /srv/web/releases/*/; do [ -d "$d" ] && [ ! -f "$d.updateserver-complete" ] && { r=${d%/}; printf \' %s\' "${r##*/}"; }; done; echo; ' +
      'd=/srv/web/releases; while [ ! -e "$d" ]; do d=$(dirname "$d"); done; set -- $(stat -f -c \'%a %S\' "$d") && echo "free $(($1 * $2))"');
  });

  test('finishRelease', () => {
    assert.equal(finishRelease(SAMPLE, R1, undefined), `: > /srv/web/releases/${R1}/.updateserver-complete`);
    assert.equal(finishRelease(SAMPLE, R1, 'npm ci --omit=dev'), `cd /srv/web/releases/${R1} && ( npm ci --omit=dev ) && : > .updateserver-complete`);
  });

  test('removeReleases', () => {
    assert.equal(removeReleases(SAMPLE, [R1, R2]), `cd /srv/web/releases && rm -rf -- ${R1} ${R2}`);
  });

  test('prepareReleaseDirs', () => {
    assert.equal(prepareReleaseDirs(SAMPLE), 'mkdir -p /srv/web/releases /srv/web/run');
  });

  test('verifyManifest', () => {
    assert.equal(verifyManifest(SAMPLE, R1), `cd /srv/web/releases/${R1} && sha256sum --quiet --strict -c .updateserver-manifest`);
  });

  test('pointSlot', () => {
    assert.equal(pointSlot(SAMPLE, 'b', R1),
      'if [ -e /srv/web/current ] && [ ! -L /srv/web/current ]; then echo \'/srv/web/current exists and is not a symlink; ' +
      'move it away, or set currentLink: false for web (updateserver keeps it pointing at the live release)\' >&2; exit 3; fi; ' +
      'if [ -e /srv/web/b ] && [ ! -L /srv/web/b ]; then echo \'/srv/web/b exists and is not a symlink; move it away ' +
      '(updateserver manages it as a pointer to a release)\' >&2; exit 3; fi; ' +
      `ln -sfn /srv/web/releases/${R1} /srv/web/b.updateserver-new && mv -Tf /srv/web/b.updateserver-new /srv/web/b`);
  });

  test('a slot dir set in the profile is used as written', () => {
    const service = makeService('/srv/web', {
      slots: Object.freeze({
        a: Object.freeze({ name: 'a', port: 8081, dir: '/opt/blue', backend: 'web_a' }),
        b: Object.freeze({ name: 'b', port: 8082, dir: '/opt/green', backend: 'web_b' }),
      }),
    });
    assert.equal(pointSlot(service, 'a', R2).endsWith(`ln -sfn /srv/web/releases/${R2} /opt/blue.updateserver-new && mv -Tf /opt/blue.updateserver-new /opt/blue`), true);
    assert.match(probeSlots(service), /find \/opt\/blue \/opt\/green -maxdepth 0 /);
  });
});

describe('release commands run by bash in a temp dir', () => {
  let root: string;
  let service: Service;
  const started: number[] = [];

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'updateserver-release-'));
    service = makeService(root);
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));
  after(() => {
    for (const pid of started) if (alive(pid)) process.kill(-pid, 'SIGKILL');
  });

  const makeRelease = (name: string) => {
    mkdirSync(join(releaseDir(service, name), 'lib'), { recursive: true });
    writeFileSync(join(releaseDir(service, name), 'VERSION'), name);
  };

  test('prepareReleaseDirs creates releases/ and run/, and may run again', () => {
    assert.equal(bash(prepareReleaseDirs(service)).code, 0);
    assert.equal(bash(prepareReleaseDirs(service)).code, 0);
    assert.ok(lstatSync(releasesDir(service)).isDirectory());
    assert.ok(lstatSync(runDir(service)).isDirectory());
  });

  test('pointSlot creates the pointer on a fresh host, to the absolute release dir', () => {
    makeRelease(R1);
    const r = bash(pointSlot(service, 'b', R1));
    assert.deepEqual(r, { code: 0, stdout: '', stderr: '' });
    assert.ok(lstatSync(service.slots.b.dir).isSymbolicLink());
    assert.equal(readlinkSync(service.slots.b.dir), releaseDir(service, R1));
    assert.equal(readFileSync(join(service.slots.b.dir, 'VERSION'), 'utf8'), R1);
    assert.equal(existsSync(service.slots.a.dir), false, 'the other slot is not touched');
  });

  test('pointSlot replaces an existing pointer and leaves no temporary link behind', () => {
    makeRelease(R1);
    makeRelease(R2);
    symlinkSync(releaseDir(service, R1), service.slots.a.dir);
    assert.equal(bash(pointSlot(service, 'b', R1)).code, 0);
    assert.equal(bash(pointSlot(service, 'b', R2)).code, 0);
    assert.equal(readlinkSync(service.slots.b.dir), releaseDir(service, R2));
    assert.equal(readlinkSync(service.slots.a.dir), releaseDir(service, R1), 'slot a still points at its release');
    assert.equal(existsSync(`${service.slots.b.dir}.updateserver-new`), false);
    assert.equal(lstatSync(`${service.slots.b.dir}`).isSymbolicLink(), true);
    // The old release is not followed into: no link was created inside it.
    assert.deepEqual(readdirSync(releaseDir(service, R1)).sort(), ['VERSION', 'lib']);
  });

  test('pointSlot replaces the pointer atomically: a concurrent reader never finds it missing', async () => {
    makeRelease(R1);
    makeRelease(R2);
    assert.equal(bash(pointSlot(service, 'b', R1)).code, 0);
    const stop = join(root, 'stop-reader');
    const link = service.slots.b.dir;
    // Bounded, so that a failing writer can never leave the reader running.
    const reader = bashAsync(`n=0; missing=0; while [ ! -e ${stop} ] && [ $SECONDS -lt 30 ]; do n=$((n+1)); [ -L ${link} ] && [ -e ${link}/VERSION ] || missing=$((missing+1)); done; echo "$n $missing"`);
    const script = join(root, 'repoint.sh');
    writeFileSync(script, Array.from({ length: 300 }, (_, i) => pointSlot(service, 'b', i % 2 === 0 ? R2 : R1)).join('\n') + '\n');
    let writer: Shell;
    try {
      writer = await bashAsync(`bash ${script}`);
    } finally {
      writeFileSync(stop, '');
    }
    const [checks, missing] = (await reader).stdout.trim().split(' ').map(Number);
    assert.equal(writer.code, 0, writer.stderr);
    assert.ok((checks ?? 0) > 0, 'the reader ran');
    assert.equal(missing, 0, `the pointer was missing in ${missing} of ${checks} reads`);
    assert.equal(readlinkSync(link), releaseDir(service, R1));
  });

  test('pointSlot refuses a real directory with exit 3 and leaves it untouched', () => {
    makeRelease(R1);
    mkdirSync(service.slots.b.dir);
    writeFileSync(join(service.slots.b.dir, 'precious'), 'keep me');
    const r = bash(pointSlot(service, 'b', R1));
    assert.equal(r.code, 3);
    assert.equal(r.stderr, `${service.slots.b.dir} exists and is not a symlink; move it away (updateserver manages it as a pointer to a release)\n`);
    assert.equal(readFileSync(join(service.slots.b.dir, 'precious'), 'utf8'), 'keep me');
    assert.ok(lstatSync(service.slots.b.dir).isDirectory());
    assert.equal(existsSync(`${service.slots.b.dir}.updateserver-new`), false);
  });

  test('pointSlot refuses a current path that is not a link (currentLink, the default) before pointing anything', () => {
    makeRelease(R1);
    mkdirSync(`${service.root}/current`);
    writeFileSync(`${service.root}/current/cron.sh`, 'keep me');
    const r = bash(pointSlot(service, 'b', R1));
    assert.equal(r.code, 3);
    assert.match(r.stderr, /current exists and is not a symlink; move it away, or set currentLink: false for web/);
    assert.equal(readFileSync(`${service.root}/current/cron.sh`, 'utf8'), 'keep me');
    assert.equal(existsSync(service.slots.b.dir), false);
    assert.equal(bash(pointSlot({ ...service, currentLink: false }, 'b', R1)).code, 0);
  });

  test('pointSlot refuses a regular file with exit 3', () => {
    makeRelease(R1);
    writeFileSync(service.slots.a.dir, 'a file');
    assert.equal(bash(pointSlot(service, 'a', R1)).code, 3);
    assert.equal(readFileSync(service.slots.a.dir, 'utf8'), 'a file');
  });

  test('pointSlot replaces a dangling pointer', () => {
    makeRelease(R2);
    symlinkSync(releaseDir(service, 'removed-release'), service.slots.a.dir);
    assert.equal(bash(pointSlot(service, 'a', R2)).code, 0);
    assert.equal(readlinkSync(service.slots.a.dir), releaseDir(service, R2));
  });

  test('probeSlots, read by readHostSlots: a fresh host has nothing in either slot, and the free space of its filesystem', async () => {
    // The root does not exist yet on a new host: the space is measured on the nearest existing parent.
    const fresh = makeService(join(root, 'not', 'yet'));
    const r = bash(probeSlots(fresh));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^a - 0\nb - 0\nreleases\npartial\nfree \d+\n$/);
    const free = Number(/free (\d+)/.exec(r.stdout)?.[1]);
    const df = Number(bash(`df -Pk ${root} | awk 'NR==2 {print $4}'`).stdout) * 1024;
    assert.ok(Math.abs(free - df) < 64 * 1024 * 1024, `free ${free}, df says ${df}`);
    const slots = await readHostSlots(new BashTransport(), fresh);
    assert.deepEqual({ ...slots, freeBytes: typeof slots.freeBytes }, {
      releases: { a: undefined, b: undefined }, running: { a: false, b: false }, complete: [], partial: [], freeBytes: 'number',
    });
    assert.ok((slots.freeBytes ?? 0) > 0);
  });

  test('probeSlots reads both pointers with one find: dirs with spaces, one named in the other\'s path, a real directory, a missing one', () => {
    makeRelease(R1);
    makeRelease(R2);
    const odd = makeService(root, { slots: { a: { ...service.slots.a, dir: join(root, 'slot a') }, b: { ...service.slots.b, dir: join(root, 'slot a b') } } });
    symlinkSync(releaseDir(service, R1), odd.slots.a.dir);
    symlinkSync(releaseDir(service, R2), odd.slots.b.dir);
    for (const shell of SHELLS) assert.match(bash(probeSlots(odd), shell).stdout, new RegExp(`^a ${R1} 0\nb ${R2} 0\n`), shell);
    rmSync(odd.slots.a.dir);
    mkdirSync(odd.slots.a.dir);
    assert.match(bash(probeSlots(odd)).stdout, new RegExp(`^a - 0\nb ${R2} 0\n`), 'a real directory is no release');
    rmSync(odd.slots.b.dir);
    assert.match(bash(probeSlots(odd)).stdout, /^a - 0\nb - 0\n/);
  });

  test('probeSlots, read by readHostSlots: releases of both slots and which one runs', async () => {
    makeRelease(R1);
    makeRelease(R2);
    assert.equal(bash(`${prepareReleaseDirs(service)} && ${pointSlot(service, 'a', R1)} && ${pointSlot(service, 'b', R2)}`).code, 0);
    const start = bash(startSlot(makeService(root, { start: 'sleep 30' }), 'b', {
      stage: 'staging', service: 'web', host: 'h1', address: '127.0.0.1', slot: 'b', port: 8082, dir: service.slots.b.dir, release: R2, config: `${root}/run/b`,
    }));
    assert.equal(start.code, 0, start.stderr);
    const pid = Number(readFileSync(pidFile(service, 'b'), 'utf8').split(' ')[0]);
    started.push(pid);
    // A pid file for slot a whose process is gone.
    writeFileSync(pidFile(service, 'a'), '999999999\n');

    // R1 and R2 are complete; R0 is still being copied (no marker).
    for (const r of [R1, R2]) assert.equal(bash(finishRelease(service, r, undefined)).code, 0);
    makeRelease(R0);
    const probe = bash(probeSlots(service));
    assert.match(probe.stdout, new RegExp(`^a ${R1} 0\\nb ${R2} 1\\nreleases ${R1} ${R2}\\npartial ${R0}\\nfree \\d+\\n$`));
    const slots = await readHostSlots(new BashTransport(), service);
    assert.deepEqual({ ...slots, freeBytes: undefined }, {
      releases: { a: R1, b: R2 }, running: { a: false, b: true }, complete: [R1, R2], partial: [R0], freeBytes: undefined,
    });
    process.kill(-pid, 'SIGKILL');
  });

  test('probeSlots: a pid file naming another process (its pid reused) is not running; a pid-only file of a running one is', () => {
    assert.equal(bash(prepareReleaseDirs(service)).code, 0);
    // This test's own process stands for the unrelated one: the probe signals nothing, it only looks.
    const self = bash(`${ALIVE}; started ${process.pid} && echo "$s"`).stdout.trim();
    assert.match(self, /^\d+$/);
    writeFileSync(pidFile(service, 'a'), `${process.pid} 1\n`);
    writeFileSync(pidFile(service, 'b'), `${process.pid}\n`);
    assert.match(bash(probeSlots(service)).stdout, /^a - 0\nb - 1\n/);
    writeFileSync(pidFile(service, 'a'), `${process.pid} ${self}\n`);
    assert.match(bash(probeSlots(service)).stdout, /^a - 1\nb - 1\n/);
    // With instances, one stale instance is enough for the slot not to run.
    writeFileSync(pidFile(service, 'a', 2), `${process.pid} 1\n`);
    assert.match(bash(probeSlots(service, 2)).stdout, /^a - 0\n/);
    writeFileSync(pidFile(service, 'a', 2), `${process.pid} ${self}\n`);
    assert.match(bash(probeSlots(service, 2)).stdout, /^a - 1\n/);
    assert.match(bash(probeSlots(service, 2), 'sh').stdout, /^a - 1\n/);
  });

  test('probeSlots reports a slot dir that is a real directory as holding no release', async () => {
    mkdirSync(service.slots.a.dir);
    assert.match(bash(probeSlots(service)).stdout, /^a - 0\nb - 0\n/);
    assert.deepEqual((await readHostSlots(new BashTransport(), service)).releases, { a: undefined, b: undefined });
  });

  test('finishRelease without a build step marks the release complete', () => {
    makeRelease(R1);
    assert.deepEqual(bash(finishRelease(service, R1, undefined)), { code: 0, stdout: '', stderr: '' });
    assert.ok(existsSync(join(releaseDir(service, R1), COMPLETE)));
  });

  test('finishRelease runs the build step in the release dir, and marks the release complete only when it succeeds', () => {
    makeRelease(R1);
    const ok = bash(finishRelease(service, R1, 'pwd -P > built-in && test -f VERSION'));
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(readFileSync(join(releaseDir(service, R1), 'built-in'), 'utf8'), `${releaseDir(service, R1)}\n`);
    assert.ok(existsSync(join(releaseDir(service, R1), COMPLETE)));

    makeRelease(R2);
    const failed = bash(finishRelease(service, R2, 'echo compiling; exit 5'));
    assert.notEqual(failed.code, 0);
    assert.equal(existsSync(join(releaseDir(service, R2), COMPLETE)), false);
  });

  test('removeReleases removes exactly the releases named', () => {
    for (const r of [R0, R1, R2]) makeRelease(r);
    symlinkSync(releaseDir(service, R2), service.slots.a.dir);
    assert.deepEqual(bash(removeReleases(service, [R0, R1])), { code: 0, stdout: '', stderr: '' });
    assert.deepEqual(readdirSync(releasesDir(service)), [R2]);
    assert.equal(readFileSync(join(service.slots.a.dir, 'VERSION'), 'utf8'), R2);
  });

  test('verifyManifest passes for an intact copy and fails for a changed or missing file', async () => {
    makeRelease(R1);
    writeFileSync(join(releaseDir(service, R1), 'lib', 'app.js'), 'console.log(1)\n');
    writeFileSync(join(releaseDir(service, R1), 'name with spaces.txt'), 'x');
    await writeManifest(releaseDir(service, R1));
    assert.deepEqual(bash(verifyManifest(service, R1)), { code: 0, stdout: '', stderr: '' });

    writeFileSync(join(releaseDir(service, R1), 'lib', 'app.js'), 'console.log(2)\n');
    const changed = bash(verifyManifest(service, R1));
    assert.notEqual(changed.code, 0);
    assert.match(changed.stdout, /\.\/lib\/app\.js: FAILED/);

    writeFileSync(join(releaseDir(service, R1), 'lib', 'app.js'), 'console.log(1)\n');
    rmSync(join(releaseDir(service, R1), 'VERSION'));
    assert.notEqual(bash(verifyManifest(service, R1)).code, 0);
  });

  test('verifyManifest fails when the release has no manifest', () => {
    makeRelease(R1);
    assert.notEqual(bash(verifyManifest(service, R1)).code, 0);
  });
});
