/*
 * `updateserver init` and the offline half of `updateserver check`: the starter project is complete,
 * valid and not overwritten by accident; the probe of a service root reads a real directory tree;
 * the report is plain text unless a terminal shows colours.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkStage } from '../../src/check/check.js';
import { parseRootProbe, rootProbeCommand } from '../../src/check/hosts.js';
import { loadPipeline } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { initProject } from '../../src/init/init.js';
import { PACKAGE_DIR } from '../../src/package-dir.js';
import { renderCheck } from '../../src/cli/check.js';
import { paint, wantsColor } from '../../src/cli/output.js';
import { LocalTransport } from '../../src/transport/local.js';

async function inTemp<T>(body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'updateserver-init-'));
  try {
    return await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('init writes the starter project: two valid stages, health checks, template, migration, systemd unit, schemas', () => inTemp(async (dir) => {
  const result = await initProject(dir);
  assert.deepEqual(result.written.sort(), [
    'healthchecks/web.yaml', 'lb-templates/haproxy.cfg', 'migrations/web/V0001__create_example.sql', 'profiles/dev.yaml', 'profiles/prod.yaml',
    'schema/healthchecks.schema.json', 'schema/profile.schema.json', 'systemd/updateserver-web@.service',
  ]);
  const chain = await loadPipeline({ dir, stateDir: join(dir, '.updateserver') }, 'prod');
  assert.deepEqual(chain.map((s) => s.name), ['prod', 'dev']);
  assert.equal(chain[0]!.services.web!.checks.pre[0]!.name, 'health');
  for (const [file, schema] of [['profiles/dev.yaml', 'profile'], ['profiles/prod.yaml', 'profile'], ['healthchecks/web.yaml', 'healthchecks']]) {
    const first = (await readFile(join(dir, file!), 'utf8')).split('\n')[0];
    assert.equal(first, `# yaml-language-server: $schema=../schema/${schema}.schema.json`, file);
  }
  assert.equal(await readFile(join(dir, 'lb-templates/haproxy.cfg'), 'utf8'), await readFile(join(PACKAGE_DIR, 'lb-templates/haproxy.cfg'), 'utf8'));
}));

test('init refuses to overwrite, naming every file that exists, and writes nothing; --force overwrites', () => inTemp(async (dir) => {
  await mkdir(join(dir, 'profiles'));
  await writeFile(join(dir, 'profiles', 'dev.yaml'), 'mine\n');
  await writeFile(join(dir, 'unrelated.txt'), 'x');
  const err = await initProject(dir).then(() => assert.fail('init overwrote'), (e: unknown) => e);
  assert.ok(err instanceof ConfigError);
  assert.deepEqual(err.issues.map((i) => i.file), [join(dir, 'profiles', 'dev.yaml')]);
  assert.match(err.hint ?? '', /--force/);
  assert.equal(await readFile(join(dir, 'profiles', 'dev.yaml'), 'utf8'), 'mine\n');
  await assert.rejects(readFile(join(dir, 'profiles', 'prod.yaml')), { code: 'ENOENT' });
  const forced = await initProject(dir, { force: true });
  assert.deepEqual(forced.overwritten, ['profiles/dev.yaml']);
  assert.match(await readFile(join(dir, 'profiles', 'dev.yaml'), 'utf8'), /^# yaml-language-server/);
}));

test('check --offline on the starter: profiles, template and schemas ok; the missing source and a stale schema copy failed with their fix', () => inTemp(async (dir) => {
  await initProject(dir);
  await writeFile(join(dir, 'schema', 'profile.schema.json'), '{}\n');
  const report = await checkStage({ dir, stateDir: join(dir, '.updateserver') }, 'prod', { offline: true });
  const failed = report.findings.filter((f) => !f.ok);
  assert.equal(report.ok, false);
  assert.deepEqual(failed.map((f) => `${f.subject}/${f.check}`), ['source/directory', 'schema/schema/profile.schema.json']);
  assert.equal(failed[0]!.fix, `put the code to release in ${join(dir, 'app')}, or point profiles/dev.yaml: source.path at it`);
  assert.equal(failed[1]!.fix, `cp ${join(PACKAGE_DIR, 'schema/profile.schema.json')} ${join(dir, 'schema/profile.schema.json')}`);
  await mkdir(join(dir, 'app'));
  await cp(join(PACKAGE_DIR, 'schema'), join(dir, 'schema'), { recursive: true });
  const fixed = await checkStage({ dir, stateDir: join(dir, '.updateserver') }, 'prod', { offline: true });
  assert.deepEqual(fixed.findings.filter((f) => !f.ok), []);
  assert.ok(fixed.ok);
}));

test('check on a broken profile reports each issue with file, line and path, and probes nothing', () => inTemp(async (dir) => {
  await initProject(dir);
  const text = await readFile(join(dir, 'profiles', 'dev.yaml'), 'utf8');
  await writeFile(join(dir, 'profiles', 'dev.yaml'), text.replace('a: { port: 8001 }', 'a: { port: 80010 }'));
  const report = await checkStage({ dir, stateDir: join(dir, '.updateserver') }, 'dev');
  const failed = report.findings.filter((f) => !f.ok);
  assert.equal(failed.length, 1);
  assert.match(failed[0]!.detail, /^profiles\/dev\.yaml:\d+: services\.web\.slots\.a\.port: expected an integer 1-65535$/);
  assert.ok(!report.findings.some((f) => f.subject.startsWith('host ')), 'hosts were probed with an invalid profile');
}));

test('the root probe finds the nearest existing directory, its write access and free space', () => inTemp(async (dir) => {
  const local = new LocalTransport();
  const probe = async (root: string) => parseRootProbe((await local.exec(rootProbeCommand(root))).stdout);
  const deep = await probe(join(dir, 'srv', 'web'));
  assert.equal(deep?.dir, dir);
  assert.equal(deep?.writable, true);
  assert.ok((deep?.freeBytes ?? 0) > 0);
  await mkdir(join(dir, 'ro'));
  await chmod(join(dir, 'ro'), 0o555);
  // root may write anywhere; the probe reports what access(2) says for the user it runs as.
  const ro = await probe(join(dir, 'ro', 'web'));
  assert.equal(ro?.dir, join(dir, 'ro'));
  assert.equal(ro?.writable, process.getuid?.() === 0);
  assert.equal(parseRootProbe('garbage'), undefined);
}));

test('colour only on a terminal without NO_COLOR or TERM=dumb; the check report is plain text otherwise', () => {
  assert.equal(wantsColor({ isTTY: true }, {}), true);
  assert.equal(wantsColor({ isTTY: true }, { NO_COLOR: '1' }), false);
  assert.equal(wantsColor({ isTTY: true }, { NO_COLOR: '' }), true, 'an empty NO_COLOR does not count (no-color.org)');
  assert.equal(wantsColor({ isTTY: true }, { TERM: 'dumb' }), false);
  assert.equal(wantsColor({ isTTY: false }, {}), false);
  assert.equal(wantsColor({}, {}), false);
  assert.equal(paint({ isTTY: true }, 'red', 'x', {}), '\x1b[31mx\x1b[0m');
  assert.equal(paint({ isTTY: true }, 'red', 'x', { NO_COLOR: '1' }), 'x');
  const report = { stage: 'dev', ok: false, exitCode: 1 as const, findings: [
    { subject: 'host dev1', check: 'ssh', ok: true, detail: 'root@10.0.0.1:22' },
    { subject: 'host dev2', check: 'rsync', ok: false, detail: 'rsync is not installed', fix: 'apt-get install rsync' },
  ] };
  assert.equal(renderCheck(report, { isTTY: false }),
    'ok    host dev1  ssh    root@10.0.0.1:22\n' +
    'FAIL  host dev2  rsync  rsync is not installed\n' +
    '      fix: apt-get install rsync\n\n' +
    '1 of 2 checks failed; fix them and run `updateserver check dev` again.\n');
  assert.doesNotMatch(renderCheck(report, { isTTY: false }), /\x1b/);
});
