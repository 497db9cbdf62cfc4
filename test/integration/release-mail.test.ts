/*
 * The release mail on the lab (issue 19): a real SMTP server (smtp-server, the library Nodemailer's
 * authors keep) on 127.0.41.1 offers STARTTLS with a certificate of its own CA and requires a login.
 * beta's profile sends the release mail there, the password taken from an environment variable. Proven:
 * the mail reaches the listed recipients over TLS with the right subject and the release name, the
 * slots, the counted file changes and the git commits since the previous live release in its body, the password is
 * never printed; an unreachable SMTP server is only a warning and the promotion succeeds.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SMTPServer } from 'smtp-server';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { updateserver, explain } from './cli.js';

const NET = 41;
const SMTP_ADDRESS = `127.0.${NET}.1`;
const PASSWORD = 'mail-secret-Zq81';
const TO = ['releases@example.com', 'ops@example.com'];

interface Received { from: string; to: string[]; secure: boolean; user: string | undefined; raw: string }

let p: Pipeline;
let server: SMTPServer;
let port = 0;
let received: Received[] = [];

/** The text of a (possibly quoted-printable) message body. */
function bodyOf(raw: string): string {
  const body = raw.slice(raw.indexOf('\r\n\r\n') + 4);
  const text = /Content-Transfer-Encoding: quoted-printable/i.test(raw)
    ? body.replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)))
    : body;
  return text.replace(/\r\n/g, '\n');
}
const header = (raw: string, name: string) => new RegExp(`^${name}: (.*)$`, 'mi').exec(raw)?.[1]?.trim();

/** dev releases the app's git repository at main: each release is a commit, named with it ({rev}). */
const git = (...args: string[]) => execFileSync('git', ['-C', p.appDir, '-c', 'user.name=Lab', '-c', 'user.email=lab@example.com', ...args], { encoding: 'utf8' });

async function newRelease(change: () => Promise<void>, message = 'a release'): Promise<void> {
  await change();
  git('add', '-A');
  git('commit', '-q', '--allow-empty', '-m', message);
  const dev = await updateserver(p.project.dir, 'dev');
  assert.equal(dev.code, 0, explain(dev));
}

async function useSmtpPort(smtpPort: number): Promise<void> {
  const file = join(p.project.dir, 'profiles', 'beta.yaml');
  await writeFile(file, (await readFile(file, 'utf8')).replace(/port: \d+, user: releases/, `port: ${smtpPort}, user: releases`));
}

before(async () => {
  p = await startPipeline({ net: NET });
  execFileSync('git', ['init', '-q', '-b', 'main', p.appDir]);
  const devFile = join(p.project.dir, 'profiles', 'dev.yaml');
  await writeFile(devFile, (await readFile(devFile, 'utf8')).replace(/^source:\n  path: .*$/m, `source:\n  git: ${p.appDir}\n  ref: main\nreleaseName: "{date}-{version}-{rev}"`));
  // The server's certificate, for its address, signed by itself: the profile trusts it through caFile.
  const key = join(p.lab.dir, 'smtp.key');
  const cert = join(p.lab.dir, 'smtp.crt');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', `/CN=${SMTP_ADDRESS}`, '-addext', `subjectAltName=IP:${SMTP_ADDRESS}`], { stdio: 'ignore' });
  server = new SMTPServer({
    key: await readFile(key), cert: await readFile(cert), authMethods: ['PLAIN', 'LOGIN'], logger: false,
    onAuth(auth, _session, cb) {
      if (auth.username === 'releases' && auth.password === PASSWORD) cb(null, { user: auth.username });
      else cb(new Error('bad login'));
    },
    onData(stream, session, cb) {
      let raw = '';
      stream.setEncoding('utf8');
      stream.on('data', (d: string) => { raw += d; });
      stream.on('end', () => {
        received.push({ from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to: session.envelope.rcptTo.map((r) => r.address), secure: session.secure, user: session.user as string | undefined, raw });
        cb();
      });
    },
  });
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(0, SMTP_ADDRESS, () => resolve()); });
  port = (server.server.address() as { port: number }).port;
  process.env.UPDATESERVER_TEST_SMTP_PASSWORD = PASSWORD;
  const file = join(p.project.dir, 'profiles', 'beta.yaml');
  await writeFile(file, `notify:\n  email:\n    to: [${TO.join(', ')}]\n    from: updateserver@example.com\n    smtp: { host: ${SMTP_ADDRESS}, port: ${port}, user: releases, passwordEnv: UPDATESERVER_TEST_SMTP_PASSWORD, caFile: ${cert} }\n    timeoutMs: 3000\n${await readFile(file, 'utf8')}`);
  await newRelease(async () => {});
  const first = await updateserver(p.project.dir, 'beta');
  assert.equal(first.code, 0, explain(first));
});

after(async () => {
  await p?.stop();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  delete process.env.UPDATESERVER_TEST_SMTP_PASSWORD;
});

test('a promotion mails its summary over STARTTLS: recipients, subject, release name, slots, the files changed and the git commits since the previous release', async () => {
  await newRelease(async () => {
    await writeFile(join(p.appDir, 'VERSION'), '2.0.0\n');
    await writeFile(join(p.appDir, 'added.txt'), 'new file\n');
  }, 'Version 2 with an added file');
  received = [];
  const r = await updateserver(p.project.dir, 'beta', '--json');
  assert.equal(r.code, 0, explain(r));
  const plan = (JSON.parse(r.stdout) as { plan: { services: Array<{ release: string; live: string; target: string; liveRelease: string }> } }).plan.services[0]!;
  assert.equal(received.length, 1, `mails: ${received.length}`);
  const mail = received[0]!;
  assert.deepEqual(mail.to, TO);
  assert.equal(mail.from, 'updateserver@example.com');
  assert.equal(mail.secure, true, 'sent after STARTTLS');
  assert.equal(mail.user, 'releases');
  assert.equal(header(mail.raw, 'Subject'), `[updateserver] beta: web ${plan.release} promoted`);
  const body = bodyOf(mail.raw);
  assert.match(body, new RegExp(`web: release ${plan.release.replace(/\./g, '\\.')}`));
  assert.match(body, new RegExp(`slot ${plan.live} -> ${plan.target}; previous release ${plan.liveRelease.replace(/\./g, '\\.')}`));
  assert.match(body, /Result: {3}ok/);
  assert.match(body, /files: 1 added, 1 changed, 0 removed/);
  const head = git('rev-parse', '--short=7', 'HEAD').trim();
  assert.match(body, new RegExp(`commits \\(1\\):\n {4}${head}[0-9a-f]* Version 2 with an added file\n`));
  assert.doesNotMatch(`${r.stdout}${r.stderr}${mail.raw}`, new RegExp(PASSWORD));
  await rm(join(p.appDir, 'added.txt'));
});

test('an unreachable SMTP server is only a warning: the promotion succeeds', async () => {
  await newRelease(async () => { await writeFile(join(p.appDir, 'VERSION'), '3.0.0\n'); });
  // A port nothing listens on: the lab's HAProxy address, an unused port.
  await useSmtpPort(9);
  received = [];
  const r = await updateserver(p.project.dir, 'beta');
  await useSmtpPort(port);
  assert.equal(r.code, 0, explain(r));
  assert.match(r.stderr, new RegExp(`warn .*release mail to ${TO.join(', ')} through ${SMTP_ADDRESS.replace(/\./g, '\\.')}:9 failed \\(the run goes on\\): .*ECONNREFUSED`));
  assert.equal(received.length, 0);
  assert.match((await updateserver(p.project.dir, 'status', 'beta')).stdout, /web: live slot/);
});
