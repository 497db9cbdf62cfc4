/*
 * The plan is the whole truth for every verb that changes something (issue 16), proven on the lab as
 * plan-recording.test.ts proves it for a promotion: flip, rollback, maintenance, purge and refresh each
 * run twice from the same state, first as a dry run, then for real, with recorders around the real
 * ssh2 transport, the real HAProxy runtime client, the real database sessions (pg) and every local
 * program (pg_dump, pg_restore). The real run's recorded effects, per host, load balancer, database and
 * this machine, in order, equal the effects its dry run's plan lists; and the dry run itself wrote to
 * no load balancer, no database, ran no local program, and left every host's /srv, both maps and the
 * local state directory byte for byte as they were. Lab net 10, PostgreSQL databases ustest_rec_*.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { ssh } from '../lab/remote.js';
import { updateserver, explain } from './cli.js';
import { silentLogger } from '../../src/log.js';
import { flip } from '../../src/promote/flip.js';
import { setMaintenance } from '../../src/maintenance/maintenance.js';
import { purge } from '../../src/purge/purge.js';
import { refresh } from '../../src/refresh/refresh.js';
import { loadProfile } from '../../src/config/load.js';
import { Haproxy } from '../../src/lb/haproxy.js';
import type { Plan } from '../../src/plan/plan.js';
import type { RunRequest } from '../../src/run/run.js';
import { Recorder, plannedEffects } from '../lab/recorder.js';
import { slotDatabases } from '../lab/databases.js';
import { sql } from '../lab/pg.js';

const NET = 10;
const dbs = slotDatabases('postgres', 'ustest_rec');
const exec = promisify(execFile);
const PRE = 'pre:\n  - name: health\n    http: { path: /health }\n    deadlineMs: 8000\n';
const devDb = [dbs.yaml('dev'), '      refresh:', '        after:', '          - "UPDATE items SET name = \'renamed\'"', '          - "DELETE FROM items WHERE id > 2"'].join('\n');

let p: Pipeline;

async function release(version: string): Promise<void> {
  await writeFile(join(p.appDir, 'VERSION'), `${version}\n`);
  for (const stage of ['dev', 'beta']) {
    const r = await updateserver(p.project.dir, stage);
    assert.equal(r.code, 0, explain(r));
  }
}

/** What a dry run must not change, as comparable text: every host's /srv, each load balancer's runtime map and map file, the local state directory. */
async function world(): Promise<Record<string, unknown>> {
  const files: Record<string, string> = {};
  for (const h of p.lab.hosts) files[h.name] = await ssh(p.lab, h, "find /srv -printf '%p %y %s %T@ %l\\n' | LC_ALL=C sort; find /srv -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum");
  const maps: Record<string, unknown> = {};
  for (const stage of ['dev', 'beta']) {
    const lb = (await loadProfile(p.project, stage)).loadBalancers.lb!;
    maps[stage] = { runtime: await Haproxy.forLoadBalancer(lb).showMap(lb.mapFile), file: await readFile(lb.mapFile, 'utf8') };
  }
  const local = (await exec('bash', ['-c', `cd ${p.project.stateDir} && find . -path ./logs -prune -o -printf '%p %y %s %T@ %l\\n' | LC_ALL=C sort; find . -path ./logs -prune -o -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum`], { maxBuffer: 64 << 20 })).stdout;
  return { files, maps, local };
}

const timeless = (plan: Plan) => ({ ...plan, createdAt: '(masked)' });

/**
 * Runs a verb as a dry run, then for real, recording both; returns the real run's recorder and plan
 * after checking the dry run changed nothing and the real run did exactly what the dry run's plan says.
 */
async function dryThenReal(name: string, run: (request: Pick<RunRequest, 'dryRun' | 'instrument' | 'progress' | 'logger'>) => Promise<{ plan: Plan }>): Promise<{ recorder: Recorder; plan: Plan; expected: Record<string, string[]> }> {
  const before = await world();
  const dryRecorder = new Recorder();
  // The dry run is recorded from its first command: it may read, never change.
  dryRecorder.start();
  const dry = await run({ dryRun: true, instrument: dryRecorder.instrument(), logger: silentLogger });
  assert.deepEqual(dryRecorder.balancerWrites, [], `${name}: the dry run changed a load balancer`);
  assert.deepEqual(dryRecorder.effects.filter((e) => e.effect.startsWith('sql ') || e.effect.startsWith('run ')), [], `${name}: the dry run wrote to a database or ran a local program`);
  const after = await world();
  for (const part of Object.keys(before)) assert.deepEqual(after[part], before[part], `${name}: the dry run changed ${part}`);

  const recorder = new Recorder();
  const real = await run({ dryRun: false, instrument: recorder.instrument(), logger: silentLogger, progress: () => { recorder.start(); return undefined; } });
  assert.deepEqual(timeless(real.plan), timeless(dry.plan), `${name}: the real run applied another plan than the dry run printed`);
  const expected = plannedEffects(dry.plan);
  assert.deepEqual(recorder.byTarget(), expected, `${name}: what ran differs from the plan`);
  console.log(`${name}: ${recorder.effects.length} effects recorded on ${Object.keys(expected).length} targets, equal to the dry run's plan`);
  return { recorder, plan: dry.plan, expected };
}

before(async () => {
  await dbs.dropAll();
  p = await startPipeline({
    net: NET, devHealthPath: '/', devServiceExtra: devDb, betaServiceExtra: `${dbs.yaml('beta')}\n    checks: web`, betaTopExtra: 'keepReleases: 10',
    projectFiles: { 'healthchecks/web.yaml': PRE },
  });
  const dir = join(p.project.dir, 'migrations', 'web');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'V0001__items.sql'), "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);\nINSERT INTO items (name) VALUES ('one'), ('two'), ('three');\n");
  // Three releases in beta: purge has one to remove at --keep 2.
  for (const v of ['1.0.0', '1.1.0', '1.2.0']) await release(v);
});

after(async () => {
  await p?.stop();
  await dbs.dropAll();
});

test('flip and rollback execute exactly the effects their dry runs listed', async () => {
  const common = { project: p.project, stage: 'beta' };
  const flipped = await dryThenReal('flip', (r) => flip({ ...common, ...r }));
  const all = Object.values(flipped.expected).flat();
  for (const kind of [/^exec .*setsid/, /^set map /, /^persist /]) assert.ok(all.some((e) => kind.test(e)), `flip: no ${kind} effect`);
  const back = await dryThenReal('rollback', (r) => flip({ ...common, ...r, rollback: true, force: true }));
  assert.equal(back.plan.action, 'rollback');
  // The rollback goes back where the flip came from.
  assert.equal(back.plan.services[0]!.target, flipped.plan.services[0]!.live);
});

test('maintenance read-only and off execute exactly the map entries their dry runs listed, on every load balancer', async () => {
  const common = { project: p.project, stage: 'beta' };
  const on = await dryThenReal('maintenance read-only', (r) => setMaintenance({ ...common, ...r, mode: 'read-only' }));
  assert.ok(on.expected.lb!.includes(`set map ${(await loadProfile(p.project, 'beta')).loadBalancers.lb!.mapFile} web.readonly on`), on.expected.lb!.join('\n'));
  // Its failure path puts back what each load balancer said before: the entries it read (readonly off).
  const revert = on.plan.onFailure?.[0]?.phases[0]?.items[0]?.actions[0];
  assert.deepEqual(revert?.kind === 'revert-map' ? revert.entries : undefined, { 'web.maintenance': 'off', 'web.readonly': 'off' });
  await dryThenReal('maintenance off', (r) => setMaintenance({ ...common, ...r, mode: 'off' }));
});

test('purge executes exactly the removals its dry run listed, and removes what it said', async () => {
  const removal = await dryThenReal('purge', (r) => purge({ project: p.project, stage: 'beta', keep: 2, ...r }));
  const removed = Object.values(removal.expected).flat();
  assert.equal(removed.length, p.lab.hosts.filter((h) => h.name.startsWith('beta')).length, `one removal per beta host: ${removed.join('\n')}`);
  for (const e of removed) assert.match(e, /^exec cd \/srv\/web\/releases && rm -rf -- \S+-1\.0\.0-\w+$/, 'the oldest release, 1.0.0, and only it');
});

test('refresh executes exactly the database statements and programs its dry run listed', async () => {
  const copy = await dryThenReal('refresh', (r) => refresh({ project: p.project, stage: 'dev', from: 'beta', ...r }));
  const targets = Object.keys(copy.expected);
  // The dev database is dropped and created on the server's admin database, filled by pg_dump | pg_restore, and renamed by refresh.after.
  assert.ok(copy.expected.local?.some((e) => e.startsWith('run pg_dump ')) && copy.expected.local.some((e) => e.startsWith('run pg_restore ')), JSON.stringify(copy.expected));
  assert.ok(targets.some((t) => /\/postgres$/.test(t) && copy.expected[t]!.some((e) => /^sql DROP DATABASE IF EXISTS "?ustest_rec_dev_/.test(e))), JSON.stringify(copy.expected));
  assert.ok(targets.some((t) => /ustest_rec_dev_[ab]$/.test(t) && copy.expected[t]!.includes("sql UPDATE items SET name = 'renamed'")), JSON.stringify(copy.expected));
  const idle = copy.plan.phases[0]!.items[0]!.actions[0]!;
  const rows = await sql<{ name: string }>(idle.kind === 'data-copy' ? idle.target.database : '', 'SELECT name FROM items ORDER BY id');
  assert.deepEqual(rows.map((r) => r.name), ['renamed', 'renamed'], 'refresh.after ran on the copy');
});
