/*
 * Issue 15 through the command line (the bundle users run), without servers: every bad input exits 2
 * with `file[:line]: path: message` before anything is opened, and anything unforeseen is one line with
 * exit status 1 (the trace only with --verbose). The project's hosts are documentation addresses
 * (192.0.2.x) with a one-minute connect timeout: a command that tried to connect would not end within
 * the few seconds each of these takes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { REPO, spawnCli, type CliResult } from '../lab/spawn-cli.js';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';

type Result = CliResult;
const run = (project: string, ...args: string[]): Promise<Result> => spawnCli(project, args, { timeoutMs: 45_000 });

const explain = (r: Result) => `exit ${r.code} after ${r.ms} ms\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;

/** Bad input: exit 2, the expected line, no stack trace, no raw control character, quickly. */
function assertRefused(r: Result, expected: RegExp): void {
  assert.equal(r.code, 2, explain(r));
  assert.match(r.stderr, expected, explain(r));
  assert.doesNotMatch(r.stderr + r.stdout, /\n\s+at .*:\d+:\d+/, `a stack trace\n${explain(r)}`);
  // eslint-disable-next-line no-control-regex
  assert.doesNotMatch(r.stderr + r.stdout, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029]/, `a raw control character\n${explain(r)}`);
  // Far below the profile's one-minute connect timeout, even on a loaded machine: nothing was dialled.
  assert.ok(r.ms < 30_000, explain(r));
}

async function project(files: Record<string, string> = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'updateserver-cli-bad-'));
  await cp(join(REPO, 'starter'), dir, { recursive: true });
  await mkdir(join(dir, 'app'));
  for (const name of ['dev', 'prod']) {
    const file = join(dir, 'profiles', `${name}.yaml`);
    await writeFile(file, (await readFile(file, 'utf8')).replace('  knownHosts: ~/.ssh/known_hosts', '  knownHosts: ~/.ssh/known_hosts\n  connectTimeoutMs: 60000'));
  }
  for (const [f, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, f)), { recursive: true });
    await writeFile(join(dir, f), text);
  }
  return dir;
}

const withProject = async (files: Record<string, string>, body: (dir: string) => Promise<void>) => {
  const dir = await project(files);
  try { await body(dir); } finally { await rm(dir, { recursive: true, force: true }); }
};

test('kind 6: a --service the stage lacks is bad input for every command that takes one, refused before connecting', () => withProject({}, async (dir) => {
  const commands = [['prod', '--dry-run'], ['flip', 'prod'], ['purge', 'prod'], ['maintenance', 'prod', 'on']];
  const results = await Promise.all(commands.map((args) => run(dir, ...args, '--service', 'nope')));
  for (const r of results) assertRefused(r, /updateserver: command line: --service: unknown service "nope" in stage prod \(services: web\)/);
  const [ctor, esc] = await Promise.all([run(dir, 'prod', '--dry-run', '--service', 'constructor'), run(dir, 'prod', '--dry-run', '--service', 'x\x1b[2J')]);
  assertRefused(ctor, /--service: unknown service "constructor"/);
  // An argument's control characters are shown, never obeyed.
  assertRefused(esc, /unknown service "x\\u001b\[2J"|unknown service "x\\x1b\[2J"/);
}));

test('kind 6: other wrong arguments exit 2 rather than falling back to a default', () => withProject({}, async (dir) => {
  const cases: Array<[string[], RegExp]> = [
    [['history', 'prod', '--limit', 'abc'], /command line: --limit: expected an integer 1-100000, found "abc"/],
    [['migrate', 'status', 'prod', '--slot', 'c'], /command line: --slot: expected a or b, found "c"/],
    [['migrate', 'frobnicate', 'prod'], /command line: migrate: unknown action "frobnicate" \(status, resolve\)/],
    [['migrate', 'resolve', 'prod', 'web', '1'], /command line: service: service "web" has no database in prod/],
    [['prod', '--wait', 'soon'], /command line: --wait: expected a number of seconds/],
    [['purge', 'prod', '--keep', '1'], /command line: --keep: expected an integer 2-100/],
    [['maintenance', 'prod', 'sideways'], /command line: mode: "sideways" is not a maintenance mode/],
  ];
  const results = await Promise.all(cases.map(([args]) => run(dir, ...args)));
  results.forEach((r, i) => assertRefused(r, cases[i]![1]));
}));

test('kind 5: a misnamed migration or a version defined twice stops a dry run before connecting, named relative to the project', async () => {
  const prod = (await readFile(join(REPO, 'starter', 'profiles', 'prod.yaml'), 'utf8')).replace('    checks: web\n', '    checks: web\n    database: { engine: postgres }\n');
  await withProject({ 'profiles/prod.yaml': prod, 'migrations/web/V2-add.sql': 'select 1;\n', 'migrations/web/V1__again.sql': 'select 1;\n' }, async (dir) => {
    const r = await run(dir, 'prod', '--dry-run');
    assertRefused(r, /updateserver: migrations\/web\/V2-add\.sql: not a migration: expected a file named like V0003__add_index\.sql/);
    assert.match(r.stderr, /^migrations\/web\/V1__again\.sql: version 1 is defined twice \(also in migrations\/web\/V0001__create_example\.sql\)$/m);
    assert.ok(!r.stderr.includes(dir), explain(r));
    const check = await run(dir, 'check', '--offline', 'prod');
    assert.equal(check.code, 2, explain(check));
    assert.match(check.stdout, /FAIL {2}migrations web +files +migrations\/web\/V2-add\.sql: not a migration/);
    assert.ok(!/migrations web.*\n(.*\n)*?.*fix:/.exec(check.stdout)?.[0].includes(dir), explain(check));
  });
});

test('kinds 3 and 4: an alias bomb, a profile that is a directory, deep nesting: exit 2 naming the file, no stack trace', async () => {
  const bomb = 'a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n';
  const prod = await readFile(join(REPO, 'starter', 'profiles', 'prod.yaml'), 'utf8');
  await withProject({ 'profiles/prod.yaml': prod + bomb }, async (dir) => {
    assertRefused(await run(dir, 'prod', '--dry-run'), /updateserver: profiles\/prod\.yaml: aliases \(\*name\) expand to too much data/);
    const check = await run(dir, 'check', '--offline', 'prod');
    assert.equal(check.code, 2, explain(check));
    assert.doesNotMatch(check.stdout + check.stderr, /ReferenceError|\n\s+at /);
  });
  await withProject({ 'profiles/prod.yaml': `${prod}x: ${'['.repeat(50_000)}${']'.repeat(50_000)}\n` }, async (dir) => {
    const r = await run(dir, 'prod', '--dry-run');
    assertRefused(r, /profiles\/prod\.yaml(:\d+)?: /);
    assert.doesNotMatch(r.stderr, /Maximum call stack/);
  });
  await withProject({}, async (dir) => {
    await rm(join(dir, 'profiles', 'prod.yaml'));
    await mkdir(join(dir, 'profiles', 'prod.yaml'));
    const r = await run(dir, 'prod', '--dry-run');
    assertRefused(r, /updateserver: profiles\/prod\.yaml: is a directory, not a file/);
    assert.doesNotMatch(r.stderr, /EISDIR/);
  });
});

test('kind 7: check exits 2 on a broken profile (also --offline) and 1 on a failed check; its hint shell-quotes the stage', () => withProject({}, async (dir) => {
  const broken = await run(dir, 'check', '--offline', 'x;reboot');
  assert.equal(broken.code, 2, explain(broken));
  assert.match(broken.stdout, /run `updateserver check 'x;reboot'` again\./);
  await rm(join(dir, 'app'), { recursive: true });
  const failed = await run(dir, 'check', '--offline', 'prod');
  assert.equal(failed.code, 1, `a missing source directory is a failed check, not bad input\n${explain(failed)}`);
  const help = await run(dir, 'check', '--help');
  assert.match(help.stdout, /2 bad input: a profile, health-check file, migration file or the HAProxy template is wrong \(also with\s+--offline\)/);
  const readme = await readFile(join(REPO, 'README.md'), 'utf8');
  assert.match(readme, /\| `updateserver check <stage>` \|[^\n]*exit 0 all ok, 2 when a profile, health-check file, migration file or the HAProxy template is wrong \(also with `--offline`\), 1 when another check failed/);
}));

test('kind 8: anything unforeseen is one line naming what was being done, exit 1; the stack trace only with --verbose', () => withProject({}, async (dir) => {
  const file = join(dir, 'not-a-directory');
  await writeFile(file, '');
  const r = await run(dir, 'lock', 'acquire', 'prod', '--state-dir', join(file, 'state'));
  assert.equal(r.code, 1, explain(r));
  assert.match(r.stderr, /^updateserver: unexpected error while running `updateserver lock acquire prod`: Error: ENOTDIR: not a directory/m);
  assert.doesNotMatch(r.stderr, /\n\s+at /, explain(r));
  const verbose = await run(dir, 'lock', 'acquire', 'prod', '--state-dir', join(file, 'state'), '--verbose');
  assert.equal(verbose.code, 1, explain(verbose));
  assert.match(verbose.stderr, /\n\s+at /, `--verbose shows the trace\n${explain(verbose)}`);
  const json = await run(dir, 'lock', 'acquire', 'prod', '--state-dir', join(file, 'state'), '--json');
  assert.equal(json.code, 1);
  const answer = JSON.parse(json.stdout) as { ok: boolean; error: { message: string; exitCode: number } };
  assert.equal(answer.ok, false);
  assert.equal(answer.error.exitCode, 1);
  assert.match(answer.error.message, /^unexpected error while running `updateserver lock acquire prod`/);
}));
