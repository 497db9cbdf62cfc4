/*
 * The plan is the whole truth (issue 16) for a service whose data is in files (issue 18) and the report
 * of what a rollback leaves in them (issue 21 item 4), on the lab (net 91): with recorders around the
 * real ssh2 transport and HAProxy runtime client (test/lab/recorder.ts), a copy-self promotion of an
 * SQLite app (its `sqlite3 .backup`, rsync delta and verification on the host, the list of the new
 * slot's files before the switch), a rollback (the list of the files left once the slot is stopped) and
 * a promotion whose post check fails (the automatic rollback's listing of the new slot's files) each run
 * exactly the effects their dry run's plan lists, host by host and load balancer by load balancer; and
 * so does `refresh dev --from beta` of the files (its local ssh, rsync and verification programs).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { TIERS_APP } from '../lab/tiers.js';
import { updateserver, explain } from './cli.js';
import { promote } from '../../src/promote/promote.js';
import { flip } from '../../src/promote/flip.js';
import { refresh } from '../../src/refresh/refresh.js';
import { PromotionFailed } from '../../src/apply/apply.js';
import { silentLogger } from '../../src/log.js';
import type { Plan } from '../../src/plan/plan.js';
import type { PromoteResult } from '../../src/promote/promote.js';
import { Recorder, plannedEffects } from '../lab/recorder.js';

const PRE = 'pre:\n  - name: health\n    http: { path: /health }\n    deadlineMs: 8000\n';
const FAILING_POST = `${PRE}post:\n  - name: never\n    http: { path: /health, bodyContains: "no answer says this" }\n    deadlineMs: 600\n`;
const FILES = [
  '    files:',
  '      paths: [db, uploads]',
  '      command: "mkdir -p {snapshot}/db {snapshot}/uploads && cp -a uploads/. {snapshot}/uploads/ && if [ -f db/notes.db ]; then sqlite3 db/notes.db \'.backup {snapshot}/db/notes.db\'; fi"',
].join('\n');

let p: Pipeline;

async function newRelease(version: string): Promise<void> {
  await writeFile(join(p.appDir, 'VERSION'), `${version}\n`);
  const dev = await updateserver(p.project.dir, 'dev');
  assert.equal(dev.code, 0, explain(dev));
}

/** Runs a verb in this process with recorders around its connections; recording starts when the plan is applied. */
async function recorded(dryRun: boolean, verb: 'promote' | 'rollback'): Promise<{ recorder: Recorder; result?: PromoteResult; error?: unknown }> {
  const recorder = new Recorder();
  const request = { project: p.project, stage: 'beta', logger: silentLogger, dryRun, instrument: recorder.instrument(), progress: () => { recorder.start(); return undefined; } };
  try {
    return { recorder, result: verb === 'promote' ? await promote(request) : await flip({ ...request, rollback: true }) };
  } catch (error) {
    return { recorder, error };
  }
}

const timeless = (plan: Plan) => ({ ...plan, createdAt: '(masked)' });
const execs = (effects: Record<string, string[]>) => Object.values(effects).flat().filter((e) => e.startsWith('exec '));

before(async () => {
  p = await startPipeline({
    net: 91, betaHosts: 1,
    appStart: 'node notes.mjs --host {address} --port {port} --slot {slot} --release {release} --data {files}',
    projectFiles: { 'app/notes.mjs': await readFile(join(TIERS_APP, 'notes.mjs'), 'utf8'), 'healthchecks/web.yaml': PRE },
    devServiceExtra: FILES, betaServiceExtra: `${FILES}\n    checks: web`,
  });
  await newRelease('1.0.0');
  const beta = await updateserver(p.project.dir, 'beta');
  assert.equal(beta.code, 0, explain(beta));
  for (const k of ['a', 'b', 'c']) assert.equal((await fetch(`${p.url.beta}/rows`, { method: 'POST', body: k, headers: { connection: 'close' } })).status, 201);
  assert.equal((await fetch(`${p.url.beta}/files/up.txt`, { method: 'PUT', body: 'uploaded', headers: { connection: 'close' } })).status, 201);
});

after(async () => { await p?.stop(); });

test('a copy-self promotion of files data, then its rollback, execute exactly the effects their dry runs listed', async () => {
  await newRelease('1.1.0');
  const dry = await recorded(true, 'promote');
  assert.equal(dry.error, undefined, String(dry.error));
  assert.deepEqual(dry.recorder.balancerWrites, [], 'the dry run changed a load balancer');
  assert.deepEqual(dry.recorder.effects, [], 'the dry run applied something');
  const plan = dry.result!.plan;
  const real = await recorded(false, 'promote');
  assert.equal(real.error, undefined, String(real.error));
  assert.deepEqual(timeless(real.result!.plan), timeless(plan));
  const expected = plannedEffects(plan);
  assert.deepEqual(real.recorder.byTarget(), expected);
  // Among them: the .backup and the verified rsync delta on the host, the list of the new slot's files.
  const target = plan.services[0]!.target;
  for (const kind of [/sqlite3 db\/notes\.db '\.backup \/srv\/web\/files\/[ab]\.snapshot\/db\/notes\.db'/, /rsync -a --delete --no-whole-file --checksum/, new RegExp(`> /srv/web/files/${target}\\.manifest\\.tmp && mv -f`)]) {
    assert.ok(execs(expected).some((e) => kind.test(e)), `no ${kind} effect`);
  }

  // Users of the new slot, then the rollback: its listing of the files left is a step of its plan too.
  assert.equal((await fetch(`${p.url.beta}/files/new.txt`, { method: 'PUT', body: 'new', headers: { connection: 'close' } })).status, 201);
  const dryBack = await recorded(true, 'rollback');
  assert.equal(dryBack.error, undefined, String(dryBack.error));
  assert.deepEqual(dryBack.recorder.effects, []);
  const backPlan = dryBack.result!.plan;
  const back = await recorded(false, 'rollback');
  assert.equal(back.error, undefined, String(back.error));
  assert.deepEqual(timeless(back.result!.plan), timeless(backPlan));
  const backExpected = plannedEffects(backPlan);
  assert.deepEqual(back.recorder.byTarget(), backExpected);
  assert.ok(execs(backExpected).some((e) => e.includes(`diff --old-line-format='- %L' --new-line-format='+ %L' --unchanged-line-format='' /srv/web/files/${target}.manifest`)), 'the rollback lists the files left');
  assert.deepEqual(back.result!.changes?.files?.[0]?.added.map((f) => f.path), ['uploads/new.txt']);
});

test('a promotion whose post check fails lists the new slot\'s files on the plan\'s failure path, as planned', async () => {
  await writeFile(join(p.project.dir, 'healthchecks', 'web.yaml'), FAILING_POST);
  try {
    await newRelease('1.2.0');
    const dry = await recorded(true, 'promote');
    assert.equal(dry.error, undefined, String(dry.error));
    const plan = dry.result!.plan;
    const path = plan.onFailure?.find((f) => f.on.includes('post'));
    assert.deepEqual(path?.phases.map((ph) => ph.name), ['revert', 'current-back', 'drain-new', 'stop-new', 'unfreeze', 'files-left', 'report']);
    const real = await recorded(false, 'promote');
    assert.ok(real.error instanceof PromotionFailed && real.error.rolledBack && real.error.liveUntouched, String(real.error));
    const expected = plannedEffects(plan, 'post');
    assert.deepEqual(real.recorder.byTarget(), expected);
    const target = plan.services[0]!.target;
    assert.equal(execs(expected).at(-1)?.includes(`/srv/web/files/${target}.manifest.now`), true, 'the last effect is the listing of the new slot\'s files');
  } finally {
    await writeFile(join(p.project.dir, 'healthchecks', 'web.yaml'), PRE);
  }
});

test('refresh of files executes exactly the programs and commands its dry run listed', async () => {
  const request = (dryRun: boolean, recorder: Recorder) => ({
    project: p.project, stage: 'dev', from: 'beta', logger: silentLogger, dryRun, instrument: recorder.instrument(),
    ...(dryRun ? {} : { progress: () => { recorder.start(); return undefined; } }),
  });
  const dryRecorder = new Recorder();
  // Recorded from its first command: a dry run may read, never change or run a local program.
  dryRecorder.start();
  const dry = await refresh(request(true, dryRecorder));
  assert.deepEqual(dryRecorder.balancerWrites, []);
  assert.deepEqual(dryRecorder.effects.filter((e) => e.effect.startsWith('run ')), [], 'the dry run ran a local program');
  const recorder = new Recorder();
  const real = await refresh(request(false, recorder));
  assert.equal(real.applied, true);
  assert.deepEqual(timeless(real.plan), timeless(dry.plan));
  const expected = plannedEffects(dry.plan);
  assert.deepEqual(recorder.byTarget(), expected);
  // beta's .backup over OpenSSH, the pull, the push into dev's idle slot, the verification; dev's idle slot stopped first.
  const local = expected.local ?? [];
  for (const kind of [/^run ssh .*sqlite3 db\/notes\.db '\.backup /, /^run rsync .*:\/srv\/web\/files\/[ab]\.snapshot\/db\/ /, /^run rsync .* root@127\.0\.91\.11:\/srv\/web\/files\/[ab]\/uploads\/$/, /^run bash -c digest\(\)/]) {
    assert.ok(local.some((e) => kind.test(e)), `no ${kind} effect:\n${local.join('\n')}`);
  }
  assert.ok((expected.dev1 ?? []).some((e) => /^exec .*kill -TERM/.test(e)), 'dev\'s idle slot is stopped');
});
