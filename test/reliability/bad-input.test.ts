/*
 * Bad input on the real lab: a sample of broken profiles (the broken-profile corpus's kinds of mistake,
 * made in a profile that names the lab's hosts) and every file of the broken health-check corpus, given
 * to the command line as a user would. Each run exits 2 naming the file and the path, and the lab
 * hosts' sshd saw no connection at all: configuration is validated before anything is opened. A valid
 * profile does connect (so the count would have moved).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { sshdConnections } from '../lab/connections.js';
import { updateserver, type CliResult } from '../integration/cli.js';
import { HC, HEALTHCHECK_CASES, HEALTHCHECK_CORPUS, NOT_A_FILE } from '../unit/healthchecks-corpus-cases.js';

let p: Pipeline;
let beta: string;

const explain = (r: CliResult) => `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;

before(async () => {
  p = await startPipeline({ net: 140 });
  beta = await readFile(join(p.project.dir, 'profiles', 'beta.yaml'), 'utf8');
});

after(async () => {
  await p?.stop();
});

/** beta's profile with one edit; the edit must apply (a test that breaks nothing proves nothing). */
function edited(from: string, to: string): string {
  assert.ok(beta.includes(from), `beta.yaml has no ${JSON.stringify(from)}`);
  return beta.replace(from, to);
}

interface ProfileCase { name: string; files: Record<string, string>; stage: string; expected: RegExp }

const profileCases = (): ProfileCase[] => [
  { name: 'port out of range', stage: 'broken', files: { 'profiles/broken.yaml': edited('b: { port: 8002 }', 'b: { port: 70000 }') }, expected: /profiles\/broken\.yaml:\d+: services\.web\.slots\.b\.port: expected an integer 1-65535/ },
  { name: 'wrong type', stage: 'broken', files: { 'profiles/broken.yaml': edited('listen: 8080', 'listen: "eighty"') }, expected: /profiles\/broken\.yaml:\d+: services\.web\.listen: expected an integer 1-65535/ },
  { name: 'duplicate ports', stage: 'broken', files: { 'profiles/broken.yaml': edited('b: { port: 8002 }', 'b: { port: 8001 }') }, expected: /profiles\/broken\.yaml:\d+: services\.web\.slots\.b\.port: port 8001 on host "beta1" is already used by services\.web\.slots\.a/ },
  { name: 'slots sharing a directory', stage: 'broken', files: { 'profiles/broken.yaml': edited('a: { port: 8001 }\n      b: { port: 8002 }', 'a: { port: 8001, dir: /srv/web/live }\n      b: { port: 8002, dir: /srv/web/live }') }, expected: /profiles\/broken\.yaml:\d+: services\.web\.slots\.b\.dir: directory \/srv\/web\/live on host "beta1" is already used by services\.web\.slots\.a/ },
  { name: 'unknown key', stage: 'broken', files: { 'profiles/broken.yaml': `${beta}retries: 3\n` }, expected: /profiles\/broken\.yaml:\d+: retries: unknown key/ },
  { name: 'host name with shell metacharacters', stage: 'broken', files: { 'profiles/broken.yaml': edited('beta1: {', '"beta1;reboot": {') }, expected: /profiles\/broken\.yaml:\d+: hosts\.beta1;reboot: invalid name/ },
  { name: 'service name with a subshell', stage: 'broken', files: { 'profiles/broken.yaml': edited('  web:\n', '  $(reboot):\n') }, expected: /profiles\/broken\.yaml:\d+: services\.\$\(reboot\): invalid name/ },
  { name: 'start with an unknown placeholder', stage: 'broken', files: { 'profiles/broken.yaml': edited('--slot {slot}', '--slot {slot} {name}') }, expected: /profiles\/broken\.yaml:\d+: services\.web\.start: unknown placeholder \{name\}/ },
  { name: 'unknown stage', stage: 'broken', files: { 'profiles/broken.yaml': edited('from: dev', 'from: nowhere') }, expected: /profiles\/broken\.yaml(:\d+)?: from: unknown stage "nowhere"/ },
  { name: 'circular from:', stage: 'broken', files: { 'profiles/broken.yaml': edited('from: dev', 'from: broken2'), 'profiles/broken2.yaml': edited('from: dev', 'from: broken') }, expected: /profiles\/broken2\.yaml:\d+: from: circular "from:" chain: broken -> broken2 -> broken/ },
  { name: 'invalid stage name', stage: 'x;reboot', files: {}, expected: /profiles\/x;reboot\.yaml: "x;reboot" is not a valid stage name/ },
  // issue 15, each kind at least once
  { name: 'host reference named like a member of every object', stage: 'broken', files: { 'profiles/broken.yaml': edited('hosts: [beta1, beta2]', 'hosts: [beta1, constructor]') }, expected: /profiles\/broken\.yaml:\d+: services\.web\.hosts\.1: "constructor" is the name of a member of every JavaScript object/ },
  { name: '"__proto__" as a host name', stage: 'broken', files: { 'profiles/broken.yaml': edited('hosts:\n', 'hosts:\n  __proto__: { address: 127.0.140.99 }\n') }, expected: /profiles\/broken\.yaml:\d+: hosts\.__proto__: "__proto__" is the name of a member/ },
  { name: 'carriage return in start', stage: 'broken', files: { 'profiles/broken.yaml': edited('    start: node server.mjs', '    start: "node\\r server.mjs" #') }, expected: /profiles\/broken\.yaml:\d+: services\.web\.start: the value holds the control character U\+000D \(carriage return\)/ },
  { name: 'ANSI escape sequence in start', stage: 'broken', files: { 'profiles/broken.yaml': edited('    start: node server.mjs', '    start: "node \\e[2J server.mjs" #') }, expected: /services\.web\.start: the value holds the control character U\+001B \(ESC\)/ },
  { name: 'line separator in start', stage: 'broken', files: { 'profiles/broken.yaml': edited('    start: node server.mjs', '    start: node\u2028server.mjs') }, expected: /services\.web\.start: the value holds the control character U\+2028 \(line separator\)/ },
  { name: 'alias-expansion bomb', stage: 'broken', files: { 'profiles/broken.yaml': `${beta}a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n` }, expected: /profiles\/broken\.yaml: aliases \(\*name\) expand to too much data/ },
  { name: 'many keys in one map: a screenful of errors and a count', stage: 'broken', files: { 'profiles/broken.yaml': `${beta}${Array.from({ length: 3000 }, (_, i) => `k${i}: 1`).join('\n')}\n` }, expected: /profiles\/broken\.yaml:\d+: k19: unknown key[^\n]*\n\.\.\. and 2980 more problems in profiles\/broken\.yaml \(3000 in all; the first 20 are shown\)/ },
  { name: 'nesting far too deep', stage: 'broken', files: { 'profiles/broken.yaml': `${beta}x: ${'['.repeat(20_000)}${']'.repeat(20_000)}\n` }, expected: /profiles\/broken\.yaml(:\d+)?: (nested too deeply|x(\.0)+: nested deeper than 32 levels)/ },
  { name: 'a rule in the house style, not the schema library\'s', stage: 'broken', files: { 'profiles/broken.yaml': `${beta}parallel: 0\n` }, expected: /profiles\/broken\.yaml:\d+: parallel: expected an integer of at least 1, found the integer 0/ },
  { name: 'a duplicate key, named', stage: 'broken', files: { 'profiles/broken.yaml': edited('    listen: 8080\n', '    listen: 8080\n    listen: 8081\n') }, expected: /profiles\/broken\.yaml:\d+: services\.web\.listen: the key "listen" is given twice in this map/ },
  { name: 'a misnamed migration and a version defined twice', stage: 'broken', files: { 'profiles/broken.yaml': edited('    drainTimeoutMs: 5000\n', '    drainTimeoutMs: 5000\n    database: { engine: postgres, migrations: broken-migrations }\n'), 'broken-migrations/V0001__create.sql': 'create table t (id int);\n', 'broken-migrations/V1__again.sql': 'create table u (id int);\n', 'broken-migrations/V2-index.sql': 'create index i on t (id);\n' }, expected: /broken-migrations\/V1__again\.sql: version 1 is defined twice \(also in broken-migrations\/V0001__create\.sql\)\nbroken-migrations\/V2-index\.sql: not a migration|broken-migrations\/V2-index\.sql: not a migration[^\n]*\nbroken-migrations\/V1__again\.sql: version 1 is defined twice/ },
];

const withChecksText = () => edited('    drainTimeoutMs: 5000\n', '    drainTimeoutMs: 5000\n    checks: web\n');

async function withFiles<T>(files: Record<string, string>, body: () => Promise<T>): Promise<T> {
  for (const [file, text] of Object.entries(files)) {
    await mkdir(join(p.project.dir, file, '..'), { recursive: true });
    await writeFile(join(p.project.dir, file), text);
  }
  try {
    return await body();
  } finally {
    for (const file of Object.keys(files)) await rm(join(p.project.dir, file), { force: true });
  }
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test('broken profiles and health-check files exit 2 naming file and path, and the lab hosts see no connection', async (t) => {
  const before = await sshdConnections(p.lab.hosts);
  const expectRefused = (r: CliResult, expected: RegExp) => {
    assert.equal(r.code, 2, explain(r));
    assert.match(r.stderr, expected, explain(r));
    assert.doesNotMatch(r.stderr, /\n\s+at .*:\d+:\d+/, `a stack trace\n${explain(r)}`);
  };
  // Broken profiles, through promote, dry run and status: all validate before connecting.
  for (const c of profileCases()) {
    await t.test(`profile: ${c.name}`, () => withFiles(c.files, async () => {
      expectRefused(await updateserver(p.project.dir, c.stage), c.expected);
    }));
  }
  const dup = profileCases()[2]!;
  await t.test('profile: duplicate ports, with --dry-run and with status', () => withFiles(dup.files, async () => {
    expectRefused(await updateserver(p.project.dir, 'broken', '--dry-run'), dup.expected);
    expectRefused(await updateserver(p.project.dir, 'status', 'broken'), dup.expected);
  }));
  // Every broken health-check file of the corpus, referenced from a profile of the lab's hosts.
  const withChecks = withChecksText();
  const hcCases = HEALTHCHECK_CASES.filter((c) => c.file === HC && !NOT_A_FILE.has(c.case));
  assert.ok(hcCases.length >= 12, `only ${hcCases.length} health-check file cases`);
  for (const c of hcCases) {
    const text = await readFile(join(HEALTHCHECK_CORPUS, 'broken', c.case, HC), 'utf8');
    await t.test(`health checks: ${c.case}`, () => withFiles({ 'profiles/broken.yaml': withChecks, [HC]: text }, async () => {
      const where = `${escape(HC)}${c.line === undefined ? '' : `:${c.line}`}: ${c.path ? `${escape(c.path)}: ` : ''}.*${escape(c.message)}`;
      expectRefused(await updateserver(p.project.dir, 'broken'), new RegExp(where));
    }));
  }
  // A profile that is a directory; wrong arguments (a service the stage lacks, a name every object has).
  await t.test('profile: a directory instead of a file', async () => {
    await mkdir(join(p.project.dir, 'profiles', 'broken.yaml'), { recursive: true });
    try {
      const r = await updateserver(p.project.dir, 'broken', '--dry-run');
      expectRefused(r, /profiles\/broken\.yaml: is a directory, not a file/);
      assert.doesNotMatch(r.stderr, /EISDIR|\n\s+at /, explain(r));
    } finally {
      await rm(join(p.project.dir, 'profiles', 'broken.yaml'), { recursive: true, force: true });
    }
  });
  await t.test('arguments: --service naming a service the stage lacks, for promote, dry run, flip and refresh', async () => {
    const cases: Array<[string[], string]> = [
      [['beta', '--service', 'nope'], 'nope'],
      [['beta', '--dry-run', '--service', 'nope'], 'nope'],
      [['flip', 'beta', '--service', 'nope'], 'nope'],
      [['beta', '--dry-run', '--service', 'web,constructor'], 'constructor'],
    ];
    for (const [args, service] of cases) {
      expectRefused(await updateserver(p.project.dir, ...args), new RegExp(`command line: --service: unknown service "${service}" in stage beta`));
    }
    expectRefused(await updateserver(p.project.dir, 'refresh', 'dev', '--from', 'beta', '--service', 'nope'), /command line: --service: unknown service "nope" in stage dev/);
  });
  // Every health-check case whose file is not a file at all.
  for (const c of HEALTHCHECK_CASES.filter((x) => x.file === HC && NOT_A_FILE.has(x.case))) {
    await t.test(`health checks: ${c.case}`, async () => {
      await mkdir(join(p.project.dir, HC), { recursive: true });
      try {
        await withFiles({ 'profiles/broken.yaml': withChecksText() }, async () => {
          expectRefused(await updateserver(p.project.dir, 'broken'), new RegExp(`${escape(HC)}: ${escape(c.message)}`));
        });
      } finally {
        await rm(join(p.project.dir, HC), { recursive: true, force: true });
      }
    });
  }
  // The safety net: an error nobody foresaw (here the state directory under a file) is one line, exit 1.
  await t.test('an unforeseen error: one line naming what was being done, exit 1, no stack trace', async () => {
    const file = join(p.project.dir, 'not-a-directory');
    await writeFile(file, '');
    try {
      const r = await updateserver(p.project.dir, 'lock', 'acquire', 'beta', '--state-dir', join(file, 'state'));
      assert.equal(r.code, 1, explain(r));
      assert.match(r.stderr, /^updateserver: unexpected error while running `updateserver lock acquire beta`: Error: ENOTDIR/m, explain(r));
      assert.doesNotMatch(r.stderr, /\n\s+at /, explain(r));
    } finally {
      await rm(file, { force: true });
    }
  });
  assert.deepEqual(await sshdConnections(p.lab.hosts), before, 'a lab host saw a connection');

  // The control: the same profile with a valid health-check file does connect to every beta host.
  await withFiles({ 'profiles/broken.yaml': withChecksText(), [HC]: 'pre:\n  - name: health\n    http: { path: /health }\n' }, async () => {
    const r = await updateserver(p.project.dir, 'status', 'broken');
    assert.equal(r.code, 0, explain(r));
  });
  const afterwards = await sshdConnections(p.lab.hosts);
  for (const host of p.betaHosts) assert.ok(afterwards[host]! > before[host]!, `${host}: status opened no connection, so the count proves nothing`);
});
