/*
 * Security on the real lab (net 141).
 *  - Secrets: a database password (PostgreSQL role, then a MariaDB user, each given through the
 *    profile's passwordEnv) and a webhook URL carrying a token go through real promotions (--verbose,
 *    --json), a dry run, a plan, a failing run, flip, status, history, check, migrate status and lb
 *    render. None of them may appear in any output, in any file of the state directory (state, history,
 *    journal, logs, cache) or of the hosts and load balancers, or in the command line of any process
 *    on this machine, sampled every ~20 ms during every run (the lab hosts' rsync, ssh sessions, pg_dump,
 *    pg_restore, mysqldump, mysql and apps included). Positive controls show each secret was really used.
 *  - Host keys: a host whose key changed between two runs is refused before anything changes.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { sql as pgSql } from '../lab/pg.js';
import { filesContaining, watchArgv, type ArgvReport } from '../lab/secrets.js';
import { updateserver, type CliResult } from '../integration/cli.js';

const NET = 141;
const explain = (r: CliResult) => `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
const secret = (what: string) => `us-sec-${what}-${randomBytes(12).toString('hex')}`;

type Engine = 'postgres' | 'mysql';
const ROLE = { postgres: 'us_sec_app', mysql: 'us_sec_my' } as const;
const ENV = { postgres: 'US_SEC_PG_PASSWORD', mysql: 'US_SEC_MY_PASSWORD' } as const;
const dbNames = (engine: Engine, stage: string) => ({ a: `us_sec_${engine === 'postgres' ? 'pg' : 'my'}_${stage}_a`, b: `us_sec_${engine === 'postgres' ? 'pg' : 'my'}_${stage}_b` });

async function mysqlRoot(text: string): Promise<void> {
  const c = await mysql.createConnection({ host: '127.0.0.1', user: 'root' });
  try { await c.query(text); } finally { await c.end(); }
}

async function dropDatabases(engine: Engine): Promise<void> {
  for (const stage of ['dev', 'beta']) {
    for (const n of Object.values(dbNames(engine, stage))) {
      if (engine === 'postgres') await pgSql('postgres', `DROP DATABASE IF EXISTS ${n} WITH (FORCE)`);
      else await mysqlRoot(`DROP DATABASE IF EXISTS ${n}`);
    }
  }
}

async function createRole(engine: Engine, password: string): Promise<void> {
  await dropRole(engine);
  if (engine === 'postgres') {
    // The lab's pg_hba trusts 127.0.0.1, so the server does not ask for it: the password's journey is
    // shown by the processes that received it (their environment), and the MariaDB run checks it for real.
    await pgSql('postgres', `CREATE ROLE ${ROLE.postgres} LOGIN SUPERUSER PASSWORD '${password}'`);
  } else {
    for (const host of ['127.0.0.1', 'localhost']) {
      await mysqlRoot(`CREATE USER '${ROLE.mysql}'@'${host}' IDENTIFIED BY '${password}'`);
      await mysqlRoot(`GRANT ALL PRIVILEGES ON *.* TO '${ROLE.mysql}'@'${host}'`);
    }
  }
}

async function dropRole(engine: Engine): Promise<void> {
  if (engine === 'postgres') await pgSql('postgres', `DROP ROLE IF EXISTS ${ROLE.postgres}`);
  else for (const host of ['127.0.0.1', 'localhost']) await mysqlRoot(`DROP USER IF EXISTS '${ROLE.mysql}'@'${host}'`);
}

const dbYaml = (engine: Engine, stage: string) => [
  '    database:',
  `      engine: ${engine}`,
  `      strategy: ${stage === 'dev' ? 'copy-self' : 'copy'}`,
  '      host: 127.0.0.1',
  `      user: ${ROLE[engine]}`,
  `      passwordEnv: ${ENV[engine]}`,
  `      names: { a: ${dbNames(engine, stage).a}, b: ${dbNames(engine, stage).b} }`,
  // Always the client tools (never CREATE DATABASE ... TEMPLATE), so their command lines are watched.
  ...(engine === 'postgres' ? ['      fastPath: off'] : []),
].join('\n');

/** beta's checks: the app, and an sql check on the slot's database (a connection with the password). */
const CHECKS = (expect: string) => `pre:\n  - name: health\n    http: { path: /health }\n  - name: rows\n    sql: { query: "SELECT count(*) FROM items", expect: "${expect}" }\n    deadlineMs: 1000\n`;

/** A webhook receiver; the token is in the path and the query, as chat webhooks carry theirs. */
interface Hook { server: Server; url: string; received: string[]; status: number }
async function startHook(token: string): Promise<Hook> {
  const hook: Hook = { server: createServer(), url: '', received: [], status: 200 };
  hook.server.on('request', (req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => { body += d.toString(); });
    req.on('end', () => {
      hook.received.push(`${req.url ?? ''} ${body}`);
      res.statusCode = hook.status;
      res.end();
    });
  });
  await new Promise<void>((r) => hook.server.listen(0, `127.0.${NET}.99`, r));
  const { port } = hook.server.address() as { port: number };
  hook.url = `http://127.0.${NET}.99:${port}/hooks/T0/${token}?token=${token}`;
  return hook;
}

interface Scenario { p: Pipeline; hook: Hook; password: string; token: string; engine: Engine }

async function startScenario(engine: Engine): Promise<Scenario> {
  const password = secret(engine === 'postgres' ? 'pg' : 'my');
  const token = secret('hook');
  await dropDatabases(engine);
  await createRole(engine, password);
  process.env[ENV[engine]] = password;
  const hook = await startHook(token);
  const p = await startPipeline({
    net: NET,
    devServiceExtra: dbYaml(engine, 'dev'),
    betaServiceExtra: `${dbYaml(engine, 'beta')}\n    checks: web`,
    betaTopExtra: `notify:\n  webhook: "${hook.url}"\n  timeoutMs: 2000`,
    projectFiles: { 'healthchecks/web.yaml': CHECKS('3') },
  });
  const dir = join(p.project.dir, 'migrations', 'web');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'V0001__items.sql'), engine === 'postgres'
    ? "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);\nINSERT INTO items (name) VALUES ('one'), ('two'), ('three');\n"
    : "CREATE TABLE items (id int AUTO_INCREMENT PRIMARY KEY, name varchar(100) NOT NULL);\nINSERT INTO items (name) VALUES ('one'), ('two'), ('three');\n");
  return { p, hook, password, token, engine };
}

async function endScenario(s: Scenario | undefined): Promise<void> {
  if (!s) return;
  await s.p.stop();
  s.hook.server.close();
  delete process.env[ENV[s.engine]];
  await dropDatabases(s.engine);
  await dropRole(s.engine);
}

let running: Scenario | undefined;
after(async () => {
  await endScenario(running);
});

/**
 * Runs every command that handles the secrets, watching process command lines throughout; returns
 * all their output and what the watcher saw.
 */
async function everyCommand(s: Scenario): Promise<{ outputs: CliResult[]; argv: ArgvReport }> {
  const { p, hook } = s;
  const dir = p.project.dir;
  const outputs: CliResult[] = [];
  const cli = async (expected: number, ...args: string[]) => {
    const r = await updateserver(dir, ...args);
    outputs.push(r);
    assert.equal(r.code, expected, `updateserver ${args.join(' ')}\n${explain(r)}`);
    return r;
  };
  const newRelease = async (version: string) => {
    await writeFile(join(p.appDir, 'VERSION'), `${version}\n`);
    await cli(0, 'dev', '--verbose');
  };
  const watch = watchArgv([s.password, s.token]);
  let argv: ArgvReport | undefined;
  try {
    await cli(0, 'dev', '--verbose');
    await cli(0, 'beta', '--verbose', '--json');
    await newRelease('1.1.0');
    const plan = await cli(0, 'beta', '--dry-run', '--json', '--verbose');
    assert.ok((JSON.parse(plan.stdout) as { plan?: unknown }).plan, 'the dry run printed its plan as JSON');
    await cli(0, 'beta', '--dry-run', '--verbose');
    await cli(0, 'beta', '--verbose', '--json');
    // The webhook fails: the warning must name it without its token.
    hook.status = 500;
    await cli(0, 'flip', 'beta', '--verbose');
    hook.status = 200;
    // A failing run: the sql check (on the slot's database) expects a row that is not there.
    await writeFile(join(dir, 'healthchecks', 'web.yaml'), CHECKS('4'));
    await newRelease('1.2.0');
    const failed = await cli(1, 'beta', '--verbose');
    assert.match(failed.stderr, /health check rows \(pre, sql\)/);
    await writeFile(join(dir, 'healthchecks', 'web.yaml'), CHECKS('3'));
    await cli(0, 'status', 'beta', '--json', '--verbose');
    await cli(0, 'history', 'beta', '--json');
    await cli(0, 'history', 'beta');
    await cli(0, 'check', 'beta', '--verbose');
    await cli(0, 'migrate', 'status', 'beta', '--json');
    await cli(0, 'lb', 'render', 'beta');
    // A wrong password: the error must not quote it either (MariaDB checks it; trust-auth PostgreSQL cannot).
    if (s.engine === 'mysql') {
      const wrong = `${s.password}-wrong`;
      process.env[ENV.mysql] = wrong;
      try {
        // migrate status reports the unreachable database and goes on to the others; both fail on it.
        for (const args of [['migrate', 'status', 'beta', '--verbose'], ['check', 'beta', '--verbose']]) {
          const r = await updateserver(dir, ...args);
          outputs.push(r);
          assert.match(`${r.stdout}${r.stderr}`, /Access denied for user 'us_sec_my'/, explain(r));
          assert.ok(!r.stdout.includes(wrong) && !r.stderr.includes(wrong), `the wrong password is printed:\n${explain(r)}`);
          assert.notEqual(r.code, 0, explain(r));
        }
      } finally {
        process.env[ENV.mysql] = s.password;
      }
    }
  } finally {
    argv = watch.stop();
  }
  return { outputs, argv };
}

async function assertNoSecretAnywhere(s: Scenario, outputs: CliResult[], argv: ArgvReport, tools: string[]): Promise<void> {
  const secrets = [s.password, s.token];
  // Output of every command.
  const printed = outputs.flatMap((r, i) => `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => secrets.some((x) => l.includes(x))).map((l) => `command ${i}: ${l}`));
  assert.deepEqual(printed, []);
  // Every file the runs wrote: the state directory (state, history, journal, logs, release cache), the
  // hosts' /srv (releases, run files, app logs), the HAProxies' directories and the sshd logs.
  const dirs = [s.p.project.stateDir, join(s.p.lab.dir, 'hosts'), s.p.lbs.dev.dir, s.p.lbs.beta.dir];
  const files = await filesContaining(dirs, secrets);
  assert.ok(files.files > 20, `only ${files.files} files were read`);
  assert.deepEqual(files.leaks, []);
  const stateFiles = await filesContaining([s.p.project.stateDir], []);
  assert.ok(stateFiles.files >= 4, `the state directory holds only ${stateFiles.files} files`);
  // No command line, ever.
  assert.deepEqual(argv.leaks, [], 'a secret in a command line');
  assert.ok(argv.samples > 100, `only ${argv.samples} samples of the process table`);
  for (const tool of [...tools, 'rsync']) {
    assert.ok(argv.commandLines.some((c) => c.includes(tool)), `${tool} was never seen running (the watcher would have missed it): ${argv.commandLines.length} command lines seen`);
  }
  // Positive controls: the password reached the client tools through their environment, and the
  // webhook (URL with its token) was really called.
  for (const tool of tools) {
    assert.ok(argv.secretInEnvironment.some((c) => c.includes(tool)), `${tool} never had the password in its environment: ${argv.secretInEnvironment.join('\n')}`);
  }
  assert.ok(s.hook.received.some((r) => r.includes(s.token) && r.includes('"event":"switched"')), 'the webhook was called with its token');
  assert.ok(s.hook.received.some((r) => r.includes('"event":"failed"')), 'the failed run was notified');
}

test('the watchers can fail: a 100 ms process with a secret in its argv and a file holding one are caught', async () => {
  const needle = secret('probe');
  const watch = watchArgv([needle]);
  await promisify(execFile)('sh', ['-c', 'sleep 0.1', needle]);
  const seen = watch.stop();
  assert.equal(seen.leaks.length, 1, JSON.stringify(seen.leaks));
  const dir = join(process.env.TMPDIR ?? '/tmp', `us-sec-probe-${process.pid}`);
  await mkdir(join(dir, 'deep'), { recursive: true });
  try {
    await writeFile(join(dir, 'deep', 'state.json'), `{"x":"${needle}"}`);
    assert.equal((await filesContaining([dir], [needle])).leaks.length, 1);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('secrets (PostgreSQL password, webhook token) never reach output, files, plans, history, journal or any command line', async () => {
  running = await startScenario('postgres');
  const { outputs, argv } = await everyCommand(running);
  await assertNoSecretAnywhere(running, outputs, argv, ['pg_dump', 'pg_restore']);
});

test('a host whose SSH host key changed between two runs is refused before any change, naming the host and what to do', async () => {
  const s = running ?? (running = await startScenario('postgres'));
  const { p } = s;
  try {
    if (!(await readdir(join(p.project.stateDir, 'state')).catch((): string[] => [])).includes('beta.json')) {
      assert.equal((await updateserver(p.project.dir, 'dev')).code, 0);
      assert.equal((await updateserver(p.project.dir, 'beta')).code, 0);
    }
    await writeFile(join(p.appDir, 'VERSION'), '2.0.0\n');
    assert.equal((await updateserver(p.project.dir, 'dev')).code, 0);
    const beta2 = p.lab.hosts.find((h) => h.name === 'beta2')!;
    const releases = async () => Object.fromEntries(await Promise.all(p.lab.hosts.filter((h) => h.name.startsWith('beta')).map(async (h) => [h.name, (await readdir(join(h.srv, 'web', 'releases'))).sort()])));
    const served = async () => {
      const { release, slot } = (await (await fetch(`${p.url.beta}/`)).json()) as { release: string; slot: string };
      return { release, slot };
    };
    const before = { releases: await releases(), map: await readFile(p.lbs.beta.mapFile, 'utf8'), live: await served(), state: await readFile(join(p.project.stateDir, 'state', 'beta.json'), 'utf8') };

    const newLine = await p.lab.rekeyHost('beta2');
    const newFingerprint = execFileSync('ssh-keygen', ['-lf', '-'], { input: `${newLine.split(' ').slice(1).join(' ')}\n` }).toString().split(' ')[1]!;
    const knownHosts = await readFile(p.lab.knownHosts, 'utf8');
    const line = knownHosts.split('\n').findIndex((l) => l.startsWith(`[${beta2.address}]:2222 `)) + 1;

    const r = await updateserver(p.project.dir, 'beta');
    assert.equal(r.code, 1, explain(r));
    assert.match(r.stderr, new RegExp(`beta2: HOST KEY CHANGED: \\[127\\.0\\.${NET}\\.13\\]:2222 offered ssh-ed25519 ${newFingerprint.replace(/[+/]/g, '\\$&')}, which does not match ${p.lab.knownHosts.replace(/[.]/g, '\\.')}:${line}`));
    assert.match(r.stderr, new RegExp(`confirm the new fingerprint out of band and replace line ${line} of ${p.lab.knownHosts.replace(/[.]/g, '\\.')}`), 'says what to do');
    // Nothing changed: no release copied to any host, the map, the live slot and the recorded state as they were.
    assert.deepEqual(await releases(), before.releases);
    assert.equal(await readFile(p.lbs.beta.mapFile, 'utf8'), before.map);
    assert.deepEqual(await served(), before.live);
    assert.equal(await readFile(join(p.project.stateDir, 'state', 'beta.json'), 'utf8'), before.state);
    // Status reports the host the same way; a dry run refuses it too.
    const status = await updateserver(p.project.dir, 'status', 'beta');
    assert.match(`${status.stdout}${status.stderr}`, /beta2: .*HOST KEY CHANGED/, explain(status));
    const dry = await updateserver(p.project.dir, 'beta', '--dry-run');
    assert.equal(dry.code, 1, explain(dry));
    assert.match(dry.stderr, /beta2: HOST KEY CHANGED/, explain(dry));

    // Once the operator has checked the new key and recorded it, the same promotion goes through.
    await writeFile(p.lab.knownHosts, knownHosts.split('\n').map((l) => (l.startsWith(`[${beta2.address}]:2222 `) ? newLine : l)).join('\n'));
    const ok = await updateserver(p.project.dir, 'beta');
    assert.equal(ok.code, 0, explain(ok));
    assert.notEqual((await served()).release, before.live.release);
  } finally {
    await endScenario(running);
    running = undefined;
  }
});

test('secrets (MariaDB password, webhook token) never reach output, files, plans, history, journal or any command line', async () => {
  running = await startScenario('mysql');
  const { outputs, argv } = await everyCommand(running);
  await assertNoSecretAnywhere(running, outputs, argv, ['mysqldump', 'mysql -h']);
});
