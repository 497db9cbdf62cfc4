/*
 * Hooks on the lab (issue 19): beta's profile declares a hook at every point, on this machine and on
 * the hosts, each writing its environment to a file; a control file makes one of them fail. Proven here:
 * every point runs with the run's facts (stage, service, release, slots, slot directory, database, run
 * id, user, dry-run flag, the stage's and host's vars); the dry run lists every hook's exact line and runs
 * none; and each rule of the failure policy, under load with zero failed requests: a hook failing before
 * the switch stops the run with live traffic untouched (its output and host in the message); after the
 * switch a non-critical one is a warning and a critical one rolls back (after-rollback hooks run); the
 * failed and finished hooks neither change the exit status nor hide the error.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { startLoad, type LoadResult } from '../lab/load.js';
import { updateserver, explain, recordedLiveSlot, otherSlot, type CliResult } from './cli.js';

const NET = 40;
const POINTS = ['before-copy', 'after-copy', 'before-start', 'after-start', 'before-switch', 'after-switch', 'after-drain', 'after-rollback', 'failed', 'finished'] as const;

let p: Pipeline;
/** Where the local hooks write (and find their control files), on this machine. */
let out: string;

/** Records the hook's environment; fails (exit 7, with output) when the control file for its point exists. */
const record = (dir: string, where: string) =>
  `mkdir -p ${dir} && env | grep ^UPDATESERVER_ | sort > ${dir}/$UPDATESERVER_HOOK.${where}.env && echo "hook $UPDATESERVER_HOOK ran ${where}" && { [ ! -e ${dir}/fail-$UPDATESERVER_HOOK ] || { echo "boom at $UPDATESERVER_HOOK on \${UPDATESERVER_HOST:-local}" >&2; exit 7; }; }`;

function hooksYaml(): string {
  const lines = ['hooks:'];
  for (const point of POINTS) {
    lines.push(`  ${point}:`);
    lines.push(`    - { run: '${record(out, 'local')}', on: local, timeoutMs: 20000 }`);
    // On the hosts /srv is each host's own directory (test/lab/lab-host.ts); after-switch's is critical.
    lines.push(`    - { run: '${record('/srv/hooks', '$UPDATESERVER_HOST')}', on: hosts${point === 'after-switch' ? ', critical: true' : ''} }`);
  }
  return lines.join('\n');
}

async function newRelease(version: string): Promise<void> {
  await writeFile(join(p.appDir, 'VERSION'), `${version}\n`);
  const dev = await updateserver(p.project.dir, 'dev');
  assert.equal(dev.code, 0, explain(dev));
}

/** The environment a hook recorded, or undefined when it did not run. */
async function envOf(point: string, where: string): Promise<Record<string, string> | undefined> {
  const file = where === 'local' ? join(out, `${point}.local.env`) : join(p.lab.hosts.find((h) => h.name === where)!.srv, 'hooks', `${point}.${where}.env`);
  if (!existsSync(file)) return undefined;
  return Object.fromEntries((await readFile(file, 'utf8')).trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

async function clearRecords(): Promise<void> {
  for (const f of await readdir(out)) await rm(join(out, f), { force: true });
  for (const h of p.lab.hosts) await rm(join(h.srv, 'hooks'), { recursive: true, force: true });
}

/** Which points ran, on this machine and on each beta host. */
async function ran(): Promise<Record<string, string[]>> {
  const result: Record<string, string[]> = {};
  for (const where of ['local', ...p.betaHosts]) {
    result[where] = [];
    for (const point of POINTS) if (await envOf(point, where)) result[where]!.push(point);
  }
  return result;
}

async function underLoad(run: () => Promise<CliResult>): Promise<{ r: CliResult; load: LoadResult }> {
  const load = startLoad(p.url.beta, { connections: 8 });
  try {
    const r = await run();
    return { r, load: await load.stop() };
  } catch (err) {
    await load.stop();
    throw err;
  }
}

function assertNoFailures(load: LoadResult): void {
  assert.ok(load.requests > 50, `too little load: ${JSON.stringify(load)}`);
  assert.equal(load.errors + load.timeouts + load.non2xx, 0, `failed requests: ${JSON.stringify(load)}`);
}

before(async () => {
  p = await startPipeline({ net: NET, betaServiceExtra: '    configFiles:\n      - { template: vars.tmpl, path: vars.txt }' });
  out = join(p.lab.dir, 'hooks-out');
  await mkdir(out, { recursive: true });
  await writeFile(join(p.appDir, 'vars.tmpl'), 'greeting={vars.greeting} role={vars.role} slot={slot}\n');
  const beta = join(p.project.dir, 'profiles', 'beta.yaml');
  let text = await readFile(beta, 'utf8');
  // beta1 has a var of its own; beta2 only the stage's.
  text = text.replace(/(  beta1: \{ address: [0-9.]+) \}/, '$1, vars: { role: primary, greeting: "hello from beta1" } }');
  text = `vars:\n  greeting: "hello | & \\\\ beta"\n  role: replica\n  mail_enabled: false\n${hooksYaml()}\n${text}`;
  await writeFile(beta, text);
  await newRelease('1.0.0');
});

after(async () => {
  await p?.stop();
});

test('the dry run lists every hook at its point with its exact line, and runs none', async () => {
  const r = await updateserver(p.project.dir, 'beta', '--dry-run');
  assert.equal(r.code, 0, explain(r));
  for (const point of ['before-copy', 'after-copy', 'before-start', 'after-start', 'before-switch', 'after-switch', 'after-drain']) {
    assert.match(r.stdout, new RegExp(`\\d+\\. Run the ${point} hooks\\n   \\[`), point);
  }
  assert.match(r.stdout, /When the run ends, whatever the result:/);
  assert.match(r.stdout, /If the run fails, at its end:/);
  assert.match(r.stdout, /on beta1: \$ env UPDATESERVER_RUN_ID='<run id>' UPDATESERVER_HOOK=before-switch .*UPDATESERVER_HOST=beta1 .*UPDATESERVER_VAR_role=primary .*timeout -k 5 60\.000 bash -c /);
  assert.match(r.stdout, /\(local\): \$ env .*UPDATESERVER_VAR_greeting='hello \| & \\ beta'/);
  assert.match(r.stdout, /a failure switches traffic back \(critical\)/);
  assert.deepEqual(await ran(), { local: [], beta1: [], beta2: [] }, 'the dry run ran a hook');
});

let runId = '';

test('a promotion runs every hook point on this machine and on each host, with the run\'s facts in its environment', async () => {
  await clearRecords();
  const r = await updateserver(p.project.dir, 'beta', '--json');
  assert.equal(r.code, 0, explain(r));
  const plan = (JSON.parse(r.stdout) as { plan: { services: Array<{ release: string; live: string; target: string }> } }).plan.services[0]!;
  const happy = ['before-copy', 'after-copy', 'before-start', 'after-start', 'before-switch', 'after-switch', 'after-drain', 'finished'];
  assert.deepEqual(await ran(), { local: happy, beta1: happy, beta2: happy });
  const ids = new Set<string>();
  for (const point of happy) {
    for (const where of ['local', 'beta1', 'beta2']) {
      const env = (await envOf(point, where))!;
      const expected: Record<string, string> = {
        UPDATESERVER_HOOK: point, UPDATESERVER_ACTION: 'promote', UPDATESERVER_STAGE: 'beta', UPDATESERVER_SERVICE: 'web',
        UPDATESERVER_RELEASE: plan.release, UPDATESERVER_PREVIOUS_RELEASE: '', UPDATESERVER_OLD_SLOT: plan.live, UPDATESERVER_NEW_SLOT: plan.target,
        UPDATESERVER_SLOT_DIR: `/srv/web/${plan.target}`, UPDATESERVER_OLD_SLOT_DIR: `/srv/web/${plan.live}`, UPDATESERVER_DATABASE: '', UPDATESERVER_OLD_DATABASE: '',
        UPDATESERVER_HOST: where === 'local' ? '' : where, UPDATESERVER_USER: 'root', UPDATESERVER_DRY_RUN: '0',
        UPDATESERVER_VAR_greeting: where === 'beta1' ? 'hello from beta1' : 'hello | & \\ beta',
        UPDATESERVER_VAR_role: where === 'beta1' ? 'primary' : 'replica', UPDATESERVER_VAR_mail_enabled: 'false',
        ...(point === 'finished' ? { UPDATESERVER_RESULT: 'ok', UPDATESERVER_ERROR: '' } : {}),
      };
      const { UPDATESERVER_RUN_ID: id, ...rest } = env;
      assert.deepEqual(rest, expected, `${point} on ${where}`);
      ids.add(id ?? '');
    }
  }
  assert.equal(ids.size, 1, `one run id for every hook: ${[...ids].join(', ')}`);
  runId = [...ids][0]!;
  assert.match(runId, /^\d{4}-\d{2}-\d{2}T/);
  // Hook output is in the run's log, with its host.
  const logs = join(p.project.stateDir, 'logs');
  const entries = [];
  for (const f of (await readdir(logs)).filter((x) => x.startsWith('beta-promote-'))) {
    entries.push(...(await readFile(join(logs, f), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { hook?: string; host?: string; stdout?: string }));
  }
  const entry = entries.find((e) => e.hook === 'after-drain' && e.host === 'beta2');
  assert.equal(entry?.stdout, 'hook after-drain ran beta2\n');
  // vars reach config templates too: each host renders its own.
  assert.equal(await readFile(join(p.lab.hosts.find((h) => h.name === 'beta1')!.srv, 'web', 'run', plan.target, 'vars.txt'), 'utf8'), `greeting=hello from beta1 role=primary slot=${plan.target}\n`);
  assert.equal(await readFile(join(p.lab.hosts.find((h) => h.name === 'beta2')!.srv, 'web', 'run', plan.target, 'vars.txt'), 'utf8'), `greeting=hello | & \\ beta role=replica slot=${plan.target}\n`);
});

test('a hook failing before the switch stops the run, live traffic untouched; its output and host in the message; failed and finished hooks (one failing itself) keep exit 1 and the error', async () => {
  await newRelease('2.0.0');
  const liveBefore = await recordedLiveSlot(p.project.dir, 'beta');
  await clearRecords();
  await mkdir(join(p.lab.hosts.find((h) => h.name === 'beta2')!.srv, 'hooks'), { recursive: true });
  await writeFile(join(p.lab.hosts.find((h) => h.name === 'beta2')!.srv, 'hooks', 'fail-before-switch'), '');
  await writeFile(join(out, 'fail-failed'), '');
  await writeFile(join(out, 'fail-finished'), '');
  const { r, load } = await underLoad(() => updateserver(p.project.dir, 'beta'));
  assert.equal(r.code, 1, explain(r));
  assert.match(r.stderr, /beta2: before-switch hook of web failed \(exit 7\): .*\n(.*\n)*boom at before-switch on beta2/);
  assert.match(r.stderr, /live traffic was not touched/);
  assertNoFailures(load);
  assert.equal(await recordedLiveSlot(p.project.dir, 'beta'), liveBefore);
  assert.ok(Object.keys(load.byRelease).length === 1, `one release served throughout: ${JSON.stringify(load.byRelease)}`);
  const points = await ran();
  assert.deepEqual(points.local, ['before-copy', 'after-copy', 'before-start', 'after-start', 'before-switch', 'failed', 'finished']);
  assert.equal((await envOf('failed', 'local'))!.UPDATESERVER_RESULT, 'failed');
  assert.match((await envOf('finished', 'beta1'))!.UPDATESERVER_ERROR!, /before-switch hook of web failed/);
  // The failing failed/finished hooks are warnings; the error reported last is still the hook's.
  assert.match(r.stderr, /failed hook of web failed \(exit 7\)/);
  assert.match(r.stderr, /finished hook of web failed \(exit 7\)/);
  await rm(join(out, 'fail-failed'));
  await rm(join(out, 'fail-finished'));
  await rm(join(p.lab.hosts.find((h) => h.name === 'beta2')!.srv, 'hooks', 'fail-before-switch'));
});

test('after the switch, a failing hook that is not critical is a warning: the new release stays live', async () => {
  await newRelease('3.0.0');
  const liveBefore = await recordedLiveSlot(p.project.dir, 'beta');
  await clearRecords();
  await writeFile(join(out, 'fail-after-switch'), '');
  const { r, load } = await underLoad(() => updateserver(p.project.dir, 'beta'));
  await rm(join(out, 'fail-after-switch'));
  assert.equal(r.code, 0, explain(r));
  assert.match(r.stderr, /local: after-switch hook of web failed \(exit 7\): .*\n(.*\n)*boom at after-switch on local/);
  assert.match(r.stderr, /a warning: not critical, the new release stays live/);
  assertNoFailures(load);
  assert.equal(await recordedLiveSlot(p.project.dir, 'beta'), otherSlot(liveBefore));
  assert.equal((await envOf('finished', 'local'))!.UPDATESERVER_RESULT, 'ok');
});

test('updateserver rollback runs the after-rollback hooks once traffic is back, and no copy hook', async () => {
  const liveBefore = await recordedLiveSlot(p.project.dir, 'beta');
  await clearRecords();
  const { r, load } = await underLoad(() => updateserver(p.project.dir, 'rollback', 'beta'));
  assert.equal(r.code, 0, explain(r));
  assertNoFailures(load);
  assert.equal(await recordedLiveSlot(p.project.dir, 'beta'), otherSlot(liveBefore));
  const points = await ran();
  assert.deepEqual(points.beta1, ['before-start', 'after-start', 'before-switch', 'after-switch', 'after-drain', 'after-rollback', 'finished']);
  const env = (await envOf('after-rollback', 'local'))!;
  assert.equal(env.UPDATESERVER_ACTION, 'rollback');
  assert.equal(env.UPDATESERVER_NEW_SLOT, otherSlot(liveBefore), 'the slot traffic went to');
});

test('after the switch, a failing critical hook rolls back to the old slot; the after-rollback hooks run', async () => {
  await newRelease('4.0.0');
  const liveBefore = await recordedLiveSlot(p.project.dir, 'beta');
  await clearRecords();
  await mkdir(join(p.lab.hosts.find((h) => h.name === 'beta1')!.srv, 'hooks'), { recursive: true });
  await writeFile(join(p.lab.hosts.find((h) => h.name === 'beta1')!.srv, 'hooks', 'fail-after-switch'), '');
  const { r, load } = await underLoad(() => updateserver(p.project.dir, 'beta'));
  assert.equal(r.code, 1, explain(r));
  assert.match(r.stderr, /beta1: after-switch hook of web failed \(exit 7\)/);
  assert.match(r.stderr, /automatic rollback done/);
  assertNoFailures(load);
  assert.equal(await recordedLiveSlot(p.project.dir, 'beta'), liveBefore);
  const points = await ran();
  assert.deepEqual(points.beta2, ['before-copy', 'after-copy', 'before-start', 'after-start', 'before-switch', 'after-switch', 'after-rollback', 'failed', 'finished']);
  assert.equal((await envOf('after-rollback', 'local'))!.UPDATESERVER_OLD_SLOT, liveBefore);
  assert.equal((await envOf('finished', 'local'))!.UPDATESERVER_RESULT, 'rolled-back');
  await rm(join(p.lab.hosts.find((h) => h.name === 'beta1')!.srv, 'hooks', 'fail-after-switch'));
});
