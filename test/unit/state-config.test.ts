/*
 * `state: { postgres, passwordEnv }`: resolved without a connection, the password never in the URL nor
 * in anything printed, stages linked by from: on one store, and the backend chosen from the profile.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { loadPipeline, loadProfile } from '../../src/config/load.js';
import type { Project } from '../../src/config/model.js';
import { ConfigError } from '../../src/errors.js';
import { openState } from '../../src/state/backend.js';
import { CREATE_TABLES, stateStoreError } from '../../src/state/postgres/db.js';

const BODY = `hosts:
  web1: { address: 10.0.0.1 }
loadBalancers:
  lb: { socket: run/haproxy.sock, mapFile: run/slots.map }
services:
  web:
    hosts: [web1]
    root: /srv/web
    listen: 8080
    slots:
      a: { port: 8001 }
      b: { port: 8002 }
    start: ./server --port {port}
`;
const STATE = 'state:\n  postgres: postgres://deployer@db.internal/releases\n  passwordEnv: US_STATE_TEST_PASSWORD\n';

async function withProject(files: Record<string, string>, body: (project: Project) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'updateserver-state-config-'));
  try {
    await mkdir(join(dir, 'profiles'));
    for (const [stage, text] of Object.entries(files)) await writeFile(join(dir, 'profiles', `${stage}.yaml`), text);
    await body({ dir, stateDir: join(dir, '.updateserver') });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('state.postgres resolves to a URL without the password; the password is a Secret that never prints', async () => {
  process.env.US_STATE_TEST_PASSWORD = 's3cret-value';
  try {
    await withProject({ dev: `source: { path: app }\n${STATE}${BODY}` }, async (project) => {
      const stage = await loadProfile(project, 'dev');
      assert.equal(stage.state?.url, 'postgres://deployer@db.internal:5432/releases');
      assert.equal(stage.state?.password?.reveal(), 's3cret-value');
      for (const shown of [JSON.stringify(stage), inspect(stage, { depth: 10 }), String(stage.state?.password)]) assert.ok(!shown.includes('s3cret-value'), shown);
      const backend = openState(project, stage);
      assert.equal(backend.where, 'PostgreSQL postgres://deployer@db.internal:5432/releases');
      await backend.close();
      // A failure of the store names it by that URL, with the fix for the kind of failure.
      const err = stateStoreError(stage.state!, Object.assign(new Error('password authentication failed for user "deployer"'), { code: '28P01' }));
      assert.match(err.message, /^state store postgres:\/\/deployer@db\.internal:5432\/releases: password authentication failed/);
      assert.match(err.hint ?? '', /state\.passwordEnv/);
    });
  } finally {
    delete process.env.US_STATE_TEST_PASSWORD;
  }
});

test('without state:, the local state directory', async () => {
  await withProject({ dev: `source: { path: app }\n${BODY}` }, async (project) => {
    const backend = openState(project, await loadProfile(project, 'dev'));
    assert.equal(backend.where, `local directory ${project.stateDir}`);
  });
});

test('a password in the URL is refused without being repeated; an unset passwordEnv is refused before any connection', async () => {
  await withProject({ dev: `source: { path: app }\nstate:\n  postgres: postgres://deployer:hunter2@db.internal/releases\n${BODY}` }, async (project) => {
    const err = await loadProfile(project, 'dev').then(() => assert.fail('accepted'), (e: unknown) => e);
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /profiles\/dev\.yaml:3: state\.postgres: expected postgres:\/\/user@host\[:port\]\/database \(the password goes in passwordEnv/);
    assert.ok(!err.message.includes('hunter2'), err.message);
  });
  await withProject({ dev: `source: { path: app }\n${STATE}${BODY}` }, async (project) => {
    const err = await loadProfile(project, 'dev').then(() => assert.fail('accepted'), (e: unknown) => e);
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /state\.passwordEnv: environment variable US_STATE_TEST_PASSWORD is not set/);
  });
});

test('stages linked by from: must name the same state store; the error names both files', async () => {
  const dev = `source: { path: app }\nstate:\n  postgres: postgres://deployer@db.internal/releases\n${BODY}`;
  await withProject({ dev, beta: `from: dev\nstate:\n  postgres: postgres://deployer@other.internal/releases\n${BODY}` }, async (project) => {
    const err = await loadPipeline(project, 'beta').then(() => assert.fail('accepted'), (e: unknown) => e);
    assert.ok(err instanceof ConfigError);
    assert.equal(err.issues[0]?.file, 'profiles/beta.yaml');
    assert.match(err.message, /beta keeps its state in PostgreSQL postgres:\/\/deployer@other\.internal:5432\/releases but dev \(its from:, profiles\/dev\.yaml\) in PostgreSQL postgres:\/\/deployer@db\.internal:5432\/releases/);
  });
  await withProject({ dev, beta: `from: dev\nstate:\n  postgres: postgresql://deployer@db.internal:5432/releases\n${BODY}` }, async (project) => {
    assert.deepEqual((await loadPipeline(project, 'beta')).map((s) => s.name), ['beta', 'dev']);
  });
});

test('the state tables: created under the schema updateserver, IF NOT EXISTS', () => {
  assert.equal(CREATE_TABLES[0], 'CREATE SCHEMA IF NOT EXISTS updateserver');
  assert.deepEqual(CREATE_TABLES.filter((s) => s.startsWith('CREATE TABLE')).map((s) => /updateserver\.(\w+)/.exec(s)?.[1]), ['stage_state', 'history', 'journal', 'locks', 'rollout']);
  assert.ok(CREATE_TABLES.every((s) => s.includes('IF NOT EXISTS')));
});
