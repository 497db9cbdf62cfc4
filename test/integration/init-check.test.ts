/*
 * From nothing to a release with the starter files (issue 8): `updateserver init` in an empty
 * directory, the starter edited to point at the lab (net 81: dev1; prod1 and prod2 behind an HAProxy
 * reached through prod1's SSH connection), `updateserver check` reporting what is broken with the fix,
 * the fixes applied exactly as printed, then `check` all ok and `updateserver dev` and
 * `updateserver prod` promoting with the starter's profiles, health checks and HAProxy template.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { get } from 'node:http';
import { loadProfile } from '../../src/config/load.js';
import { loadHaproxyTemplate, renderHaproxyConfig } from '../../src/lb/config.js';
import { runLocal } from '../../src/transport/local.js';
import { startLab, type Lab } from '../lab/lab.js';
import { FIXTURE_APP } from '../lab/pipeline.js';
import { updateserver, type CliResult, explain } from './cli.js';

const NET = 81;
const ADDR = { dev1: `127.0.${NET}.11`, prod1: `127.0.${NET}.21`, prod2: `127.0.${NET}.22`, devLb: `127.0.${NET}.1`, prodLb: `127.0.${NET}.2` };

interface Finding { subject: string; check: string; ok: boolean; detail: string; fix?: string }
interface Report { stage: string; ok: boolean; findings: Finding[] }

let lab: Lab;
let project: string;


function served(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

async function check(stage: string): Promise<{ r: CliResult; report: Report }> {
  const r = await updateserver(project, 'check', stage, '--json');
  return { r, report: JSON.parse(r.stdout) as Report };
}

const failures = (report: Report) => report.findings.filter((f) => !f.ok);

async function edit(file: string, replacements: Array<[string, string]>): Promise<void> {
  let text = await readFile(join(project, file), 'utf8');
  for (const [from, to] of replacements) {
    assert.ok(text.includes(from), `${file} has no "${from}"`);
    text = text.split(from).join(to);
  }
  await writeFile(join(project, file), text);
}

before(async () => {
  lab = await startLab({ hosts: [{ name: 'dev1', address: ADDR.dev1 }, { name: 'prod1', address: ADDR.prod1 }, { name: 'prod2', address: ADDR.prod2 }] });
  project = join(lab.dir, 'project');
});

after(async () => {
  await lab?.stop();
});

test('init in an empty directory, check names what is broken with its fix, the fixes make it all ok, then dev and prod promote with the starter files', async () => {
  const init = await updateserver(project, 'init');
  assert.equal(init.code, 0, explain(init));
  assert.deepEqual((await readdir(project)).sort(), ['healthchecks', 'lb-templates', 'migrations', 'profiles', 'schema', 'systemd']);
  const again = await updateserver(project, 'init');
  assert.equal(again.code, 2, explain(again));
  assert.match(again.stderr, /profiles\/dev\.yaml: exists already/);

  // The starter pointed at the lab, as a user would edit it. known_hosts lacks prod2's key, and
  // prod's socket path is wrong: the two things check must find.
  await cp(FIXTURE_APP, join(project, 'app'), { recursive: true });
  const labKnownHosts = (await readFile(lab.knownHosts, 'utf8')).split('\n').filter(Boolean);
  await writeFile(join(project, 'known_hosts'), labKnownHosts.filter((l) => !l.startsWith(`[${ADDR.prod2}]:2222 `)).map((l) => `${l}\n`).join(''));
  const ssh: Array<[string, string]> = [['user: deploy', 'user: root'], ['port: 22\n', 'port: 2222\n'], ['key: ~/.ssh/id_ed25519', `key: ${lab.keyFile}`], ['knownHosts: ~/.ssh/known_hosts', 'knownHosts: known_hosts']];
  const lbFiles = (name: string, socket = 'admin.sock'): Array<[string, string]> => [
    ['/run/haproxy/admin.sock', join(lab.dir, `haproxy-${name}`, socket)], ['/etc/haproxy/backends.map', join(lab.dir, `haproxy-${name}`, 'backends.map')]];
  await edit('profiles/dev.yaml', [...ssh, ...lbFiles('dev'), ['192.0.2.11', ADDR.dev1], ['192.0.2.10', ADDR.devLb]]);
  await edit('profiles/prod.yaml', [...ssh, ...lbFiles('prod', 'wrong.sock'), ['192.0.2.21', ADDR.prod1], ['192.0.2.22', ADDR.prod2], ['192.0.2.20', ADDR.prodLb]]);

  // Each stage's HAProxy runs the starter's template rendered from the starter's profile (on its real socket).
  const p = { dir: project, stateDir: join(project, '.updateserver') };
  for (const name of ['dev', 'prod']) {
    const stage = await loadProfile(p, name);
    await lab.startHaproxy(name, (paths) => renderHaproxyConfig(stage, { ...stage.loadBalancers.lb!, socket: paths.socket }, { template: loadHaproxyTemplate(p) }));
  }

  const dev = await check('dev');
  assert.equal(dev.r.code, 0, explain(dev.r));
  assert.deepEqual(failures(dev.report), []);
  const devChecks = dev.report.findings.map((f) => `${f.subject}/${f.check}`);
  for (const expected of ['profiles/valid', 'source/directory', 'this machine/rsync', 'host dev1/ssh', 'host dev1/rsync', 'host dev1/web write access', 'host dev1/web disk',
    'load balancer lb/template', 'load balancer lb/runtime API', 'load balancer lb/level', 'load balancer lb/map', 'load balancer lb/map file']) {
    assert.ok(devChecks.includes(expected), `check dev did not report ${expected}:\n${devChecks.join('\n')}`);
  }

  const broken = await check('prod');
  assert.equal(broken.r.code, 1, explain(broken.r));
  const found = failures(broken.report);
  assert.deepEqual(found.map((f) => `${f.subject}/${f.check}`), ['host prod2/host key', 'load balancer lb/runtime API'], JSON.stringify(found, null, 2));
  const [hostKey, socket] = found as [Finding, Finding];
  assert.match(hostKey.detail, new RegExp(`unknown host key: \\[${ADDR.prod2.replace(/\./g, '\\.')}\\]:2222 is not in `));
  const keyscan = `ssh-keyscan -p 2222 ${ADDR.prod2} >> ${join(project, 'known_hosts')}`;
  assert.ok(hostKey.fix?.endsWith(keyscan), hostKey.fix);
  assert.match(socket.detail, /wrong\.sock on host prod1: there is no such file/);
  assert.match(socket.fix ?? '', /set loadBalancers\.lb\.socket in profiles\/prod\.yaml/);
  // The same report for people: every failure followed by its fix, no colour codes in a pipe.
  const text = await updateserver(project, 'check', 'prod');
  assert.equal(text.code, 1, explain(text));
  assert.match(text.stdout, /FAIL {2}host prod2 +host key +unknown host key[^\n]*\n {6}fix: [^\n]*ssh-keyscan -p 2222/);
  assert.match(text.stdout, /2 of \d+ checks failed/);
  assert.doesNotMatch(text.stdout, /\x1b\[/);

  // The fixes, as printed: the ssh-keyscan line (after comparing the fingerprint, which the lab's key is), and the socket.
  const fingerprint = /offered \S+ (SHA256:\S+?)[,.]/.exec(hostKey.detail)?.[1];
  const keygen = await runLocal(['ssh-keygen', '-lf', join(lab.dir, 'hosts', 'prod2', 'ssh_host_ed25519_key.pub')]);
  assert.ok(fingerprint && keygen.stdout.includes(fingerprint), `${hostKey.detail}\n${keygen.stdout}${keygen.stderr}`);
  const scanned = await runLocal(['sh', '-c', keyscan]);
  assert.equal(scanned.code, 0, scanned.stderr);
  await edit('profiles/prod.yaml', [['wrong.sock', 'admin.sock']]);

  const fixed = await check('prod');
  assert.equal(fixed.r.code, 0, explain(fixed.r));
  assert.deepEqual(failures(fixed.report), []);
  assert.ok(fixed.report.findings.some((f) => f.subject === 'load balancer lb' && f.check === 'runtime API' && f.detail.includes('(host prod1)')), 'prod\'s HAProxy is reached through prod1');

  const first = await updateserver(project, 'dev');
  assert.equal(first.code, 0, explain(first));
  const prod = await updateserver(project, 'prod');
  assert.equal(prod.code, 0, explain(prod));
  const answer = await served(`http://${ADDR.prodLb}:8080/`);
  assert.equal(answer.status, 200, answer.body);
  assert.match(answer.body, /"slot":"b"/);
});

test('check probes a service\'s database read-only: server version and which slot databases exist, or the fix when the server cannot be reached', async () => {
  const original = await readFile(join(project, 'profiles', 'dev.yaml'), 'utf8');
  const withDatabase = (engine: string, port: number) => original.replace(/^ {4}checks: web.*\n/m, [
    '    checks: web',
    '    database:',
    `      engine: ${engine}`,
    `      port: ${port}`,
    '      names: { a: ustest_ops_web_a, b: ustest_ops_web_b }',
    '',
  ].join('\n'));
  try {
    for (const [engine, port, product] of [['postgres', 5432, /PostgreSQL \d+/], ['mysql', 3306, /\d+\.\d+\.\d+/]] as const) {
      await writeFile(join(project, 'profiles', 'dev.yaml'), withDatabase(engine, port));
      const { r, report } = await check('dev');
      assert.equal(r.code, 0, explain(r));
      const connect = report.findings.find((f) => f.subject === 'database web' && f.check === 'connect');
      assert.ok(connect?.ok, JSON.stringify(report.findings, null, 2));
      assert.match(connect.detail, product);
      const slots = report.findings.find((f) => f.subject === 'database web' && f.check === 'slot databases');
      assert.equal(slots?.detail, 'ustest_ops_web_a, ustest_ops_web_b will be created by the first promotion');
    }
    await writeFile(join(project, 'profiles', 'dev.yaml'), withDatabase('postgres', 5499));
    const { r, report } = await check('dev');
    assert.equal(r.code, 1, explain(r));
    assert.deepEqual(failures(report).map((f) => `${f.subject}/${f.check}`), ['database web/connect']);
    assert.match(failures(report)[0]!.detail, /postgres:\/\/postgres@127\.0\.0\.1:5499\/postgres: .*ECONNREFUSED/);
    assert.match(failures(report)[0]!.fix ?? '', /check that postgres runs on 127\.0\.0\.1:5499/);
  } finally {
    await writeFile(join(project, 'profiles', 'dev.yaml'), original);
  }
});
