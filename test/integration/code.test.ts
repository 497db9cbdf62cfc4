/*
 * Code promotion (issue 4) on the lab, with a release of 2,000 files: delta transfer and hard links
 * per host, deletions, a release altered in transit, the build step, too little disk, retention and
 * purge, slots that outlive the SSH connection that started them.
 *
 * One pipeline (dev1 -> beta1, beta2 on 127.0.70.x); the tests run in order and each leaves beta
 * serving a good release. Every successful beta promotion is checked for the build's output.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { appendFile, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { appDataFile, appDataPath, startPipeline, type Pipeline } from '../lab/pipeline.js';
import { ssh } from '../lab/remote.js';
import type { LabHost } from '../lab/lab.js';
import { updateserver, type CliResult } from './cli.js';

const FILES = 2000;
const BUILD = 'build: "echo built > BUILT && sleep 0.1"';
const MARKER = '.updateserver-complete';
const MANIFEST = '.updateserver-manifest';

let p: Pipeline;
/** Bumped for every new release made in dev, so each one has new content. */
let variant = 10;

interface RunJson {
  ok: boolean;
  applied?: boolean;
  transfers?: Array<{ host: string; bytesSent: number }>;
  plan?: { services: Array<{ release: string; target: 'a' | 'b'; live: 'a' | 'b'; liveRelease?: string }> };
  error?: { message: string; hint?: string };
}

const explain = (r: CliResult) => `exit ${r.code}\nstdout:\n${r.stdout.slice(-4000)}\nstderr:\n${r.stderr.slice(-4000)}`;
const labHost = (name: string): LabHost => p.lab.hosts.find((h) => h.name === name)!;
const releasesDir = (name: string) => join(labHost(name).srv, 'web', 'releases');
const releaseDir = (name: string, release: string) => join(releasesDir(name), release);
/** Release directories on a host, complete or not. */
const releasesOn = (name: string) => (existsSync(releasesDir(name)) ? readdirSync(releasesDir(name)).filter((r) => !r.startsWith('.')).sort() : []);
const completeOn = (name: string) => releasesOn(name).filter((r) => existsSync(join(releaseDir(name, r), MARKER)));
function pointer(name: string, slot: 'a' | 'b'): string | undefined {
  try { return basename(readlinkSync(join(labHost(name).srv, 'web', slot))); } catch { return undefined; }
}
/** KB that these directories take together on disk; a file hard-linked between them counts once. */
const du = (...dirs: string[]) => Number(execFileSync('du', ['-sk', '-c', ...dirs]).toString().trim().split('\n').pop()!.split('\t')[0]);
const pct = (part: number, whole: number) => `${(100 * part / whole).toFixed(2)}%`;

async function run(...args: string[]): Promise<{ r: CliResult; json: RunJson }> {
  const r = await updateserver(p.project.dir, ...args, '--json');
  let json: RunJson = { ok: false };
  try { json = JSON.parse(r.stdout) as RunJson; } catch { /* reported by the callers' asserts */ }
  return { r, json };
}

/** A successful promotion; on beta, every host's new release was built and marked complete. */
async function promoteOk(stage: 'dev' | 'beta'): Promise<{ release: string; json: RunJson; ms: number }> {
  const { r, json } = await run(stage);
  assert.equal(r.code, 0, explain(r));
  assert.equal(json.applied, true, explain(r));
  const release = json.plan!.services[0]!.release;
  if (stage === 'beta') {
    for (const h of p.betaHosts) {
      const dir = releaseDir(h, release);
      assert.equal(readFileSync(join(dir, 'BUILT'), 'utf8'), 'built\n', `${h}: the build step ran in ${release}`);
      assert.ok(existsSync(join(dir, MARKER)), `${h}: ${release} is marked complete`);
      assert.equal(pointer(h, json.plan!.services[0]!.target), release);
    }
  }
  return { release, json, ms: r.ms };
}

/** Changes one data file in the source and promotes dev: a new release that beta does not have. */
async function newDevRelease(): Promise<string> {
  variant += 1;
  await writeFile(join(p.appDir, appDataPath(variant)), appDataFile(variant, variant));
  return (await promoteOk('dev')).release;
}

async function served(): Promise<{ release: string; slot: 'a' | 'b' }> {
  const res = await fetch(`${p.url.beta}/`, { headers: { connection: 'close' } });
  assert.equal(res.status, 200);
  const body = await res.json() as { release: string; slot: 'a' | 'b' };
  return { release: body.release, slot: body.slot };
}

/** What "live untouched" compares: what beta serves, and each host's slot pointers and live process. */
async function liveState(): Promise<unknown> {
  return {
    served: await served(),
    map: readFileSync(p.lbs.beta.mapFile, 'utf8'),
    hosts: p.betaHosts.map((h) => {
      const run = join(labHost(h).srv, 'web', 'run');
      return { h, a: pointer(h, 'a'), b: pointer(h, 'b'), pids: readdirSync(run).filter((f) => f.endsWith('.pid')).map((f) => `${f}=${readFileSync(join(run, f), 'utf8').trim()}`) };
    }),
  };
}

before(async () => {
  p = await startPipeline({ net: 70, appDataFiles: FILES, betaTopExtra: 'keepReleases: 3', betaServiceExtra: `    ${BUILD}` });
});

after(async () => { await p?.stop(); });

let firstRelease = '';

test('a 1% change moves <= 5% of the first transfer\'s bytes to each host and takes <= 10% extra disk there', async () => {
  const dev = await promoteOk('dev');
  const beta = await promoteOk('beta');
  firstRelease = beta.release;
  const files = readFileSync(join(releaseDir('dev1', dev.release), MANIFEST), 'utf8').trim().split('\n').length;
  assert.ok(files >= FILES, `the release has ${files} files`);
  const first = new Map([...dev.json.transfers!, ...beta.json.transfers!].map((t) => [t.host, t.bytesSent]));

  // 1% of the files get new content (of a new size too), nothing else changes.
  for (let k = 0; k < FILES / 100; k++) {
    const i = k * 100 + 7;
    await writeFile(join(p.appDir, appDataPath(i)), appDataFile(i, 1));
  }
  const dev2 = await promoteOk('dev');
  const beta2 = await promoteOk('beta');
  const second = new Map([...dev2.json.transfers!, ...beta2.json.transfers!].map((t) => [t.host, t.bytesSent]));
  const release = { dev1: [dev.release, dev2.release], beta1: [beta.release, beta2.release], beta2: [beta.release, beta2.release] } as Record<string, [string, string]>;

  for (const h of ['dev1', ...p.betaHosts]) {
    const a = first.get(h);
    const b = second.get(h);
    assert.ok(a !== undefined && b !== undefined, `rsync statistics for ${h}: ${JSON.stringify([...first])} ${JSON.stringify([...second])}`);
    const [r1, r2] = release[h]!;
    const one = du(releaseDir(h, r1));
    const both = du(releaseDir(h, r1), releaseDir(h, r2));
    console.log(`${h}: first transfer ${a} bytes (${files} files), after changing ${FILES / 100} files ${b} bytes = ${pct(b, a)}; ` +
      `disk: one release ${one} KB, both ${both} KB, the second takes +${both - one} KB = ${pct(both - one, one)}`);
    assert.ok(b <= 0.05 * a, `${h}: ${b} bytes sent is more than 5% of ${a}`);
    assert.ok(both - one <= 0.1 * one, `${h}: the second release takes ${both - one} KB over ${one} KB`);
  }
});

test('a file deleted at the source is gone from the new release on every host and still in the old one', async () => {
  const gone = [appDataPath(1999), appDataPath(1234), 'data/f0000.txt'];
  for (const f of gone) await rm(join(p.appDir, f));
  const dev = await promoteOk('dev');
  const beta = await promoteOk('beta');
  const pairs: Array<[string, string | undefined, string]> = [
    ['dev1', dev.json.plan!.services[0]!.liveRelease, dev.release],
    ...p.betaHosts.map((h): [string, string | undefined, string] => [h, beta.json.plan!.services[0]!.liveRelease, beta.release]),
  ];
  for (const [h, old, now] of pairs) {
    assert.ok(old !== undefined && old !== now, `${h}: an old release to compare with`);
    const manifest = readFileSync(join(releaseDir(h, now), MANIFEST), 'utf8');
    for (const f of gone) {
      assert.equal(existsSync(join(releaseDir(h, now), f)), false, `${h}: ${f} gone from ${now}`);
      assert.equal(manifest.includes(`./${f}\n`), false, `${h}: ${f} not in the manifest of ${now}`);
      assert.equal(existsSync(join(releaseDir(h, old), f)), true, `${h}: ${f} still in the old release ${old}`);
    }
  }
  console.log(`deleted ${gone.join(', ')}: gone from ${dev.release} (dev1) and ${beta.release} (${p.betaHosts.join(', ')}), still in the releases before`);
});

test('an edit of the same size with the same modification time still reaches the release and every host (content, not size and time, decides)', async () => {
  // The edit a fast operator makes within the second of the previous release: rsync's size-and-time
  // check would take the file as unchanged and hard-link the old one (--link-dest) everywhere.
  const file = join(p.appDir, appDataPath(7));
  const before = await readFile(file, 'utf8');
  const { mtime } = await stat(file);
  const edited = before.replace(/^./, (c) => (c === 'A' ? 'B' : 'A'));
  assert.equal(edited.length, before.length);
  await writeFile(file, edited);
  await utimes(file, mtime, mtime);
  const dev = await promoteOk('dev');
  const beta = await promoteOk('beta');
  for (const [h, release] of [['dev1', dev.release], ...p.betaHosts.map((b) => [b, beta.release])] as Array<[string, string]>) {
    assert.equal(readFileSync(join(releaseDir(h, release), appDataPath(7)), 'utf8'), edited, `${h}: ${release} holds the edit`);
  }
});

test('a release altered in transit aborts the promotion with exit 1; live untouched, nothing new pointed at, nothing left in the cache', async () => {
  const release = await newDevRelease();
  const before = await liveState();
  const releasesBefore = p.betaHosts.map(releasesOn);
  // This machine relayed the release into dev and still holds it, verified, in its cache: beta would
  // take that copy and never pull. Without it (another operator's machine), the pull happens.
  const cached = join(p.project.stateDir, 'cache', 'web', release);
  assert.ok(existsSync(join(cached, MANIFEST)), `${cached} holds the release relayed into dev`);
  await rm(cached, { recursive: true });
  // The copy on dev's host no longer matches its manifest: one byte appended to server.mjs.
  const file = join(releaseDir('dev1', release), 'server.mjs');
  const original = await readFile(file);
  await appendFile(file, ' ');
  try {
    const { r, json } = await run('beta');
    assert.equal(r.code, 1, explain(r));
    const message = json.error?.message ?? '';
    console.log(`beta exited ${r.code}: ${message.split('\n').slice(0, 3).join(' | ')}`);
    // The pull is the plan's first step: its failure is reported as that step's, live traffic untouched.
    assert.match(message, new RegExp(`^bring the release into the relay cache failed: dev1: release ${release} pulled from stage dev does not match its manifest`));
    assert.match(json.error?.hint ?? '', /live traffic was not touched/);
    assert.equal(existsSync(cached), false, 'the altered copy is not kept in the cache');
    assert.deepEqual(await liveState(), before, 'beta serves the same release from the same slot');
    assert.deepEqual(p.betaHosts.map(releasesOn), releasesBefore, 'no release copied to any beta host');
    for (const h of p.betaHosts) {
      assert.notEqual(pointer(h, 'a'), release);
      assert.notEqual(pointer(h, 'b'), release);
    }
  } finally {
    await writeFile(file, original);
  }
});

test('the release relayed into dev is taken from the local cache, unless the cached copy no longer matches the manifest: then it is pulled again', async () => {
  // Untouched cache: no second transfer from dev; the plan says where the release came from.
  const release = await newDevRelease();
  const first = await promoteOk('beta');
  assert.equal(first.release, release);
  assert.match(JSON.stringify(first.json.plan), /already in the local cache/);
  // A cached file changed on this machine: the copy fails its manifest, is dropped and pulled afresh.
  const next = await newDevRelease();
  const cachedFile = join(p.project.stateDir, 'cache', 'web', next, 'server.mjs');
  await appendFile(cachedFile, '// changed in the cache\n');
  const second = await promoteOk('beta');
  assert.equal(second.release, next);
  assert.doesNotMatch(JSON.stringify(second.json.plan), /already in the local cache/);
  const good = readFileSync(join(releaseDir('dev1', next), 'server.mjs'), 'utf8');
  assert.equal(readFileSync(cachedFile, 'utf8'), good, 'the cache holds dev\'s copy again');
  for (const h of p.betaHosts) assert.equal(readFileSync(join(releaseDir(h, next), 'server.mjs'), 'utf8'), good, `${h} got dev's copy`);
});

test('the build step runs in every new release on every host; a failing build stops the run naming the host, with its output', async () => {
  // Success is checked after every beta promotion (promoteOk); here the output of a failure.
  const release = await newDevRelease();
  const before = await liveState();
  const profile = join(p.project.dir, 'profiles', 'beta.yaml');
  const original = readFileSync(profile, 'utf8');
  await writeFile(profile, original.replace(BUILD, 'build: "echo boom >&2; exit 7"'));
  try {
    const { r, json } = await run('beta');
    assert.equal(r.code, 1, explain(r));
    const message = json.error?.message ?? '';
    console.log(`failing build: exit ${r.code}: ${message.split('\n').join(' | ')} (hint: ${json.error?.hint})`);
    assert.match(message, /^(copy the release to every host failed: )?beta[12]: verify [^\n]+ against its manifest, build it: echo boom >&2; exit 7, point slot [ab] at it \(exit 7\): [^\n]*\nboom$/);
    assert.deepEqual(await liveState(), before, 'live untouched');
    for (const h of p.betaHosts) {
      assert.notEqual(pointer(h, 'a'), release);
      assert.notEqual(pointer(h, 'b'), release);
      assert.equal(completeOn(h).includes(release), false, `${h}: ${release} is not marked complete`);
    }
  } finally {
    await writeFile(profile, original);
  }
  // The unfinished copy is finished by the next run, built this time.
  assert.equal((await promoteOk('beta')).release, release);
});

test('too little disk on a host: exit 1 before any copy, naming the host, the bytes needed and free; no release dir anywhere', async () => {
  const release = await newDevRelease();
  const before = await liveState();
  const releasesBefore = p.betaHosts.map(releasesOn);
  const beta2 = labHost('beta2');
  // A 2 MB filesystem over beta2's service root (its content is hidden until the umount, not moved).
  await ssh(p.lab, beta2, 'mount -t tmpfs -o size=2m tmpfs /srv/web');
  try {
    // The dry run already says so: the release is in this machine's cache, so its size is known.
    const dry = await run('beta', '--dry-run');
    assert.equal(dry.r.code, 1, explain(dry.r));
    assert.match(dry.json.error?.message ?? '', /not enough disk space; nothing was copied:\n {2}beta2: web needs/);
    const { r, json } = await run('beta');
    assert.equal(r.code, 1, explain(r));
    const message = json.error?.message ?? '';
    console.log(`too little disk: exit ${r.code}: ${message.split('\n').join(' | ')}`);
    const m = /not enough disk space; nothing was copied:\n {2}beta2: web needs [\d.]+ MiB \((\d+) bytes: release [\d.]+ [KMG]iB \+ margin\) under \/srv\/web, only [\d.]+ [KMG]iB \((\d+) bytes\) free/.exec(message);
    assert.ok(m, message);
    const [needed, free] = [Number(m[1]), Number(m[2])];
    assert.ok(free <= 2 * 1024 * 1024 && needed > free, `needed ${needed}, free ${free}`);
    assert.doesNotMatch(message, /beta1:/, 'beta1 has room');
    assert.equal((await ssh(p.lab, beta2, 'ls -A /srv/web')).trim(), '', 'nothing created on beta2');
    assert.deepEqual(p.betaHosts.map(releasesOn), releasesBefore, `no release dir (${release}) on any host`);
  } finally {
    await ssh(p.lab, beta2, 'umount /srv/web');
  }
  assert.deepEqual(p.betaHosts.map(releasesOn), releasesBefore);
  assert.deepEqual(await liveState(), before, 'live untouched');
});

test('retention: keepReleases 3 keeps exactly 3 complete releases with both slots\' on each host; purge --keep 2 keeps the two slots\'', async () => {
  for (let i = 1; i <= 5; i++) {
    await newDevRelease();
    await promoteOk('beta');
    for (const h of p.betaHosts) {
      const kept = releasesOn(h);
      const slots = [pointer(h, 'a'), pointer(h, 'b')];
      for (const s of slots) assert.ok(s !== undefined && kept.includes(s), `${h}: keeps slot release ${s} (${kept.join(', ')})`);
      assert.ok(kept.length <= 3, `${h} after promotion ${i}: ${kept.join(', ')}`);
      if (i === 5) assert.deepEqual(completeOn(h), kept, `${h}: every kept release is complete`);
      if (i === 5) assert.equal(kept.length, 3, `${h}: ${kept.join(', ')}`);
    }
  }
  assert.equal(releasesOn('beta1').includes(firstRelease), false, 'the oldest releases are gone');
  console.log(`after 5 promotions with keepReleases 3: ${p.betaHosts.map((h) => `${h} keeps ${releasesOn(h).length}`).join(', ')}`);

  const kept = p.betaHosts.map(releasesOn);
  const dry = await run('purge', 'beta', '--keep', '2', '--dry-run');
  assert.equal(dry.r.code, 0, explain(dry.r));
  assert.deepEqual(p.betaHosts.map(releasesOn), kept, '--dry-run removes nothing');
  assert.equal((dry.json as unknown as { removed: unknown[] }).removed.length, p.betaHosts.length, 'but says what it would remove on each host');

  const purge = await run('purge', 'beta', '--keep', '2');
  assert.equal(purge.r.code, 0, explain(purge.r));
  for (const h of p.betaHosts) {
    assert.deepEqual(releasesOn(h), [pointer(h, 'a')!, pointer(h, 'b')!].sort(), `${h} keeps exactly its two slots' releases`);
  }
  assert.equal((await served()).release, pointer('beta1', (await served()).slot));
});

test('purge runs under the stage lock: refused while a command holds it, queued behind a promotion with --wait, and never removes an incomplete release', async () => {
  // An incomplete release beyond keepReleases (no completion marker): a copy in progress or a dead run's remains.
  const partial = '0000-incomplete-copy';
  await ssh(p.lab, labHost('beta1'), `mkdir -p /srv/web/releases/${partial} && echo x > /srv/web/releases/${partial}/file`);

  const held = await updateserver(p.project.dir, 'lock', 'acquire', 'beta', '--message', 'maintenance window');
  assert.equal(held.code, 0, explain(held));
  const kept = p.betaHosts.map(releasesOn);
  const refused = await run('purge', 'beta', '--keep', '2');
  assert.equal(refused.r.code, 1, explain(refused.r));
  assert.match(refused.json.error?.message ?? '', /locked/i, explain(refused.r));
  assert.match(refused.r.stdout + refused.r.stderr, /maintenance window/, 'the refusal names the holder');
  assert.deepEqual(p.betaHosts.map(releasesOn), kept, 'nothing removed while the lock is held');
  const freed = await updateserver(p.project.dir, 'lock', 'release', 'beta');
  assert.equal(freed.code, 0, explain(freed));

  const purged = await run('purge', 'beta', '--keep', '2');
  assert.equal(purged.r.code, 0, explain(purged.r));
  assert.ok(releasesOn('beta1').includes(partial), 'the incomplete release is left in place');
  assert.deepEqual((purged.json as unknown as { incomplete: unknown }).incomplete, [{ service: 'web', host: 'beta1', releases: [partial] }], 'and reported');
  await ssh(p.lab, labHost('beta1'), `rm -rf /srv/web/releases/${partial}`);

  // A promotion and a purge started while it runs: the purge waits for the promotion's lock.
  const release = await newDevRelease();
  const lockFile = join(p.project.dir, '.updateserver', 'locks', 'beta.json');
  const promotion = run('beta');
  const deadline = Date.now() + 30_000;
  while (!existsSync(lockFile) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.ok(existsSync(lockFile), 'the promotion took the lock');
  const purge = await updateserver(p.project.dir, 'purge', 'beta', '--keep', '2', '--wait', '60');
  const promoted = await promotion;
  assert.equal(promoted.r.code, 0, explain(promoted.r));
  assert.equal(purge.code, 0, explain(purge));
  assert.match(purge.stderr, /waiting for the lock of beta/, `the purge queued behind the promotion\n${explain(purge)}`);
  for (const h of p.betaHosts) {
    const slots = [pointer(h, 'a')!, pointer(h, 'b')!];
    assert.ok(slots.includes(release), `${h}: the promotion's release ${release} is a slot's`);
    assert.ok(existsSync(join(releaseDir(h, release), MARKER)), `${h}: ${release} complete after the purge`);
    assert.deepEqual(completeOn(h), slots.sort(), `${h}: the purge kept exactly the two slots' complete releases`);
  }
});

/** The commands above a process, parent first. */
function ancestors(pid: number): string[] {
  const chain: string[] = [];
  for (let p = pid; p > 1;) {
    const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
    p = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (p > 0) chain.push(`${readFileSync(`/proc/${p}/comm`, 'utf8').trim()}(${p})`);
  }
  return chain;
}

test('a slot process keeps running after the SSH connection that started it is closed', async () => {
  // The last promotion's command (and so every SSH connection it opened) has exited.
  const { slot, release } = await served();
  const port = slot === 'a' ? 8001 : 8002;
  const pids: Record<string, number> = {};
  for (const h of p.betaHosts) {
    // The pid file holds "<pid> <start time>".
    const pid = Number(readFileSync(join(labHost(h).srv, 'web', 'run', `${slot}.pid`), 'utf8').split(' ')[0]);
    pids[h] = pid;
    assert.ok(existsSync(`/proc/${pid}`), `${h}: slot ${slot} pid ${pid} runs`);
    // It leads its own session: nothing ties it to the SSH session that started it.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const [, , , sid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    assert.equal(Number(sid), pid, `${h}: pid ${pid} leads its own session`);
    assert.match(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), /server\.mjs/);
    assert.deepEqual(ancestors(pid).filter((a) => a.startsWith('sshd')), [], `${h}: no sshd above pid ${pid}: ${ancestors(pid).join(' < ')}`);
  }
  const answer = async (h: string) => {
    const res = await fetch(`http://${labHost(h).address}:${port}/`, { headers: { connection: 'close' } });
    assert.equal(res.status, 200);
    return await res.json() as { slot: string; release: string; pid: number };
  };
  for (const h of p.betaHosts) assert.deepEqual(await answer(h).then((a) => [a.slot, a.release]), [slot, release]);
  await new Promise((r) => setTimeout(r, 2000));
  for (const h of p.betaHosts) {
    assert.ok(existsSync(`/proc/${pids[h]}`), `${h}: still running 2 s later`);
    assert.equal((await answer(h)).slot, slot);
  }
  console.log(`slot ${slot} pids ${JSON.stringify(pids)} (beta1's parents: ${ancestors(pids.beta1!).join(' < ')}) alive and answering 2 s after the promotion's SSH connections closed`);
});
