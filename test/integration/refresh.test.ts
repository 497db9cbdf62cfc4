/*
 * updateserver refresh on the lab (net 75) and the real PostgreSQL: after dev -> beta, users write to
 * beta's live database; `refresh dev --from beta` puts those rows into dev's idle slot database with
 * dev's refresh.after renaming applied, and beta's database is byte-for-byte what it was (pg_dump of
 * schema and data compared). Refused: --from an earlier stage, the live slot, a dry run that changes.
 * The lab's promotions also show the snapshot strategy chosen: TEMPLATE from dev's unconnected live
 * database into beta, pg_dump when dev's app is connected to the database that copy-self copies.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { updateserver, type CliResult, explain, recordedLiveSlot } from './cli.js';
import { sql } from '../lab/pg.js';
import { slotDatabases } from '../lab/databases.js';

const NET = 75;
const dbs = slotDatabases('postgres', 'ustest_snap');
const { names, dropAll } = dbs;
const dbYaml = (stage: string) => [
  dbs.yaml(stage),
  ...(stage === 'dev' ? [
    '      refresh:',
    '        after:',
    '          - "UPDATE users SET email = \'user\' || id || \'@example.invalid\'"',
    '          - "DELETE FROM sessions"',
  ] : []),
].join('\n');

let p: Pipeline;

const exists = async (database: string) => (await sql('postgres', `SELECT 1 FROM pg_database WHERE datname = '${database}'`)).length > 0;
/**
 * Schema and every row, as pg_dump writes them: equal text means an untouched database. (pg_dump
 * 15.14+ frames its output with \restrict and \unrestrict lines holding a fresh random key each time.)
 */
const fingerprint = (database: string) => execFileSync('pg_dump', ['-h', '127.0.0.1', '-U', 'postgres', '-d', database, '--no-owner'], { maxBuffer: 64 << 20 })
  .toString().split('\n').filter((l) => !/^\\(un)?restrict /.test(l)).join('\n');


const liveSlot = (stage: 'dev' | 'beta') => recordedLiveSlot(p.project.dir, stage);

before(async () => {
  await dropAll();
  p = await startPipeline({ net: NET, devServiceExtra: dbYaml('dev'), betaServiceExtra: dbYaml('beta') });
  const dir = join(p.project.dir, 'migrations', 'web');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'V0001__tables.sql'), [
    'CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);',
    'CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL UNIQUE);',
    'CREATE TABLE sessions (token text PRIMARY KEY, user_id int REFERENCES users(id));',
    '',
  ].join('\n'));
});

after(async () => {
  await p?.stop();
  await dropAll();
});

test('refresh dev --from beta: beta\'s live rows land in dev\'s idle database, renamed; beta untouched; dev\'s live untouched', async () => {
  assert.equal((await updateserver(p.project.dir, 'dev')).code, 0);
  const devLiveDb = names('dev')[await liveSlot('dev')];
  await sql(devLiveDb, "INSERT INTO items (name) VALUES ('from dev')");
  // dev's and beta's databases share this server and nobody is connected to dev's: the promotion copies by TEMPLATE.
  const plan = await updateserver(p.project.dir, 'beta', '--dry-run');
  assert.match(plan.stdout, new RegExp(`CREATE DATABASE ustest_snap_beta_[ab] TEMPLATE ${devLiveDb} if nobody else is connected to ${devLiveDb} at that moment; otherwise pg_dump -Fc -Z0`));
  const beta = await updateserver(p.project.dir, 'beta');
  assert.equal(beta.code, 0, explain(beta));
  assert.match(beta.stderr, /web: copied 4 table\(s\), 2 row\(s\) from .* by template \(same server, no other session on the source\); row counts match/);
  const betaLiveDb = names('beta')[await liveSlot('beta')];
  // Users of beta write.
  await sql(betaLiveDb, `INSERT INTO items (name) SELECT 'beta row ' || g FROM generate_series(1, 250) g;
    INSERT INTO users (email) SELECT 'person' || g || '@customer.example' FROM generate_series(1, 40) g;
    INSERT INTO sessions SELECT md5(id::text), id FROM users`);
  const betaBefore = fingerprint(betaLiveDb);
  const devLive = await liveSlot('dev');
  const devIdleDb = names('dev')[devLive === 'a' ? 'b' : 'a'];
  const devLiveBefore = fingerprint(devLiveDb);

  const dry = await updateserver(p.project.dir, 'refresh', 'dev', '--from', 'beta', '--dry-run');
  assert.equal(dry.code, 0, explain(dry));
  assert.match(dry.stdout, new RegExp(`web: slot ${devLive === 'a' ? 'b' : 'a'} postgres://postgres@127.0.0.1:5432/${devIdleDb} <- postgres://postgres@127.0.0.1:5432/${betaLiveDb} \\(read-only, one snapshot\\)`));
  assert.match(dry.stdout, /refresh.after \(2 statement\(s\), one transaction\):\n +UPDATE users SET email = 'user' \|\| id \|\| '@example.invalid'\n +DELETE FROM sessions/);
  assert.match(dry.stdout, /Dry run: nothing was changed/);
  assert.equal(await exists(devIdleDb), false, 'a dry run creates nothing');

  const r = await updateserver(p.project.dir, 'refresh', 'dev', '--from', 'beta', '--json');
  assert.equal(r.code, 0, explain(r));
  const json = JSON.parse(r.stdout) as { ok: boolean; applied: boolean; services: Array<{ slot: string; target: string; snapshot: { method: string; rows: number } }> };
  assert.equal(json.applied, true);
  assert.equal(json.services[0]!.target, `postgres://postgres@127.0.0.1:5432/${devIdleDb}`);
  // Never by TEMPLATE from another stage's live database: that would hold its new connections.
  assert.equal(json.services[0]!.snapshot.method, 'pg_dump');
  assert.equal(json.services[0]!.snapshot.rows, 1 + 250 + 40 + 40 + 1);

  const items = await sql<{ name: string }>(devIdleDb, 'SELECT name FROM items ORDER BY id');
  assert.equal(items.length, 251);
  assert.deepEqual([items[0]!.name, items.at(-1)!.name], ['from dev', 'beta row 250']);
  const emails = await sql<{ id: number; email: string }>(devIdleDb, 'SELECT id, email FROM users ORDER BY id');
  assert.equal(emails.length, 40);
  assert.ok(emails.every((u) => u.email === `user${u.id}@example.invalid`), JSON.stringify(emails.slice(0, 3)));
  assert.equal((await sql(devIdleDb, 'SELECT 1 FROM sessions')).length, 0);
  // The source, schema and rows, is exactly what it was; so is dev's live database.
  assert.equal(fingerprint(betaLiveDb), betaBefore);
  assert.equal(fingerprint(devLiveDb), devLiveBefore);
  assert.equal((await sql<{ email: string }>(betaLiveDb, 'SELECT email FROM users ORDER BY id LIMIT 1'))[0]!.email, 'person1@customer.example');
});

test('refresh refuses an earlier stage as --from, itself, and the live slot, before changing anything', async () => {
  const back = await updateserver(p.project.dir, 'refresh', 'beta', '--from', 'dev');
  assert.equal(back.code, 2, explain(back));
  assert.match(back.stderr, /--from: dev is not later than beta in the pipeline \(dev\): refresh copies a later stage's data back to an earlier one/);
  const self = await updateserver(p.project.dir, 'refresh', 'beta', '--from', 'beta', '--json');
  assert.equal(self.code, 2);
  assert.match((JSON.parse(self.stdout) as { error: { message: string } }).error.message, /a stage cannot be refreshed from itself \("beta"\)/);
  const devLive = await liveSlot('dev');
  const liveDb = names('dev')[devLive];
  const before = fingerprint(liveDb);
  const live = await updateserver(p.project.dir, 'refresh', 'dev', '--from', 'beta', '--slot', devLive);
  assert.equal(live.code, 2, explain(live));
  assert.match(live.stderr, new RegExp(`--slot: slot ${devLive} of web is live in dev: refresh replaces only a slot that serves no traffic`));
  assert.equal(fingerprint(liveDb), before);
});

test('a copy-self promotion while the app is connected to the live database falls back to pg_dump and says why', async () => {
  const devLiveDb = names('dev')[await liveSlot('dev')];
  const app = new pg.Client({ host: '127.0.0.1', user: 'postgres', database: devLiveDb });
  await app.connect();
  try {
    const r = await updateserver(p.project.dir, 'dev', '--force');
    assert.equal(r.code, 0, explain(r));
    assert.match(r.stderr, new RegExp(`copied 4 table\\(s\\), 2 row\\(s\\) from postgres://postgres@127.0.0.1:5432/${devLiveDb} .* by pg_dump \\(1 other session\\(s\\) on ${devLiveDb} \\(fastPath auto copies by template only from a database nobody is connected to`));
    // The app's session was left alone.
    assert.equal((await app.query('SELECT count(*)::int AS n FROM items')).rows[0].n, 1);
  } finally {
    await app.end();
  }
});
