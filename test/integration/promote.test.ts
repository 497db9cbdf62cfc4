/*
 * The walking skeleton on the real lab: sshd hosts, HAProxy, rsync, the sample app, and the
 * updateserver command line exactly as a user runs it. Load goes through HAProxy during every
 * operation and every failed request is counted.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { startLoad, type LoadResult } from '../lab/load.js';
import { countConnections } from '../lab/connections.js';
import { updateserver, type CliResult } from './cli.js';

let p: Pipeline;

function explain(r: CliResult): string {
  return `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}

async function served(url: string): Promise<{ release: string; slot: string; version: string }> {
  const res = await fetch(`${url}/`);
  assert.equal(res.status, 200);
  return await res.json() as { release: string; slot: string; version: string };
}

async function newRelease(version: string): Promise<void> {
  await writeFile(join(p.appDir, 'VERSION'), `${version}\n`);
  const dev = await updateserver(p.project.dir, 'dev');
  assert.equal(dev.code, 0, explain(dev));
}

async function underLoad<T>(url: string, fn: () => Promise<T>): Promise<{ value: T; load: LoadResult }> {
  const load = startLoad(url, { connections: 8 });
  await new Promise((r) => setTimeout(r, 300));
  try {
    const value = await fn();
    await new Promise((r) => setTimeout(r, 300));
    return { value, load: await load.stop() };
  } catch (err) {
    await load.stop();
    throw err;
  }
}

function assertNoFailures(load: LoadResult): void {
  assert.ok(load.requests > 100, `load generator sent only ${load.requests} requests`);
  assert.equal(load.non2xx, 0, `non-2xx answers: ${JSON.stringify(load)}`);
  assert.equal(load.errors, 0, `socket errors: ${JSON.stringify(load)}`);
  assert.equal(load.timeouts, 0, `timeouts: ${JSON.stringify(load)}`);
}

before(async () => {
  p = await startPipeline({ net: 60, devHealthPath: '/' });
  const dev = await updateserver(p.project.dir, 'dev');
  assert.equal(dev.code, 0, explain(dev));
  // The first promotion of an empty stage: nothing served before it, so no load yet.
  const beta = await updateserver(p.project.dir, 'beta');
  assert.equal(beta.code, 0, explain(beta));
  assert.equal((await served(p.url.beta)).slot, 'b');
});

after(async () => {
  await p?.stop();
});

test('updateserver beta moves traffic to the other slot under load with 0 failed requests', async () => {
  await newRelease('1.1.0');
  const { value: r, load } = await underLoad(p.url.beta, () => updateserver(p.project.dir, 'beta'));
  assert.equal(r.code, 0, explain(r));
  assertNoFailures(load);
  const now = await served(p.url.beta);
  assert.equal(now.slot, 'a');
  assert.equal(now.version, '1.1.0');
  assert.match(r.stdout, /web now serves .*1\.1\.0.* from slot a/);
  assert.ok(Object.keys(load.byRelease).some((rel) => rel.includes('1.1.0')), 'the new release answered during the run');
  console.log(`promotion b -> a: ${load.requests} requests through HAProxy, 0 failed, ${r.ms} ms`);
});

test('a second updateserver beta moves traffic back to slot b, again with 0 failed requests', async () => {
  await newRelease('1.2.0');
  const { value: r, load } = await underLoad(p.url.beta, () => updateserver(p.project.dir, 'beta'));
  assert.equal(r.code, 0, explain(r));
  assertNoFailures(load);
  const now = await served(p.url.beta);
  assert.equal(now.slot, 'b');
  assert.equal(now.version, '1.2.0');
  console.log(`promotion a -> b: ${load.requests} requests through HAProxy, 0 failed, ${r.ms} ms`);
});

test('the status command shows the live slot and the release of every slot on every host', async () => {
  const r = await updateserver(p.project.dir, 'status', 'beta', '--json');
  assert.equal(r.code, 0, explain(r));
  const status = JSON.parse(r.stdout) as { services: Array<{ service: string; loadBalancers: Record<string, string>; recorded: string; hosts: Record<string, { releases: Record<string, string>; running: Record<string, boolean> }> }>; problems: string[] };
  const web = status.services[0]!;
  assert.equal(web.loadBalancers.lb, 'b');
  assert.equal(web.recorded, 'b');
  assert.deepEqual(status.problems, []);
  for (const h of p.betaHosts) {
    assert.match(web.hosts[h]!.releases.b!, /1\.2\.0/);
    assert.match(web.hosts[h]!.releases.a!, /1\.1\.0/, 'the previous release stays in slot a for rollback');
    assert.deepEqual(web.hosts[h]!.running, { a: false, b: true });
  }
});

test('a release whose health check fails never receives traffic: exit 1, live untouched, 0 failed requests', async () => {
  const before = await served(p.url.beta);
  await writeFile(join(p.appDir, 'health-status'), '500\n');
  await writeFile(join(p.appDir, 'VERSION'), '1.3.0-broken\n');
  try {
    const dev = await updateserver(p.project.dir, 'dev');
    assert.equal(dev.code, 0, explain(dev)); // dev checks "/", which still answers
    const { value: r, load } = await underLoad(p.url.beta, () => updateserver(p.project.dir, 'beta'));
    assert.equal(r.code, 1, explain(r));
    assertNoFailures(load);
    assert.match(r.stderr, /beta[12]: health check health \(pre, http\) on beta[12] slot [ab] \(127\.0\.60\.1[23]:800[12]\) failed: GET http:\/\/127\.0\.60\.1[23]:800[12]\/health: status 500, expected 200/);
    assert.match(r.stderr, /live traffic was not touched/);
    const now = await served(p.url.beta);
    assert.deepEqual({ slot: now.slot, release: now.release }, { slot: before.slot, release: before.release });
    assert.deepEqual(Object.keys(load.byRelease), [before.release], 'only the live release answered');
    // The broken release was stopped again on every host.
    const status = JSON.parse((await updateserver(p.project.dir, 'status', 'beta', '--json')).stdout) as { services: Array<{ hosts: Record<string, { running: Record<string, boolean> }> }> };
    for (const h of p.betaHosts) assert.deepEqual(status.services[0]!.hosts[h]!.running, { a: false, b: true });
  } finally {
    await rm(join(p.appDir, 'health-status'));
    await newRelease('1.4.0');
  }
});

test('a host key that does not match known_hosts is refused before any change, naming the host', async () => {
  const original = await readFile(p.lab.knownHosts, 'utf8');
  const keyDir = join(p.lab.dir, 'other-key');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyDir]);
  const otherKey = (await readFile(`${keyDir}.pub`, 'utf8')).split(' ').slice(0, 2).join(' ');
  const beta2 = p.lab.hosts.find((h) => h.name === 'beta2')!;
  const releasesBefore = await readdir(join(beta2.srv, 'web', 'releases'));
  const mapBefore = await readFile(p.lbs.beta.mapFile, 'utf8');
  await writeFile(p.lab.knownHosts, original.split('\n').map((l) => (l.startsWith(`[${beta2.address}]:`) ? `[${beta2.address}]:2222 ${otherKey}` : l)).join('\n'));
  try {
    const r = await updateserver(p.project.dir, 'beta');
    assert.equal(r.code, 1, explain(r));
    assert.match(r.stderr, /beta2: HOST KEY CHANGED: \[127\.0\.60\.13\]:2222 offered ssh-ed25519 SHA256:[A-Za-z0-9+/]{43}/);
    assert.deepEqual(await readdir(join(beta2.srv, 'web', 'releases')), releasesBefore, 'nothing copied to beta2');
    const beta1 = p.lab.hosts.find((h) => h.name === 'beta1')!;
    assert.equal((await readdir(join(beta1.srv, 'web', 'releases'))).some((r2) => r2.includes('1.4.0')), false, 'nothing copied to beta1 either');
    assert.equal(await readFile(p.lbs.beta.mapFile, 'utf8'), mapBefore);
  } finally {
    await writeFile(p.lab.knownHosts, original);
  }
  // An unknown host (no line at all) is refused the same way.
  await writeFile(p.lab.knownHosts, original.split('\n').filter((l) => !l.startsWith(`[${beta2.address}]:`)).join('\n'));
  try {
    const r = await updateserver(p.project.dir, 'beta');
    assert.equal(r.code, 1, explain(r));
    assert.match(r.stderr, /beta2: unknown host key: \[127\.0\.60\.13\]:2222 is not in .*known_hosts; it offered ssh-ed25519 SHA256:/);
    assert.match(r.stderr, /ssh-keyscan -p 2222 127\.0\.60\.13/);
  } finally {
    await writeFile(p.lab.knownHosts, original);
  }
  // With the right keys back, the same promotion goes through.
  const ok = await updateserver(p.project.dir, 'beta');
  assert.equal(ok.code, 0, explain(ok));
});

test('a broken profile exits 2 naming the file and the path, and opens no connection', async () => {
  // A listener stands in for the host: any connection attempt would be counted.
  const listener = await countConnections('127.0.60.99', 2222);
  const file = join(p.project.dir, 'profiles', 'broken.yaml');
  const good = (await readFile(join(p.project.dir, 'profiles', 'beta.yaml'), 'utf8'))
    .replace(/beta1: \{ address: [0-9.]+ \}/, 'beta1: { address: 127.0.60.99 }');
  try {
    await writeFile(file, good.replace('b: { port: 8002 }', 'b: { port: 70000 }'));
    const r = await updateserver(p.project.dir, 'broken');
    assert.equal(r.code, 2, explain(r));
    assert.match(r.stderr, /profiles\/broken\.yaml:\d+: services\.web\.slots\.b\.port: expected an integer 1-65535/);
    await writeFile(file, good.replace('from: dev', 'from: nowhere'));
    const r2 = await updateserver(p.project.dir, 'broken');
    assert.equal(r2.code, 2, explain(r2));
    assert.match(r2.stderr, /profiles\/broken\.yaml(:\d+)?: from: unknown stage "nowhere"/);
    const r3 = await updateserver(p.project.dir, 'no-such-stage');
    assert.equal(r3.code, 2, explain(r3));
    assert.match(r3.stderr, /profiles\/no-such-stage\.yaml: no such profile/);
    assert.equal(listener.count, 0, 'no connection was opened');
    // The same profile, once fixed, does connect (so the listener really would have counted).
    await writeFile(file, good);
    const r4 = await updateserver(p.project.dir, 'broken');
    assert.notEqual(r4.code, 0);
    assert.ok(listener.count > 0, 'the fixed profile connects to the listener');
  } finally {
    await listener.close();
    if (existsSync(file)) await rm(file);
  }
});

test('--dry-run prints every step with its command and changes nothing', async () => {
  await newRelease('1.5.0');
  const mapBefore = await readFile(p.lbs.beta.mapFile, 'utf8');
  const beta1 = p.lab.hosts.find((h) => h.name === 'beta1')!;
  const releasesBefore = await readdir(join(beta1.srv, 'web', 'releases'));
  const r = await updateserver(p.project.dir, 'beta', '--dry-run');
  assert.equal(r.code, 0, explain(r));
  const live = (await served(p.url.beta)).slot;
  const idle = live === 'a' ? 'b' : 'a';
  const idlePort = idle === 'a' ? 8001 : 8002;
  for (const needle of [// Through the run's own SSH connection (the tunnel's remote shell), to the host by its profile name.
    new RegExp(`rsync -a --checksum --delete --stats -e .*updateserver-tunnel' .*--link-dest=\\.\\./\\S+ \\S+1\\.5\\.0\\S*/ beta1:/srv/web/releases/`),
    /sha256sum --quiet --strict -c/, new RegExp(`set server web_${idle}/beta1 health up`),
    new RegExp(`set map \\S+backends\\.map web web_${idle}`), new RegExp(`GET http://127\\.0\\.60\\.12:${idlePort}/health`), /setsid bash -c/,
    new RegExp(`stop old slot web/${live}`), /Dry run: nothing was changed/]) {
    assert.match(r.stdout, needle);
  }
  assert.equal(await readFile(p.lbs.beta.mapFile, 'utf8'), mapBefore);
  assert.deepEqual(await readdir(join(beta1.srv, 'web', 'releases')), releasesBefore);
  assert.equal((await served(p.url.beta)).slot, live);
});
