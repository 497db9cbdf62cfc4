/*
 * Bad `hooks:`, `vars:` and `notify.email` (issue 19) are bad input: refused before any connection with
 * exit status 2, naming the file, the line and the field; a good one loads with each service's hooks
 * after the stage's and each host's vars over the stage's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadProfile } from '../../src/config/load.js';
import type { Stage } from '../../src/config/model.js';
import { ConfigError, EXIT_BAD_INPUT } from '../../src/errors.js';

const BASE = [
  'source: { path: app }',
  'hosts: { web1: { address: 10.0.0.1 } }',
  'loadBalancers: { lb: { socket: /run/admin.sock, mapFile: /run/slots.map } }',
  'services:',
  '  web:',
  '    hosts: [web1]',
  '    root: /srv/web',
  '    listen: 8080',
  '    slots: { a: { port: 8001 }, b: { port: 8002 } }',
  '    start: ./server --port {port}',
];

async function load(extra: string[], serviceExtra: string[] = []): Promise<Stage> {
  const dir = await mkdtemp(join(tmpdir(), 'updateserver-hooks-config-'));
  try {
    await mkdir(join(dir, 'profiles'));
    await writeFile(join(dir, 'profiles', 'dev.yaml'), [...BASE, ...serviceExtra, ...extra, ''].join('\n'));
    return await loadProfile({ dir, stateDir: join(dir, '.updateserver') }, 'dev');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function refused(extra: string[], expected: RegExp, serviceExtra: string[] = []): Promise<void> {
  await assert.rejects(load(extra, serviceExtra), (err: unknown) => {
    assert.ok(err instanceof ConfigError, String(err));
    assert.equal(err.exitCode, EXIT_BAD_INPUT);
    assert.match(err.message, expected);
    return true;
  });
}

test('an unknown hook point is refused, naming the allowed ones', async () => {
  await refused(['hooks:', '  before-swtich: [{ run: echo }]'], /^profiles\/dev\.yaml:\d+: hooks\.before-swtich: unknown key \(allowed here: before-copy, after-copy, before-start, after-start, before-switch, after-switch, after-drain, after-rollback, failed, finished\)$/m);
  await refused([], /^profiles\/dev\.yaml:\d+: services\.web\.hooks\.on-switch: unknown key/m, ['    hooks: { on-switch: [{ run: echo }] }']);
});

test('a bad `on`, timeout, command, or an unknown key of a hook is refused with its field', async () => {
  await refused(['hooks: { after-switch: [{ run: echo, on: everywhere }] }'], /^profiles\/dev\.yaml:\d+: hooks\.after-switch\.0\.on: expected one of local, hosts, one-host$/m);
  await refused(['hooks: { after-switch: [{ run: echo, timeoutMs: 0 }] }'], /hooks\.after-switch\.0\.timeoutMs: expected a duration in milliseconds \(integer 1-3600000\)/);
  await refused(['hooks: { after-switch: [{ run: echo, timeoutMs: 1.5 }] }'], /hooks\.after-switch\.0\.timeoutMs: expected a duration/);
  await refused(['hooks: { after-switch: [{ run: "" }] }'], /hooks\.after-switch\.0\.run: expected a shell command/);
  await refused(['hooks: { after-switch: [{ on: local }] }'], /hooks\.after-switch\.0\.run: /);
  await refused(['hooks: { after-switch: [{ run: echo, when: always }] }'], /hooks\.after-switch\.0\.when: unknown key \(allowed here: run, on, timeoutMs, critical\)/);
  await refused(['hooks: { after-switch: { run: echo } }'], /hooks\.after-switch: expected a list of hooks/);
});

test('critical is refused outside after-switch, saying what a failure there does', async () => {
  await refused(['hooks: { before-switch: [{ run: echo, critical: true }] }'], /^profiles\/dev\.yaml:\d+: hooks\.before-switch\.0\.critical: critical applies to after-switch hooks only .*always stops the run when it fails$/m);
  await refused([], /services\.web\.hooks\.finished\.0\.critical: critical applies to after-switch hooks only .*failing is a warning/, ['    hooks: { finished: [{ run: echo, critical: true }] }']);
});

test('bad vars: names, multi-line values and maps are refused', async () => {
  await refused(['vars: { 1st: x }'], /vars\.1st: .*expected a variable name/);
  await refused(['vars: { a: "two\\nlines" }'], /vars\.a: the value holds a line break/);
  await refused(['vars: { a: { b: c } }'], /vars\.a: expected a single-line text, number or true\/false/);
});

test('notify.email: addresses, SMTP host and an unset password variable are checked; notify needs a webhook or an email', async () => {
  await refused(['notify:', '  email:', '    to: [not-an-address]', '    from: a@b.c', '    smtp: { host: smtp.example.com }'], /notify\.email\.to\.0: expected an e-mail address/);
  await refused(['notify:', '  email:', '    to: [a@b.c]', '    from: a@b.c', '    smtp: { host: "smtp example" }'], /notify\.email\.smtp\.host: expected a host name or IP address/);
  await refused(['notify:', '  email:', '    to: []', '    from: a@b.c', '    smtp: { host: h }'], /notify\.email\.to: expected at least one address/);
  delete process.env.UPDATESERVER_UNSET_SMTP_PASSWORD;
  await refused(['notify:', '  email:', '    to: [a@b.c]', '    from: a@b.c', '    smtp: { host: h, user: u, passwordEnv: UPDATESERVER_UNSET_SMTP_PASSWORD }'], /notify\.email\.smtp\.passwordEnv: environment variable UPDATESERVER_UNSET_SMTP_PASSWORD is not set/);
  await refused(['notify: { events: [failed] }'], /^profiles\/dev\.yaml:\d+: notify: expected a webhook, an email, or both$/m);
});

test('a good profile: service hooks follow the stage\'s, defaults filled in; host vars over the stage\'s; the SMTP password is a secret', async () => {
  process.env.UPDATESERVER_TEST_SMTP = 'pw';
  const stage = await load([
    'vars: { mail: false, port: 25, name: x }',
    'hooks: { after-switch: [{ run: announce, critical: true }] }',
    'notify: { email: { to: [a@b.c], from: u@b.c, smtp: { host: 10.0.0.9, user: u, passwordEnv: UPDATESERVER_TEST_SMTP } } }',
  ], ['    hooks: { after-switch: [{ run: purge, on: hosts }] }']);
  assert.deepEqual(stage.services.web!.hooks!['after-switch'], [
    { run: 'announce', on: 'local', timeoutMs: 60_000, critical: true, from: 'stage' },
    { run: 'purge', on: 'hosts', timeoutMs: 60_000, critical: false, from: 'web' },
  ]);
  assert.deepEqual(stage.vars, { mail: 'false', port: '25', name: 'x' });
  assert.deepEqual(stage.hosts.web1!.vars, { mail: 'false', port: '25', name: 'x' });
  const smtp = stage.notify!.email!.smtp;
  assert.deepEqual({ ...smtp, password: smtp.password?.reveal() }, { host: '10.0.0.9', port: 587, starttls: true, user: 'u', password: 'pw', caFile: undefined });
  assert.equal(JSON.stringify(stage.notify).includes('pw"'), false, 'the password is masked in JSON');
  assert.equal(stage.notify!.webhook, undefined);
  delete process.env.UPDATESERVER_TEST_SMTP;
});
