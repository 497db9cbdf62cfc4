/*
 * Where releases come from and what each slot gets (issue 4): a git tag as the first stage's source,
 * promoted dev -> beta under a templated name ({data}-{date}-{version}-{rev}); a config file rendered
 * per slot on each host; --code-only, which leaves the idle slot's database as it is and skips
 * migrations. One pipeline on 127.0.71.x with PostgreSQL databases per slot (ustest_rel_*); the tests
 * run in order.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { FIXTURE_APP, startPipeline, type Pipeline } from '../lab/pipeline.js';
import { ssh } from '../lab/remote.js';
import type { LabHost } from '../lab/lab.js';
import { updateserver, type CliResult, otherSlot, recordedLiveSlot } from './cli.js';
import { sql } from '../lab/pg.js';

const NET = 71;
const names = (stage: string) => ({ a: `ustest_rel_${stage}_a`, b: `ustest_rel_${stage}_b` });
const CONFIG = '    configFiles:\n      - { template: config/app.env.tmpl, path: config/app.env }';
const dbYaml = (stage: 'dev' | 'beta') => [
  '    database:',
  '      engine: postgres',
  `      strategy: ${stage === 'dev' ? 'copy-self' : 'copy'}`,
  '      host: 127.0.0.1',
  `      names: { a: ${names(stage).a}, b: ${names(stage).b} }`,
  CONFIG,
].join('\n');
const TEMPLATE = 'SLOT={slot}\nPORT={port}\nSTAGE={stage}\nDB={database}@{dbhost}:{dbport}\nRELEASE={release}\nCONFIG={config}\n';

let p: Pipeline;
let repo = '';
const explain = (r: CliResult) => `exit ${r.code}\nstdout:\n${r.stdout.slice(-3000)}\nstderr:\n${r.stderr.slice(-3000)}`;
const labHost = (name: string): LabHost => p.lab.hosts.find((h) => h.name === name)!;
/** A command's output on a lab host, without the trailing newline. */
const onHost = async (host: string, command: string) => (await ssh(p.lab, labHost(host), command)).replace(/\n$/, '');
const git = (...args: string[]) => execFileSync('git', ['-C', repo, '-c', 'user.name=test', '-c', 'user.email=test@example.net', ...args], { encoding: 'utf8' }).trim();

interface RunJson { applied?: boolean; plan?: { services: Array<{ release: string; target: 'a' | 'b'; live: 'a' | 'b'; data?: string }> } }
async function promote(...args: string[]): Promise<{ r: CliResult; json: RunJson }> {
  const r = await updateserver(p.project.dir, ...args, '--json');
  let json: RunJson = {};
  try { json = JSON.parse(r.stdout) as RunJson; } catch { /* the callers' asserts show the output */ }
  return { r, json };
}

async function dropAll(): Promise<void> {
  for (const stage of ['dev', 'beta']) for (const n of Object.values(names(stage))) await sql('postgres', `DROP DATABASE IF EXISTS ${n} WITH (FORCE)`);
}

/** Everything a --code-only run must leave alone in a database: its version table and its rows. */
async function contentOf(database: string): Promise<unknown> {
  return {
    versions: await sql(database, 'SELECT id, version, status, checksum FROM updateserver_version ORDER BY id'),
    items: await sql(database, 'SELECT * FROM items ORDER BY id'),
  };
}

async function served(stage: 'dev' | 'beta'): Promise<string | null> {
  const res = await fetch(`${p.url[stage]}/`, { headers: { connection: 'close' } });
  await res.arrayBuffer();
  assert.equal(res.status, 200);
  return res.headers.get('x-release');
}

const liveSlot = (stage: 'dev' | 'beta') => recordedLiveSlot(p.project.dir, stage);
const other = otherSlot;

/** Points dev's profile at a ref of the test's repository. */
async function devRef(ref: string): Promise<void> {
  const file = join(p.project.dir, 'profiles', 'dev.yaml');
  const text = await readFile(file, 'utf8');
  await writeFile(file, text.replace(/^source:\n(  .*\n)+/m, `source:\n  git: ${repo}\n  ref: ${ref}\n`));
}

before(async () => {
  await dropAll();
  p = await startPipeline({
    net: NET,
    devServiceExtra: `${dbYaml('dev')}\n    releaseName: "{data}-{date}-{version}-{rev}"`,
    betaServiceExtra: dbYaml('beta'),
  });
  const migrations = join(p.project.dir, 'migrations', 'web');
  await mkdir(migrations, { recursive: true });
  await writeFile(join(migrations, 'V0001__items.sql'), "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);\nINSERT INTO items (name) VALUES ('one'), ('two');\n");
  await writeFile(join(migrations, 'V0002__note.sql'), 'ALTER TABLE items ADD COLUMN note text;\n');
  // The application in a git repository, versioned by its tags only: no VERSION file, no version in package.json.
  repo = join(p.lab.dir, 'app-repo');
  await cp(FIXTURE_APP, repo, { recursive: true });
  await rm(join(repo, 'VERSION'));
  const pkg = JSON.parse(await readFile(join(repo, 'package.json'), 'utf8')) as Record<string, unknown>;
  delete pkg.version;
  await writeFile(join(repo, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
  await mkdir(join(repo, 'config'));
  await writeFile(join(repo, 'config', 'app.env.tmpl'), TEMPLATE);
  git('init', '-q', '-b', 'main');
  git('add', '.');
  git('commit', '-qm', 'first release');
  git('tag', 'v1.4.0');
  await devRef('v1.4.0');
});

after(async () => {
  await p?.stop();
  await dropAll();
});

test('an unknown ref, and --code-only on a slot that has no database yet, are refused before anything changes', async () => {
  await devRef('v9.9.9');
  const bad = await updateserver(p.project.dir, 'dev');
  assert.equal(bad.code, 2, explain(bad));
  assert.match(bad.stderr, new RegExp(`profiles/dev.yaml: source.ref: unknown ref "v9.9.9" in git repository ${repo}`));
  await devRef('v1.4.0');
  const codeOnly = await updateserver(p.project.dir, 'dev', '--code-only');
  assert.equal(codeOnly.code, 1, explain(codeOnly));
  assert.match(codeOnly.stderr, /--code-only: slot b of web in dev has no database yet \(postgres:\/\/postgres@127\.0\.0\.1:5432\/ustest_rel_dev_b does not exist\)/);
  assert.match(codeOnly.stderr, /the first promotion into a slot needs its data step/);
  assert.equal(existsSync(join(labHost('dev1').srv, 'web')), false, 'nothing was written on the host');
  assert.equal(existsSync(join(p.project.dir, '.updateserver', 'cache', 'web')), false, 'nothing was released');
});

let first = '';

test('a git tag goes to dev and on to beta under {data}-{date}-{version}-{rev}, with the tag as version', async () => {
  const rev = git('rev-parse', 'v1.4.0^{commit}').slice(0, 7);
  const dev = await promote('dev');
  assert.equal(dev.r.code, 0, explain(dev.r));
  first = dev.json.plan!.services[0]!.release;
  // {data} is 2: the first promotion creates dev's slot database and applies V1 and V2.
  assert.match(first, new RegExp(`^2-\\d{4}\\.\\d{2}\\.\\d{2}-\\d{6}-v1\\.4\\.0-${rev}$`));
  assert.equal(await served('dev'), first);
  const beta = await promote('beta');
  assert.equal(beta.r.code, 0, explain(beta.r));
  assert.equal(beta.json.plan!.services[0]!.release, first, 'later stages keep the name');
  assert.equal(await served('beta'), first);
  for (const h of p.betaHosts) {
    assert.equal(await onHost(h, `readlink /srv/web/${beta.json.plan!.services[0]!.target}`), `/srv/web/releases/${first}`);
  }
  // The same tag again, a second later: the same content, so the same release (found by its hash; the name holds a date).
  await new Promise((r) => setTimeout(r, 1100));
  const again = await promote('dev', '--dry-run');
  assert.equal(again.r.code, 0, explain(again.r));
  assert.equal(again.json.plan!.services[0]!.release, first);
  assert.match((JSON.parse(again.r.stdout) as { skipped: string }).skipped, /dev already runs web /);
});

test('each slot gets its own rendered config file on every host; the shared release is not written', async () => {
  // dev again, forced: the other slot starts the same release and renders its own copy.
  const dev = await promote('dev', '--force');
  assert.equal(dev.r.code, 0, explain(dev.r));
  assert.equal(dev.json.plan!.services[0]!.release, first);
  const [a, b] = [await onHost('dev1', 'cat /srv/web/run/a/config/app.env'), await onHost('dev1', 'cat /srv/web/run/b/config/app.env')];
  const expected = (slot: 'a' | 'b', stage: string, port: number) =>
    `SLOT=${slot}\nPORT=${port}\nSTAGE=${stage}\nDB=${names(stage)[slot]}@127.0.0.1:5432\nRELEASE=${first}\nCONFIG=/srv/web/run/${slot}`;
  assert.equal(a, expected('a', 'dev', 8001));
  assert.equal(b, expected('b', 'dev', 8002));
  assert.equal(await onHost('dev1', `ls -A /srv/web/releases/${first}/config`), 'app.env.tmpl', 'rendered files stay out of the release');
  // beta's hosts rendered theirs for the slot beta started, with beta's database.
  const betaSlot = await liveSlot('beta');
  for (const h of p.betaHosts) {
    assert.equal(await onHost(h, `cat /srv/web/run/${betaSlot}/config/app.env`), expected(betaSlot, 'beta', betaSlot === 'a' ? 8001 : 8002));
  }
  // The dry run shows the render step with its command.
  const plan = await updateserver(p.project.dir, 'dev', '--dry-run', '--force');
  // Rendered between stopping and starting the idle slot, in the same round trip.
  assert.match(plan.stdout, /- start web\/[ab] \(port \d+\) with config\/app\.env rendered into \/srv\/web\/run\/[ab], stopping what ran there\n\s+\$ .*\{ \{ \[ -f \/srv\/web\/releases\/.*\/config\/app\.env\.tmpl \] .* sed -e 's\|\{stage\}\|dev\|g; /);
});

test('--code-only: dev and beta get new code; each idle slot keeps its database as it was, and no migration runs', async () => {
  // beta's idle slot has no database yet: refused, nothing changed.
  const refused = await updateserver(p.project.dir, 'beta', '--code-only');
  assert.equal(refused.code, 1, explain(refused));
  assert.match(refused.stderr, /--code-only: slot [ab] of web in beta has no database yet/);
  assert.equal(await served('beta'), first);
  // A full promotion gives it one; then both slots of each stage have a database.
  const full = await promote('beta', '--force');
  assert.equal(full.r.code, 0, explain(full.r));

  // A new tag and a new migration: --code-only must not apply it.
  await writeFile(join(repo, 'CHANGES'), 'v1.5.0: a minor revision\n');
  git('add', '.');
  git('commit', '-qm', 'minor revision');
  git('tag', 'v1.5.0');
  await writeFile(join(p.project.dir, 'migrations', 'web', 'V0003__index.sql'), 'CREATE INDEX items_name ON items (name);\n');
  await devRef('v1.5.0');
  // (A dry run of dev would cache and name the new release already: the slot is read from the status.)
  const devIdle = other(await liveSlot('dev'));
  const devBefore = await contentOf(names('dev')[devIdle]);
  const dev = await promote('dev', '--code-only');
  assert.equal(dev.r.code, 0, explain(dev.r));
  const second = dev.json.plan!.services[0]!.release;
  assert.match(second, new RegExp(`^2-.*-v1\\.5\\.0-${git('rev-parse', 'v1.5.0^{commit}').slice(0, 7)}$`), '{data} is the kept database\'s version');
  assert.deepEqual(await contentOf(names('dev')[devIdle]), devBefore, 'dev\'s idle database is as it was: no copy, no V3');
  assert.equal(await served('dev'), second);

  const betaIdle = other(await liveSlot('beta'));
  const kept = names('beta')[betaIdle];
  await sql(kept, "INSERT INTO items (name) VALUES ('written in beta slot only')");
  const betaBefore = await contentOf(kept);
  const dry = await updateserver(p.project.dir, 'beta', '--dry-run', '--code-only');
  assert.equal(dry.code, 0, explain(dry));
  assert.match(dry.stdout, new RegExp(`data: --code-only: no data step; slot ${betaIdle} keeps its database ${kept} as it is \\(migration version 2; not applied: 3\\)`));
  assert.doesNotMatch(dry.stdout, /snapshot|migrate |Copy the data/);
  const beta = await promote('beta', '--code-only');
  assert.equal(beta.r.code, 0, explain(beta.r));
  assert.equal(beta.json.plan!.services[0]!.target, betaIdle);
  assert.equal(await served('beta'), second);
  assert.deepEqual(await contentOf(kept), betaBefore, 'the new live slot serves its database untouched: the row written there is kept, V3 is not applied');
  assert.equal((await sql(kept, "SELECT 1 FROM pg_indexes WHERE indexname = 'items_name'")).length, 0);
});
