/*
 * The read phase, proven on the lab with PostgreSQL data:
 *  - `updateserver beta --dry-run --json` prints the very plan a real run then journals, step for step,
 *    and changes nothing: files on every host, every database, HAProxy's maps and server states, and
 *    the local state directory are identical before and after it;
 *  - a runtime map changed behind the tool's back stops promotions and status, which show both values;
 *  - status shows per service and load balancer each backend's sessions and servers, and each slot's data version;
 *  - the pipeline guard: what passed dev (code hash, migration checksums, data source) is recorded and
 *    shown by history --json, and beta refuses a dev release without that record or whose code changed.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { get } from 'node:http';
import pg from 'pg';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { ssh } from '../lab/remote.js';
import { updateserver, type CliResult, explain } from './cli.js';
import { loadProfile } from '../../src/config/load.js';
import { Haproxy } from '../../src/lb/haproxy.js';
import type { Plan } from '../../src/plan/plan.js';
import type { JournalEntry } from '../../src/state/journal.js';
import type { HistoryEntry, StageState } from '../../src/state/store.js';
import type { StageStatus } from '../../src/status/status.js';
import { sql } from '../lab/pg.js';
import { TUNNEL_RSH } from '../../src/commands/relay.js';
import { slotDatabases } from '../lab/databases.js';

const NET = 80;
const dbs = slotDatabases('postgres', 'ustest_orc');
const { names, dropAll } = dbs;
const dbYaml = (stage: string) => dbs.yaml(stage);

let p: Pipeline;
const run = promisify(execFile);


async function balancer(stage: 'dev' | 'beta'): Promise<{ haproxy: Haproxy; mapFile: string }> {
  const lb = (await loadProfile(p.project, stage)).loadBalancers.lb!;
  return { haproxy: Haproxy.forLoadBalancer(lb), mapFile: lb.mapFile };
}

/** Everything a dry run could change, as comparable text. */
async function snapshot(): Promise<Record<string, unknown>> {
  const files: Record<string, string> = {};
  for (const h of p.lab.hosts) {
    files[h.name] = await ssh(p.lab, h, "find /srv -printf '%p %y %s %T@ %l\\n' | LC_ALL=C sort; find /srv -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum");
  }
  const databases: Record<string, string> = {};
  for (const { datname } of await sql<{ datname: string }>('postgres', "SELECT datname FROM pg_database WHERE datname LIKE 'ustest\\_orc\\_%' ORDER BY datname")) {
    const { stdout } = await run('pg_dump', ['-h', '127.0.0.1', '-U', 'postgres', '--no-owner', datname], { maxBuffer: 64 << 20 });
    // pg_dump 15.14+ wraps its output in \restrict <random key> ... \unrestrict <key> lines: not content.
    databases[datname] = createHash('sha256').update(stdout.replace(/^\\(un)?restrict .*$/gm, '')).digest('hex');
  }
  const haproxy: Record<string, unknown> = {};
  for (const stage of ['dev', 'beta'] as const) {
    const { haproxy: h, mapFile } = await balancer(stage);
    haproxy[stage] = {
      map: await h.showMap(mapFile),
      mapFile: await readFile(mapFile, 'utf8'),
      servers: (await h.showStat()).filter((r) => r.type === 'server' || r.type === 'backend').map((r) => `${r.proxy}/${r.server} ${r.status} w${r.weight} ${r.raw.admin ?? ''}`),
    };
  }
  // The local state directory, the release cache (cache/) included: every entry's name, size and time, and every file's bytes.
  const local = (await run('bash', ['-c', `cd ${p.project.stateDir} && find . -path ./logs -prune -o -printf '%p %y %s %T@ %l\\n' | LC_ALL=C sort; find . -path ./logs -prune -o -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum`], { maxBuffer: 64 << 20 })).stdout;
  return { files, databases, haproxy, local };
}

/**
 * A snapshot once the lab is at rest: HAProxy's checks mark a just-stopped slot down within a few
 * seconds of the run that stopped it, which is no change of the dry run's.
 */
async function settledSnapshot(): Promise<Record<string, unknown>> {
  let previous = await snapshot();
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    const next = await snapshot();
    if (JSON.stringify(next) === JSON.stringify(previous)) return next;
    previous = next;
  }
  throw new Error('the lab did not come to rest within 20 s');
}

function served(): Promise<{ release: string; slot: string; version: string }> {
  return new Promise((resolve, reject) => {
    get(`${p.url.beta}/`, { agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve(JSON.parse(body) as { release: string; slot: string; version: string }));
    }).on('error', reject);
  });
}

async function migration(version: number, text: string): Promise<void> {
  await writeFile(join(p.project.dir, 'migrations', 'web', `V000${version}__m${version}.sql`), text);
}

before(async () => {
  await dropAll();
  p = await startPipeline({
    net: NET, devServiceExtra: dbYaml('dev'), betaServiceExtra: dbYaml('beta'),
    // Hooks (issue 19) are plan actions: the dry run lists them and runs none (the hosts' /srv is compared).
    betaTopExtra: "hooks:\n  after-copy: [{ run: 'echo $UPDATESERVER_RELEASE > /srv/hook-after-copy', on: hosts }]\n  before-switch: [{ run: 'true', on: local }]",
  });
  await mkdir(join(p.project.dir, 'migrations', 'web'), { recursive: true });
  await migration(1, "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);\nINSERT INTO items (name) VALUES ('one'), ('two');\n");
  for (const stage of ['dev', 'beta']) {
    const r = await updateserver(p.project.dir, stage);
    assert.equal(r.code, 0, explain(r));
  }
  // dev moves on (code and a migration); a later migration is still pending for beta's copy of dev's data.
  await migration(2, 'ALTER TABLE items ADD COLUMN note text;\n');
  await writeFile(join(p.appDir, 'VERSION'), '2.0.0\n');
  const dev = await updateserver(p.project.dir, 'dev');
  assert.equal(dev.code, 0, explain(dev));
  await migration(3, 'CREATE INDEX items_name ON items (name);\n');
});

after(async () => {
  await p?.stop();
  await dropAll();
});

/** The dry run of `stage` leaves every byte where it was: hosts, databases, HAProxy, the state directory and release cache. */
async function dryRunChangesNothing(stage: 'dev' | 'beta'): Promise<Plan> {
  const before = await settledSnapshot();
  const dry = await updateserver(p.project.dir, stage, '--dry-run', '--json');
  assert.equal(dry.code, 0, explain(dry));
  const after = await snapshot();
  for (const part of Object.keys(before)) assert.deepEqual(after[part], before[part], `the dry run of ${stage} changed ${part}`);
  return (JSON.parse(dry.stdout) as { plan: Plan }).plan;
}

test('a dry run of the first stage names the new release without writing it into the release cache', async () => {
  const cache = join(p.project.stateDir, 'cache', 'web');
  const cachedBefore = (await readdir(cache)).sort();
  const version = await readFile(join(p.appDir, 'VERSION'), 'utf8');
  await writeFile(join(p.appDir, 'VERSION'), '2.1.0-dry\n');
  try {
    const plan = await dryRunChangesNothing('dev');
    const release = plan.services[0]!.release;
    assert.match(release, /-2\.1\.0-dry-[0-9a-f]{8}$/, 'the plan names the release the real run would make');
    assert.deepEqual((await readdir(cache)).sort(), cachedBefore);
    assert.ok(!cachedBefore.includes(release));
  } finally {
    await writeFile(join(p.appDir, 'VERSION'), version);
  }
});

test('a dry run of a later stage whose release is not in the local cache pulls nothing: the plan shows the pull', async () => {
  const cache = join(p.project.stateDir, 'cache', 'web');
  const aside = join(p.project.dir, 'cache-aside');
  const cached = (await readdir(cache)).sort();
  // Every release of the cache set aside (outside the state directory): the dry run finds none.
  await mkdir(aside, { recursive: true });
  for (const r of cached) await rename(join(cache, r), join(aside, r));
  try {
    const plan = await dryRunChangesNothing('beta');
    assert.deepEqual(await readdir(cache), []);
    const fetch = plan.services[0]!.fetch;
    assert.ok(fetch, `the plan shows the pull: ${JSON.stringify(plan.services[0])}`);
    assert.deepEqual(fetch.argv.slice(0, 7), ['rsync', '-a', '--checksum', '--delete', '--stats', '-e', TUNNEL_RSH]);
    assert.deepEqual(fetch.argv.slice(-3), [`--files-from=${join(cache, `.files-${plan.services[0]!.release}`)}`, `dev1:/srv/web/releases/${plan.services[0]!.release}/`, `${join(cache, plan.services[0]!.release)}/`]);
  } finally {
    for (const r of cached) await rename(join(aside, r), join(cache, r));
  }
});

test('the dry run changes nothing anywhere, and the real run journals exactly the steps it printed', async () => {
  const before = await settledSnapshot();
  const dry = await updateserver(p.project.dir, 'beta', '--dry-run', '--json');
  assert.equal(dry.code, 0, explain(dry));
  const after = await snapshot();
  for (const part of Object.keys(before)) assert.deepEqual(after[part], before[part], `the dry run changed ${part}`);
  const plan = (JSON.parse(dry.stdout) as { plan: Plan }).plan;
  // It is worth reading: the data copy, the pending migration and the switch are all in it.
  const kinds = plan.phases.flatMap((ph) => ph.items.flatMap((i) => i.actions.map((a) => a.kind)));
  for (const k of ['exec', 'local', 'data-copy', 'migrate', 'check', 'set-map', 'persist-map', 'drain', 'hook']) assert.ok(kinds.includes(k as never), `no ${k} step in the plan`);
  const migrate = plan.phases.flatMap((ph) => ph.items.flatMap((i) => i.actions)).find((a) => a.kind === 'migrate');
  assert.deepEqual(migrate?.kind === 'migrate' ? migrate.pending.map((m) => m.version) : [], [3]);

  const real = await updateserver(p.project.dir, 'beta');
  assert.equal(real.code, 0, explain(real));
  assert.equal((await served()).version, '2.0.0');
  // The hook the dry run listed (and did not run) ran in the real run, on each host.
  for (const h of p.lab.hosts.filter((x) => x.name.startsWith('beta'))) assert.equal(await readFile(join(h.srv, 'hook-after-copy'), 'utf8'), `${plan.services[0]!.release}\n`);
  const dir = join(p.project.stateDir, 'journal');
  const last = (await readdir(dir)).filter((f) => /^beta\.\d+\.done\.jsonl$/.test(f)).sort().pop()!;
  const entries = (await readFile(join(dir, last), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as JournalEntry);
  const start = entries[0] as Extract<JournalEntry, { type: 'start' }>;
  assert.equal(start.type, 'start');
  // The plan the real run applied: same steps, hosts, commands, rsync argv, SQL and runtime-API lines,
  // and where the release comes from; only the time it was made differs.
  assert.deepEqual(start.plan.phases, plan.phases);
  assert.deepEqual(start.plan.services, plan.services);
  assert.deepEqual(start.plan.liveAfter, plan.liveAfter);
  // And the steps it journalled are those of the plan, each begun and ended once, none failed.
  const planned = plan.phases.flatMap((ph) => ph.items.flatMap((i) => i.actions.map((a) => `${ph.name} | ${i.target} | ${a.title}`))).sort();
  const steps = entries.filter((e): e is Extract<JournalEntry, { type: 'step' }> => e.type === 'step');
  assert.deepEqual(steps.filter((s) => s.state === 'end').map((s) => `${s.phase} | ${s.target} | ${s.title}`).sort(), planned);
  assert.deepEqual(steps.filter((s) => s.state === 'begin').map((s) => `${s.phase} | ${s.target} | ${s.title}`).sort(), planned);
  assert.equal(steps.filter((s) => s.state === 'fail').length, 0);
  assert.deepEqual(entries[entries.length - 1], { ...entries[entries.length - 1], type: 'finish', result: 'ok' });
  console.log(`dry run: ${planned.length} steps printed, the same ${planned.length} journalled by the real run; hosts, ${Object.keys(before.databases as object).length} databases, HAProxy and local state unchanged by the dry run`);
});

test('status: per service and load balancer, each backend\'s sessions and servers, and each slot\'s data version', async () => {
  const live = (await served()).slot as 'a' | 'b';
  const idle = live === 'a' ? 'b' : 'a';
  // HAProxy marks the stopped slot's servers down by its own health checks (inter x fall after the stop):
  // a test that starts right after the promotion that stopped it comes before that. Wait for HAProxy.
  const idleDown = async () => {
    const r = await updateserver(p.project.dir, 'status', 'beta', '--json');
    const backends = (JSON.parse(r.stdout) as StageStatus).services[0]!.backends.lb!;
    return backends.find((b) => b.slot === idle)!.servers.every((s) => s.status !== 'UP');
  };
  for (const deadline = Date.now() + 20_000; !(await idleDown()) && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 500));
  // A request in flight is a session on the live backend; it lasts long enough for both status calls to
  // see it on a loaded machine (with 3 s, the second one came after its end at a load average of 17).
  const slow = new Promise((resolve) => get(`${p.url.beta}/slow?ms=6000`, { agent: false }, (res) => { res.resume(); res.on('end', resolve); }));
  await new Promise((r) => setTimeout(r, 500));
  const r = await updateserver(p.project.dir, 'status', 'beta', '--json');
  assert.equal(r.code, 0, explain(r));
  const status = JSON.parse(r.stdout) as StageStatus;
  const web = status.services[0]!;
  const backends = web.backends.lb!;
  assert.deepEqual(backends.map((b) => b.backend), ['web_a', 'web_b']);
  const liveBackend = backends.find((b) => b.slot === live)!;
  assert.ok(liveBackend.sessions >= 1, `the slow request is a session: ${JSON.stringify(backends)}`);
  assert.deepEqual(liveBackend.servers.map((s) => [s.server, s.status, s.weight]), p.betaHosts.map((h) => [h, 'UP', 1]));
  assert.ok(backends.find((b) => b.slot === idle)!.servers.every((s) => s.status !== 'UP'), 'the stopped slot\'s servers are down');
  // The version is read from each database now; the snapshot it was made from comes from the record.
  assert.deepEqual(Object.fromEntries(Object.entries(web.data!).map(([slot, d]) => [slot, { database: d.database, version: d.version }])), {
    [live]: { database: names('beta')[live], version: 3 },
    [idle]: { database: names('beta')[idle], version: 1 },
  });
  for (const d of Object.values(web.data!)) assert.equal(d.snapshot?.stage, 'dev', JSON.stringify(d));
  const text = await updateserver(p.project.dir, 'status', 'beta');
  for (const x of ['a', 'b'] as const) assert.match(text.stdout, new RegExp(`data slot ${x}: ustest_orc_beta_${x} version ${live === x ? 3 : 1}\\b`));
  assert.match(text.stdout, new RegExp(`lb: .*web_${live} [1-9]\\d* session\\(s\\) \\[beta1 UP w1, beta2 UP w1\\]`));
  await slow;
});

test('the pipeline guard: what passed dev is recorded, shown by history --json, and required by beta', async () => {
  const history = JSON.parse((await updateserver(p.project.dir, 'history', 'dev', '--json')).stdout) as HistoryEntry[];
  const passed = history[history.length - 1]!.passed?.web;
  assert.ok(passed, JSON.stringify(history[history.length - 1]));
  assert.match(passed.codeHash, /^[0-9a-f]{64}$/);
  // dev passed with migrations 1 and 2 (3 came later), each by its checksum.
  assert.deepEqual(Object.keys(passed.migrations ?? {}), ['1', '2']);
  assert.match(passed.migrations?.['2'] ?? '', /^[0-9a-f]{64}$/);
  assert.match(passed.dataSource ?? '', /^postgres:\/\/postgres@127\.0\.0\.1:5432\/ustest_orc_dev_[ab]$/);
  // beta's record has it too, with the same code hash as the release on beta's hosts.
  const betaHistory = JSON.parse((await updateserver(p.project.dir, 'history', 'beta', '--json')).stdout) as HistoryEntry[];
  const betaPassed = betaHistory[betaHistory.length - 1]!.passed?.web;
  assert.equal(betaPassed?.codeHash, passed.codeHash);
  assert.match(betaPassed?.dataSource ?? '', /ustest_orc_dev_[ab]$/);
  const release = (await served()).release;
  const beta1 = p.lab.hosts.find((h) => h.name === 'beta1')!;
  assert.equal((await ssh(p.lab, beta1, `sha256sum < /srv/web/releases/${release}/.updateserver-manifest`)).slice(0, 64), passed.codeHash);

  // Without dev's record, beta refuses.
  const stateFile = join(p.project.stateDir, 'state', 'dev.json');
  const saved = await readFile(stateFile, 'utf8');
  const state = JSON.parse(saved) as StageState;
  delete state.services.web!.passed;
  await writeFile(stateFile, JSON.stringify(state));
  const noRecord = await updateserver(p.project.dir, 'beta', '--force');
  assert.equal(noRecord.code, 1, explain(noRecord));
  assert.match(noRecord.stderr, new RegExp(`web ${release.replace(/\./g, '\\.')}, live in dev, has no record of passing dev`));
  await writeFile(stateFile, saved);

  // Code changed on dev's host after it passed: refused, naming the host.
  const dev1 = p.lab.hosts.find((h) => h.name === 'dev1')!;
  const manifest = `/srv/web/releases/${release}/.updateserver-manifest`;
  await ssh(p.lab, dev1, `cp ${manifest} /srv/manifest.saved && echo "0000000000000000000000000000000000000000000000000000000000000000  ./extra" >> ${manifest}`);
  try {
    const changed = await updateserver(p.project.dir, 'beta', '--force');
    assert.equal(changed.code, 1, explain(changed));
    assert.match(changed.stderr, /web \S+ on dev1 \(dev\) is not the code that passed dev: its manifest hashes to [0-9a-f]{16}\.\.\., the record says [0-9a-f]{16}\.\.\./);
  } finally {
    await ssh(p.lab, dev1, `mv -f /srv/manifest.saved ${manifest}`);
  }
  // Put back as it was, beta goes through again.
  const again = await updateserver(p.project.dir, 'beta', '--force');
  assert.equal(again.code, 0, explain(again));
});

test('a runtime map changed behind the tool\'s back: promotion and status stop and show the recorded and the load balancer\'s slot', async () => {
  const live = (await served()).slot as 'a' | 'b';
  const other = live === 'a' ? 'b' : 'a';
  const { haproxy, mapFile } = await balancer('beta');
  await haproxy.setMap(mapFile, 'web', `web_${other}`);
  try {
    const refused = await updateserver(p.project.dir, 'beta', '--force');
    assert.equal(refused.code, 1, explain(refused));
    assert.match(refused.stderr, new RegExp(`the live slots are not what they should be; nothing was changed:\\n\\s+web: the load balancers send traffic to slot ${other}, but the last recorded run left slot ${live} live`));
    const dry = await updateserver(p.project.dir, 'beta', '--dry-run');
    assert.equal(dry.code, 1, explain(dry));
    const status = await updateserver(p.project.dir, 'status', 'beta');
    assert.equal(status.code, 1, explain(status));
    assert.match(status.stdout, new RegExp(`web: live slot ${other} \\(load balancers: lb=${other}; recorded: ${live}\\)`));
    assert.match(status.stdout, new RegExp(`problem: web: load balancers say slot ${other}, the record says ${live}`));
    const json = JSON.parse((await updateserver(p.project.dir, 'status', 'beta', '--json')).stdout) as StageStatus;
    assert.deepEqual({ lbs: json.services[0]!.loadBalancers, recorded: json.services[0]!.recorded }, { lbs: { lb: other }, recorded: live });
    // Refusing changed nothing: the map still says what was set by hand.
    assert.equal((await haproxy.showMap(mapFile)).find((e) => e.key === 'web')?.value, `web_${other}`);
  } finally {
    await haproxy.setMap(mapFile, 'web', `web_${live}`);
  }
  const fixed = await updateserver(p.project.dir, 'status', 'beta');
  assert.equal(fixed.code, 0, explain(fixed));
});
