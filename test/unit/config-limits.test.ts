/*
 * Issue 15, kind by kind, through the real loader: names every object has, control characters,
 * the YAML resource limits (size, aliases, width, depth), a profile that is not a file, messages in
 * the house style, and at most a screenful of errors. Each refusal is a ConfigError (exit status 2)
 * whose lines read `file[:line]: path: message`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadPipeline } from '../../src/config/load.js';
import { MAX_FILE_BYTES, MAX_SHOWN_ISSUES } from '../../src/config/limits.js';
import { printable } from '../../src/config/text.js';
import { checkMigrationFiles } from '../../src/config/migration-files.js';
import { ConfigError, EXIT_BAD_INPUT } from '../../src/errors.js';
import { renderTemplate } from '../../src/lb/template.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** The starter project with prod.yaml (or another file) replaced; returns the refusal, or fails when accepted. */
async function withStarter<T>(files: Record<string, string>, body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'updateserver-limits-'));
  try {
    await cp(join(REPO, 'starter'), dir, { recursive: true });
    for (const [f, text] of Object.entries(files)) {
      await mkdir(dirname(join(dir, f)), { recursive: true });
      await writeFile(join(dir, f), text);
    }
    return await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const prodText = () => readFile(join(REPO, 'starter', 'profiles', 'prod.yaml'), 'utf8');
const hcText = () => readFile(join(REPO, 'starter', 'healthchecks', 'web.yaml'), 'utf8');

async function refused(files: Record<string, string>, stage = 'prod'): Promise<{ err: ConfigError; ms: number }> {
  return withStarter(files, async (dir) => {
    // CPU time: what the validator costs, whatever else runs on the machine.
    const t0 = process.cpuUsage();
    const err = await loadPipeline({ dir, stateDir: join(dir, '.u') }, stage).then(() => assert.fail('accepted'), (e: unknown) => e);
    const used = process.cpuUsage(t0);
    const ms = (used.user + used.system) / 1000;
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${err instanceof Error ? err.stack : String(err)}`);
    assert.equal(err.exitCode, EXIT_BAD_INPUT);
    assert.doesNotMatch(err.message, /\n\s+at /);
    return { err, ms };
  });
}

const edit = async (from: string, to: string) => {
  const text = await prodText();
  assert.ok(text.includes(from), `prod.yaml has no ${from}`);
  return { 'profiles/prod.yaml': text.replace(from, to) };
};

// ---- 1. names every JavaScript object has

test('a host, service or load balancer named like a member of every object is refused as a name', async () => {
  const { err } = await refused(await edit('prod1: { address: 192.0.2.21 }', 'constructor: { address: 192.0.2.21 }'));
  assert.match(err.message, /^profiles\/prod\.yaml:\d+: hosts\.constructor: "constructor" is the name of a member of every JavaScript object; choose another name/m);
  const svc = await refused(await edit('  web:\n    hosts', '  constructor:\n    hosts'));
  assert.match(svc.err.message, /services\.constructor: "constructor" is the name of a member/);
});

test('references to names every object has are unknown, not declared: hosts of a service, host of a load balancer, health checks', async () => {
  for (const name of ['constructor', 'toString', 'valueOf', 'hasOwnProperty', '__proto__']) {
    const { err } = await refused(await edit('hosts: [prod1, prod2]', `hosts: [prod1, ${name}]`));
    assert.ok(err.issues.some((i) => i.path === 'services.web.hosts.1'), `${name}: ${err.message}`);
    const lb = await refused(await edit('host: prod1 ', `host: ${name} `));
    assert.ok(lb.err.issues.some((i) => i.path === 'loadBalancers.lb.host'), `${name}: ${lb.err.message}`);
    const checks = await refused(await edit('checks: web', `checks: ${name}`));
    assert.ok(checks.err.issues.some((i) => i.path === 'services.web.checks'), `${name}: ${checks.err.message}`);
  }
  const stage = await refused({}, 'constructor');
  assert.match(stage.err.message, /profiles\/constructor\.yaml: stage "constructor" is the name of a member/);
});

test('a "__proto__" or "toString" key is refused wherever it appears, never dropped nor made a prototype', async () => {
  const { err } = await refused(await edit('hosts:\n', 'hosts:\n  __proto__: { address: 192.0.2.99 }\n'));
  assert.match(err.message, /^profiles\/prod\.yaml:\d+: hosts\.__proto__: "__proto__" is the name of a member of every JavaScript object; choose another name$/m);
  const header = await refused({ 'healthchecks/web.yaml': `${await hcText()}`.replace('http: { path: /health, status: [200] }', 'http: { path: /health, headers: { toString: x } }') });
  assert.match(header.err.message, /^healthchecks\/web\.yaml:\d+: pre\.0\.http\.headers\.toString: "toString" is the name of a member/m);
  assert.equal(({} as Record<string, unknown>).address, undefined, 'Object.prototype was not touched');
});

test('the HAProxy template sees only the values of its view, not members of every object', () => {
  assert.throws(() => renderTemplate('{{constructor}}', { a: '1' }), /\{\{constructor\}\} is not a value the template can use/);
  assert.throws(() => renderTemplate('{{#toString}}x{{/toString}}', { a: '1' }), /is not a list/);
});

// ---- 2. control characters

test('control characters and line separators are refused in start, in any command, path, name or header, and in keys', async () => {
  const cases: Array<[string, string, RegExp]> = [
    ['start: node server.mjs', 'start: "node server.mjs\\r" #', /services\.web\.start: the value holds the control character U\+000D \(carriage return\)/],
    ['start: node server.mjs', 'start: "node\\0 server.mjs" #', /U\+0000 \(NUL\)/],
    ['start: node server.mjs', 'start: "node \\e[2J server.mjs" #', /U\+001B \(ESC\)/],
    ['start: node server.mjs', 'start: "node \\L server.mjs" #', /U\+2028 \(line separator\)/],
    ['start: node server.mjs', 'start: "node \\P server.mjs" #', /U\+2029 \(paragraph separator\)/],
    ['start: node server.mjs', 'start: "node \\N server.mjs" #', /U\+0085 \(NEL\)/],
    ['start: node server.mjs', 'start: "node \\x9b31m server.mjs" #', /U\+009B \(CSI\)/],
    ['knownHosts: ~/.ssh/known_hosts', 'knownHosts: "~/.ssh/known\\e]0;x\\a"', /ssh\.knownHosts: the value holds the control character U\+001B/],
    ['mapFile: /etc/haproxy/backends.map', 'mapFile: "/etc/haproxy/\\bmap"', /loadBalancers\.lb\.mapFile: .*U\+0008/],
    ['prod1: {', '"prod\\e1": {', /hosts\.prod\\x1b1: the key holds the control character U\+001B/],
  ];
  for (const [from, to, expected] of cases) {
    const { err } = await refused(await edit(from, to));
    assert.match(err.message, expected, to);
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(err.message, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029]/, `the message itself carries a control character: ${to}`);
  }
  // "start is one line" holds for every line-breaking character, \n included.
  const lf = await refused(await edit('start: node server.mjs', 'start: "node\\nserver.mjs" #'));
  assert.match(lf.err.message, /services\.web\.start: the value holds a line break; only one line is allowed here/);
  // So is a header value (a line feed there would split the request), and any name or path.
  const header = await refused({ 'healthchecks/web.yaml': (await hcText()).replace('http: { path: /health, status: [200] }', 'http: { path: /health, headers: { X-A: "a\\nInjected: 1" } }') });
  assert.match(header.err.message, /pre\.0\.http\.headers\.X-A: the value holds a line break/);
  const socket = await refused(await edit('socket: /run/haproxy/admin.sock', 'socket: "/run/haproxy/admin\\n.sock"'));
  assert.match(socket.err.message, /loadBalancers\.lb\.socket: the value holds a line break/);
});

test('control characters are refused in health-check headers, bodies and commands', async () => {
  const text = `${await hcText()}\n`;
  const base = text.replace(/^pre:.*\n/m, 'pre:\n  - name: ctl\n    http: { path: /x, headers: { X-A: "a\\eb" } }\n');
  const { err } = await refused({ 'healthchecks/web.yaml': base });
  assert.match(err.message, /^healthchecks\/web\.yaml:\d+: pre\.0\.http\.headers\.X-A: the value holds the control character U\+001B/m);
  const cmd = text.replace(/^pre:.*\n/m, 'pre:\n  - name: ctl\n    command: { run: "true\\rfalse" }\n');
  assert.match((await refused({ 'healthchecks/web.yaml': cmd })).err.message, /pre\.0\.command\.run: .*U\+000D/);
});

test('printable() shows control characters as escapes and keeps line feeds only in multi-line output', () => {
  assert.equal(printable('a\x1b[2Jb\u2028c\r\0'), 'a\\x1b[2Jb\\u2028c\\x0d\\x00');
  assert.equal(printable('line 1\nline\t2\x1b', { multiLine: true }), 'line 1\nline\t2\\x1b');
  assert.equal(printable('a\nb'), 'a\\x0ab');
});

// ---- 3. YAML resource limits

test('an alias-expansion bomb is refused in bounded time, naming the file', async () => {
  const bomb = 'a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n';
  const { err, ms } = await refused({ 'profiles/prod.yaml': `${await prodText()}${bomb}` });
  assert.equal(err.message, 'profiles/prod.yaml: aliases (*name) expand to too much data (more than 100 uses of aliases); write the values out');
  assert.ok(ms < 1000, `${ms} ms`);
  const hc = await refused({ 'healthchecks/web.yaml': `${await hcText()}${bomb}` });
  assert.match(hc.err.message, /^healthchecks\/web\.yaml: aliases/);
});

test('a map of 6,000 keys is refused in about a second, with a screenful of errors and a count', async () => {
  const many = Array.from({ length: 6_000 }, (_, i) => `  h${i}: { address: 10.0.0.1, extra: 1 }\n`).join('');
  const text = (await prodText()).replace('hosts:\n', `hosts:\n${many}`);
  assert.ok(Buffer.byteLength(text) < MAX_FILE_BYTES);
  const { err, ms } = await refused({ 'profiles/prod.yaml': text });
  assert.equal(err.issues.length, 6_000);
  const lines = err.message.split('\n');
  assert.equal(lines.length, MAX_SHOWN_ISSUES + 1);
  assert.equal(lines.at(-1), `... and ${6_000 - MAX_SHOWN_ISSUES} more problems in profiles/prod.yaml (6000 in all; the first ${MAX_SHOWN_ISSUES} are shown)`);
  assert.ok(ms < 2000, `${Math.round(ms)} ms of CPU`);
});

test('a file larger than the bound is refused before it is read', async () => {
  const { err, ms } = await refused({ 'profiles/prod.yaml': `${await prodText()}# ${'x'.repeat(MAX_FILE_BYTES)}\n` });
  assert.match(err.message, /^profiles\/prod\.yaml: is \d+ bytes; a configuration file may hold at most 262144 bytes \(256 KiB\)$/);
  assert.ok(ms < 500, `${ms} ms`);
});

test('deep nesting is refused as such, never as "Maximum call stack size exceeded"', async () => {
  const deepMap = await refused({ 'profiles/prod.yaml': `${await prodText()}x: ${'{a: '.repeat(100)}1${'}'.repeat(100)}\n` });
  assert.match(deepMap.err.message, /^profiles\/prod\.yaml:\d+: x(\.a){31}: nested deeper than 32 levels; no setting is that deep$/);
  const deepList = await refused({ 'profiles/prod.yaml': `${await prodText()}x: ${'['.repeat(100_000)}${']'.repeat(100_000)}\n` });
  assert.doesNotMatch(deepList.err.message, /call stack/i);
  assert.match(deepList.err.message, /^profiles\/prod\.yaml(:\d+)?: (nested too deeply to read|x(\.0){31}: nested deeper)/);
});

// ---- 4. not a regular file

test('a profile or health-check file that is a directory or a pipe is refused, naming it', async () => {
  await withStarter({}, async (dir) => {
    await rm(join(dir, 'profiles', 'prod.yaml'));
    await mkdir(join(dir, 'profiles', 'prod.yaml'));
    const err = await loadPipeline({ dir, stateDir: join(dir, '.u') }, 'prod').catch((e: unknown) => e);
    assert.ok(err instanceof ConfigError);
    assert.equal(err.message, 'profiles/prod.yaml: is a directory, not a file');
    await rm(join(dir, 'healthchecks', 'web.yaml'));
    execFileSync('mkfifo', [join(dir, 'healthchecks', 'web.yaml')]);
    const fifo = await loadPipeline({ dir, stateDir: join(dir, '.u') }, 'dev').catch((e: unknown) => e);
    assert.ok(fifo instanceof ConfigError);
    assert.equal(fifo.message, 'healthchecks/web.yaml: is not a regular file (a device, a pipe or a socket)');
  });
});

// ---- 5. migrations before the first connection, by project-relative path

test('a misnamed migration and a version defined twice are bad input, named relative to the project', async () => {
  const text = (await prodText()).replace('    checks: web\n', '    checks: web\n    database: { engine: postgres }\n');
  await withStarter({ 'profiles/prod.yaml': text, 'migrations/web/V2-add.sql': 'select 1;\n', 'migrations/web/V1__again.sql': 'select 1;\n' }, async (dir) => {
    const project = { dir, stateDir: join(dir, '.u') };
    const [stage] = await loadPipeline(project, 'prod');
    const err = await checkMigrationFiles(project, stage!).catch((e: unknown) => e);
    assert.ok(err instanceof ConfigError);
    assert.equal(err.exitCode, EXIT_BAD_INPUT);
    assert.deepEqual(err.issues.map((i) => `${i.file}: ${i.message.split(':')[0]}`), [
      'migrations/web/V2-add.sql: not a migration',
      'migrations/web/V1__again.sql: version 1 is defined twice (also in migrations/web/V0001__create_example.sql)',
    ]);
    assert.ok(!err.message.includes(dir), err.message);
  });
});

// ---- 7. messages in the house style

test('rules without a message of their own speak the house style, not the schema library', async () => {
  const cases: Array<[string, string, string]> = [
    ['keepReleases', 'keepReleases: 1', 'keepReleases: expected an integer of at least 2, found the integer 1'],
    ['parallel', 'parallel: 0', 'parallel: expected an integer of at least 1, found the integer 0'],
    ['serial', 'serial: yes', 'serial: expected true or false, found the text "yes"'],
    ['notify', 'notify: []', 'notify: expected a map, found a list'],
  ];
  for (const [, line, expected] of cases) {
    const { err } = await refused({ 'profiles/prod.yaml': `${await prodText()}${line}\n` });
    assert.ok(err.message.includes(expected), `${line}: ${err.message}`);
    assert.doesNotMatch(err.message, /Invalid input|Too small|Too big|received|expected number|>=/);
  }
  const missing = await refused(await edit('    slots:\n      a: { port: 8001 }\n      b: { port: 8002 }\n', ''));
  assert.match(missing.err.message, /services\.web\.slots: (missing: expected a map|expected slots a and b)/);
  const jobs = await refused({ 'profiles/prod.yaml': (await prodText()).replace('    checks: web\n', '    checks: web\n    database: { engine: postgres, jobs: 0 }\n') });
  assert.match(jobs.err.message, /services\.web\.database\.jobs: expected an integer of at least 1, found the integer 0$/m);
});

test('a duplicate key is named, with the line of its first occurrence', async () => {
  const { err } = await refused(await edit('    listen: 8080\n', '    listen: 8080\n    listen: 8081\n'));
  assert.match(err.message, /^profiles\/prod\.yaml:(\d+): services\.web\.listen: the key "listen" is given twice in this map \(first on line \d+\); keep one$/);
});
