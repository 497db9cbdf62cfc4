/*
 * Code promotion (issue 4) on the lab: delta transfer and hard links, deletions, a release altered in
 * transit, too little disk, retention and purge, slots that outlive the SSH connection, the build step.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { appendFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { ssh } from '../lab/remote.js';
import { updateserver, type CliResult } from './cli.js';

let p: Pipeline;
const explain = (r: CliResult) => `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
const host = (name: string) => p.lab.hosts.find((h) => h.name === name)!;
const releases = (name: string) => readdirSync(join(host(name).srv, 'web', 'releases')).filter((r) => !r.startsWith('.')).sort();

async function promote(stage: 'dev' | 'beta', ...args: string[]): Promise<{ r: CliResult; json: { transfers?: Array<{ host: string; bytesSent: number }> } }> {
  const r = await updateserver(p.project.dir, stage, '--json', ...args);
  let json = {};
  try { json = JSON.parse(r.stdout) as object; } catch { /* failed runs print an error object */ }
  return { r, json };
}

before(async () => {
  p = await startPipeline({ net: 68, betaTopExtra: 'keepReleases: 3', betaServiceExtra: '    build: "echo built > BUILT"' });
  // A release of 2,000 files of 1-4 KB.
  const data = join(p.appDir, 'data');
  await mkdir(data, { recursive: true });
  for (let i = 0; i < 2000; i++) await writeFile(join(data, `f${String(i).padStart(4, '0')}.txt`), randomBytes(512 + (i % 4) * 512).toString('hex'));
});

after(async () => { await p?.stop(); });

test('a 1% change moves <= 5% of the first transfer\'s bytes and takes <= 10% extra disk; deleted files are gone', async () => {
  assert.equal((await promote('dev')).r.code, 0);
  const first = await promote('beta');
  assert.equal(first.r.code, 0, explain(first.r));
  const firstBytes = first.json.transfers!.find((t) => t.host === 'beta1')!.bytesSent;
  // 1% of the files change, one is deleted.
  for (let i = 0; i < 20; i++) await writeFile(join(p.appDir, 'data', `f${String(i * 100).padStart(4, '0')}.txt`), randomBytes(1024).toString('hex'));
  await rm(join(p.appDir, 'data', 'f1999.txt'));
  await writeFile(join(p.appDir, 'VERSION'), '1.0.1\n');
  assert.equal((await promote('dev')).r.code, 0);
  const second = await promote('beta');
  assert.equal(second.r.code, 0, explain(second.r));
  const secondBytes = second.json.transfers!.find((t) => t.host === 'beta1')!.bytesSent;
  console.log(`first transfer ${firstBytes} bytes, after a 1% change ${secondBytes} bytes (${(100 * secondBytes / firstBytes).toFixed(2)}%)`);
  assert.ok(secondBytes <= 0.05 * firstBytes, `${secondBytes} > 5% of ${firstBytes}`);
  const [r1, r2] = releases('beta1');
  const du = (...dirs: string[]) => Number(execFileSync('du', ['-sk', '-c', ...dirs]).toString().trim().split('\n').pop()!.split('\t')[0]);
  const base = join(host('beta1').srv, 'web', 'releases');
  const one = du(join(base, r1!));
  const both = du(join(base, r1!), join(base, r2!));
  console.log(`disk: one release ${one} KB, both ${both} KB (+${(100 * (both - one) / one).toFixed(1)}%)`);
  assert.ok(both - one <= 0.1 * one, `the second release took ${both - one} KB over ${one} KB`);
  assert.equal(existsSync(join(base, r2!, 'data', 'f1999.txt')), false, 'deleted at the source, gone from the new release');
  assert.equal(existsSync(join(base, r1!, 'data', 'f1999.txt')), true, 'still in the old one');
  assert.equal(readFileSync(join(base, r2!, 'BUILT'), 'utf8'), 'built\n', 'the build step ran in the new release');
});

test('a release altered in transit aborts the promotion; live untouched', async () => {
  await writeFile(join(p.appDir, 'VERSION'), '1.0.2\n');
  assert.equal((await promote('dev')).r.code, 0);
  const devRelease = releases('dev1').at(-1)!;
  // The copy on dev's host no longer matches its manifest.
  await appendFile(join(host('dev1').srv, 'web', 'releases', devRelease, 'server.mjs'), '\n// tampered\n');
  const before = releases('beta1');
  const { r } = await promote('beta');
  assert.equal(r.code, 1, explain(r));
  assert.match(r.stdout, /does not match its manifest/);
  assert.deepEqual(releases('beta1'), before, 'nothing copied to beta');
  // Repair dev (a fresh promotion there) for the next tests.
  await writeFile(join(p.appDir, 'VERSION'), '1.0.3\n');
  assert.equal((await promote('dev')).r.code, 0);
});

test('a failing build stops the promotion with the host and its output; live untouched', async () => {
  const profile = join(p.project.dir, 'profiles', 'beta.yaml');
  const original = readFileSync(profile, 'utf8');
  await writeFile(profile, original.replace('build: "echo built > BUILT"', 'build: "echo boom >&2; exit 7"'));
  try {
    const { r } = await promote('beta');
    assert.equal(r.code, 1, explain(r));
    assert.match(r.stdout, /beta[12]: build .* \(exit 7\)[\s\S]*boom/);
  } finally {
    await writeFile(profile, original);
  }
});

test('too little disk on a host: refused before any copy, naming the host, needed and free bytes', async () => {
  await ssh(p.lab, host('beta2'), 'mkdir -p /srv/small && mount -t tmpfs -o size=1m tmpfs /srv/small');
  const profile = join(p.project.dir, 'profiles', 'beta.yaml');
  const original = readFileSync(profile, 'utf8');
  // beta2's service root moves onto the 1 MB filesystem; the release is several MB.
  await writeFile(profile, original.replace('root: /srv/web', 'root: /srv/small/web'));
  try {
    const { r } = await promote('beta');
    assert.equal(r.code, 1, explain(r));
    assert.match(JSON.parse(r.stdout).error.message as string, /not enough disk space; nothing was copied:[\s\S]*beta2: web needs [\d.]+ MiB \(\d+ bytes: release .*\) under \/srv\/small\/web, only [\d.]+ [KM]iB \(\d+ bytes\) free/);
    assert.equal(existsSync(join(host('beta1').srv, 'small', 'web', 'releases')), false, 'nothing copied anywhere');
  } finally {
    await writeFile(profile, original);
    await ssh(p.lab, host('beta2'), 'umount /srv/small');
  }
});

test('retention keeps 3 releases with both slots\' releases; purge --keep 2 keeps exactly the two slots\' releases', async () => {
  for (let i = 0; i < 4; i++) {
    await writeFile(join(p.appDir, 'VERSION'), `2.0.${i}\n`);
    assert.equal((await promote('dev')).r.code, 0);
    const { r } = await promote('beta');
    assert.equal(r.code, 0, explain(r));
  }
  const status = JSON.parse((await updateserver(p.project.dir, 'status', 'beta', '--json')).stdout) as { services: Array<{ hosts: Record<string, { releases: Record<string, string> }> }> };
  for (const h of ['beta1', 'beta2']) {
    const kept = releases(h);
    assert.equal(kept.length, 3, `${h}: ${kept.join(', ')}`);
    for (const slot of ['a', 'b']) assert.ok(kept.includes(status.services[0]!.hosts[h]!.releases[slot]!), `${h} keeps slot ${slot}'s release`);
  }
  const dry = await updateserver(p.project.dir, 'purge', 'beta', '--keep', '2', '--dry-run');
  assert.equal(dry.code, 0, explain(dry));
  assert.equal(releases('beta1').length, 3, 'a dry run removes nothing');
  const purge = await updateserver(p.project.dir, 'purge', 'beta', '--keep', '2');
  assert.equal(purge.code, 0, explain(purge));
  for (const h of ['beta1', 'beta2']) {
    assert.deepEqual(releases(h), [status.services[0]!.hosts[h]!.releases.a!, status.services[0]!.hosts[h]!.releases.b!].sort());
  }
});

test('a slot process keeps running after the SSH connection that started it is closed', async () => {
  const pidFile = join(host('beta1').srv, 'web', 'run');
  const live = readdirSync(pidFile).find((f) => f.endsWith('.pid'))!;
  const pid = Number(readFileSync(join(pidFile, live), 'utf8'));
  assert.ok(existsSync(`/proc/${pid}`), 'the slot runs after updateserver (and its SSH connections) ended');
  await new Promise((r) => setTimeout(r, 2000));
  assert.ok(existsSync(`/proc/${pid}`));
  const res = await fetch(`${p.url.beta}/`, { headers: { connection: 'close' } });
  assert.equal(res.status, 200);
});
