/* Which databases `updateserver refresh` would copy where, and what it refuses, from the profiles alone. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { Project } from '../../src/config/model.js';
import { refreshPipeline, refreshSteps } from '../../src/refresh/refresh.js';

const dir = mkdtempSync(join(tmpdir(), 'updateserver-refresh-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const project: Project = { dir, stateDir: join(dir, '.updateserver') };

function writeProfile(stage: string, top: string, database: string): void {
  mkdirSync(join(dir, 'profiles'), { recursive: true });
  writeFileSync(join(dir, 'profiles', `${stage}.yaml`), [
    top,
    'hosts: { h1: { address: 10.0.0.11 } }',
    `loadBalancers: { lb: { socket: /run/${stage}.sock, mapFile: /etc/haproxy/${stage}.map } }`,
    'services:',
    '  web:',
    '    hosts: [h1]',
    '    root: /srv/web',
    '    listen: 8080',
    '    slots: { a: { port: 8081 }, b: { port: 8082 } }',
    '    start: node server.mjs',
    database,
    '',
  ].join('\n'));
}
const db = (host: string, extra = '') => `    database: { engine: postgres, host: ${host}${extra} }`;

writeProfile('dev', 'source: { path: app }', db('10.0.0.5', ', strategy: copy-self, refresh: { after: ["UPDATE users SET email = id || \'@example.invalid\'"] }'));
writeProfile('beta', 'from: dev', db('10.0.0.6'));
writeProfile('prod', 'from: beta', db('10.0.0.7'));

test('the stage must come before --from in the pipeline', async () => {
  const { stage, from } = await refreshPipeline(project, 'dev', 'prod');
  assert.deepEqual([stage.name, from.name], ['dev', 'prod']);
  await assert.rejects(refreshPipeline(project, 'prod', 'dev'), /command line: --from: dev is not later than prod in the pipeline \(dev\)/);
  await assert.rejects(refreshPipeline(project, 'prod', 'beta'), /beta is not later than prod in the pipeline \(dev -> beta\)/);
  await assert.rejects(refreshPipeline(project, 'dev', 'dev'), /a stage cannot be refreshed from itself \("dev"\)/);
});

test('the idle slot by default, from the later stage\'s live slot, with refresh.after; never the live slot', async () => {
  const { stage, from } = await refreshPipeline(project, 'dev', 'prod');
  const [step] = refreshSteps(stage, from, { stage: { web: 'a' }, from: { web: 'b' } }, {});
  assert.equal(step!.slot, 'b');
  assert.deepEqual([step!.source.host, step!.source.database], ['10.0.0.7', 'web_prod_b']);
  assert.deepEqual([step!.target.host, step!.target.database, step!.live.database], ['10.0.0.5', 'web_dev_b', 'web_dev_a']);
  assert.deepEqual(step!.after, ["UPDATE users SET email = id || '@example.invalid'"]);
  assert.equal(refreshSteps(stage, from, { stage: { web: 'b' }, from: { web: 'a' } }, { slot: 'a' })[0]!.target.database, 'web_dev_a');
  assert.throws(() => refreshSteps(stage, from, { stage: { web: 'a' }, from: { web: 'a' } }, { slot: 'a' }), /--slot: slot a of web is live in dev: refresh replaces only a slot that serves no traffic \(the idle one is b\)/);
});

test('a shared database is always live; a stage without databases has nothing to refresh', async () => {
  writeProfile('dev', 'source: { path: app }', db('10.0.0.5', ', strategy: shared'));
  let p = await refreshPipeline(project, 'dev', 'prod');
  assert.throws(() => refreshSteps(p.stage, p.from, { stage: {}, from: {} }, {}), /profiles\/dev.yaml: services.web.database.strategy: web shares one database between its slots in dev/);
  writeProfile('dev', 'source: { path: app }', '');
  p = await refreshPipeline(project, 'dev', 'prod');
  assert.throws(() => refreshSteps(p.stage, p.from, { stage: {}, from: {} }, {}), /no service of dev has a database to refresh/);
  assert.throws(() => refreshSteps(p.stage, p.from, { stage: {}, from: {} }, { services: ['web'] }), /service web has no database to refresh in dev/);
});
