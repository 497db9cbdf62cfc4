/* The snapshot's TEMPLATE fast path and its guards: exact SQL, when it is not tried, how a plan shows it. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DatabaseConnection } from '../../src/config/model.js';
import { Secret } from '../../src/config/secret.js';
import { refuseUnsafeTarget } from '../../src/data/snapshot.js';
import { END_SESSIONS_SQL, OTHER_SESSIONS_SQL, createFromTemplateSql, dropDatabaseSql, templateRefusal } from '../../src/data/template.js';
import { pgDumpArgv, toolEnv } from '../../src/data/tools.js';
import { PLAN_VERSION, type Plan } from '../../src/plan/plan.js';
import { renderPlan } from '../../src/plan/render.js';

const pg = (database: string, host = '127.0.0.1', port = 5432): DatabaseConnection => ({ engine: 'postgres', host, port, user: 'postgres', password: undefined, database });

test('the template SQL, exactly: quoted names, FILE_COPY from PostgreSQL 15, none before', () => {
  assert.equal(createFromTemplateSql('web_beta_b', 'web_dev_a', 150020), 'CREATE DATABASE "web_beta_b" TEMPLATE "web_dev_a" STRATEGY FILE_COPY');
  assert.equal(createFromTemplateSql('web_beta_b', 'web_dev_a', 140011), 'CREATE DATABASE "web_beta_b" TEMPLATE "web_dev_a"');
  assert.equal(createFromTemplateSql('x"y', 'a', 160000), 'CREATE DATABASE "x""y" TEMPLATE "a" STRATEGY FILE_COPY');
  assert.equal(dropDatabaseSql('web_beta_b'), 'DROP DATABASE IF EXISTS "web_beta_b" WITH (FORCE)');
  assert.equal(OTHER_SESSIONS_SQL, 'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()');
  assert.equal(END_SESSIONS_SQL, 'SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()');
});

test('the fast path is not tried across servers or when off; MySQL never asks', () => {
  assert.equal(templateRefusal(pg('a'), pg('b'), 'auto'), undefined);
  assert.equal(templateRefusal(pg('a'), pg('b'), 'template'), undefined);
  assert.equal(templateRefusal(pg('a'), pg('b'), 'off'), 'fastPath is off');
  assert.equal(templateRefusal(pg('a', '10.0.0.5'), pg('b'), 'auto'), 'source and target are on different servers (10.0.0.5:5432, 127.0.0.1:5432)');
  assert.equal(templateRefusal(pg('a'), pg('b', '127.0.0.1', 5433), 'template'), 'source and target are on different servers (127.0.0.1:5432, 127.0.0.1:5433)');
  assert.equal(templateRefusal({ ...pg('a'), engine: 'mysql' }, { ...pg('b'), engine: 'mysql' }, 'auto'), undefined);
});

test('a copy never replaces its source or the live slot\'s database', () => {
  assert.throws(() => refuseUnsafeTarget(pg('web_dev_a'), pg('web_dev_a'), []), /refusing to copy postgres:\/\/postgres@127.0.0.1:5432\/web_dev_a onto itself/);
  assert.throws(() => refuseUnsafeTarget(pg('web_dev_a'), pg('web_beta_a'), [pg('web_beta_a')]), /refusing to replace postgres:\/\/postgres@127.0.0.1:5432\/web_beta_a: it is the live slot's database/);
  // By name: the live database is the target stage's own, whatever host spelling reaches it.
  assert.throws(() => refuseUnsafeTarget(pg('web_dev_a'), pg('web_beta_a', 'localhost'), [pg('web_beta_a')]), /live slot's database/);
  assert.doesNotThrow(() => refuseUnsafeTarget(pg('web_dev_a'), pg('web_beta_b'), [pg('web_beta_a')]));
  // The same name on another server is another database: a copy between stages' servers.
  assert.doesNotThrow(() => refuseUnsafeTarget(pg('web', '10.0.0.5'), pg('web', '10.0.0.6'), []));
});

test('a source is read in read-only sessions: PGOPTIONS for pg_dump, added to the caller\'s; the password only in the environment', () => {
  const saved = process.env.PGOPTIONS;
  try {
    process.env.PGOPTIONS = '-c statement_timeout=0';
    const src = { ...pg('web_dev_a'), password: new Secret('s3cret', 'environment variable PGPW') };
    const env = toolEnv(src, { readOnly: true });
    assert.equal(env.PGOPTIONS, '-c statement_timeout=0 -c default_transaction_read_only=on');
    assert.equal(env.PGPASSWORD, 's3cret');
    assert.equal(toolEnv(src).PGOPTIONS, '-c statement_timeout=0');
    delete process.env.PGOPTIONS;
    assert.equal(toolEnv(src, { readOnly: true }).PGOPTIONS, '-c default_transaction_read_only=on');
    assert.ok(!pgDumpArgv(src, { jobs: 1 }).join(' ').includes('s3cret'));
  } finally {
    if (saved === undefined) delete process.env.PGOPTIONS; else process.env.PGOPTIONS = saved;
  }
});

function planWith(source: DatabaseConnection, target: DatabaseConnection, fastPath: 'auto' | 'template' | 'off', jobs = 1): Plan {
  return {
    version: PLAN_VERSION, action: 'promote', stage: 'beta', from: 'dev', createdAt: '2026-11-29T00:00:00.000Z', services: [], liveAfter: {},
    phases: [{ name: 'data', title: 'Data', items: [{ target: 'web', actions: [{ kind: 'data-copy', service: 'web', source, target, jobs, frozen: false, fastPath, live: pg('web_beta_a'), title: 'snapshot' }] }] }],
  };
}

test('the plan says which copy will run and why the fast path would not', () => {
  assert.match(renderPlan(planWith(pg('web_dev_a'), pg('web_beta_b'), 'auto')),
    /CREATE DATABASE web_beta_b TEMPLATE web_dev_a if nobody else is connected to web_dev_a at that moment; otherwise pg_dump -Fc -Z0 \(one snapshot\) postgres:\/\/postgres@127.0.0.1:5432\/web_dev_a \| pg_restore postgres:\/\/postgres@127.0.0.1:5432\/web_beta_b; compare row counts/);
  assert.match(renderPlan(planWith(pg('web_dev_a'), pg('web_beta_b'), 'template')), /TEMPLATE web_dev_a after ending the other sessions of the source \(fastPath: template\)/);
  assert.match(renderPlan(planWith(pg('web_dev_a', '10.0.0.5'), pg('web_beta_b'), 'auto', 4)),
    /pg_dump -Fd -j 4 -Z0 \(one snapshot\) postgres:\/\/postgres@10.0.0.5:5432\/web_dev_a, then pg_restore -j 4 into .*\(no TEMPLATE fast path: source and target are on different servers/);
  assert.match(renderPlan(planWith(pg('web_dev_a'), pg('web_beta_b'), 'off')), /\(no TEMPLATE fast path: fastPath is off\)/);
});
