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
  assert.throws(() => refreshSteps(p.stage, p.from, { stage: {}, from: {} }, {}), /no service of dev has a database or files to refresh/);
  assert.throws(() => refreshSteps(p.stage, p.from, { stage: {}, from: {} }, { services: ['web'] }), /service web has no database or files to refresh in dev/);
});

test('files: the later stage\'s command and copy, pushed into the idle slot only, verified; the live slot never written', async () => {
  const files = '    files: { paths: [db], command: "sqlite3 db/notes.db \'.backup {snapshot}/db/notes.db\'" }';
  writeProfile('dev', 'source: { path: app }', files);
  writeProfile('prod', 'from: beta', `${files}\n${db('10.0.0.7')}`);
  writeProfile('beta', 'from: dev', db('10.0.0.6'));
  const { stage, from } = await refreshPipeline(project, 'dev', 'prod');
  const { refreshFilesServices, refreshFilesSteps, refreshFilesActions } = await import('../../src/refresh/files.js');
  const { planRefresh } = await import('../../src/refresh/refresh.js');
  const services = refreshFilesServices(stage, from, ['web']);
  assert.deepEqual(services, ['web']);
  // dev has no database: the database steps are empty, the files step is there.
  assert.deepEqual(refreshSteps(stage, from, { stage: { web: 'a' }, from: { web: 'b' } }, {}), []);
  const [step] = refreshFilesSteps(stage, from, services, { stage: { web: 'a' }, from: { web: 'b' } }, { web: { h1: '2026.12.05-000000-1.0' } });
  assert.equal(step!.slot, 'b');
  assert.deepEqual([step!.source.stage, step!.source.slot, step!.source.host.address], ['prod', 'b', '10.0.0.11']);
  const actions = refreshFilesActions(stage, step!, '/state');
  const text = actions.map((a) => (a.kind === 'local' ? a.argv.join(' ') : a.kind === 'exec' ? a.command : a.kind)).join('\n');
  // The source's consistent copy first, on prod's host, into its snapshot directory.
  assert.match(text, /root@10\.0\.0\.11 rm -rf \/srv\/web\/files\/b\.snapshot .*sqlite3 db\/notes\.db '\.backup \/srv\/web\/files\/b\.snapshot\/db\/notes\.db'/);
  assert.match(text, /root@10\.0\.0\.11:\/srv\/web\/files\/b\.snapshot\/db\/ \/state\/cache\/files\/prod\/web\/db\//);
  assert.match(text, /\/state\/cache\/files\/prod\/web\/db\/ root@10\.0\.0\.11:\/srv\/web\/files\/b\/db\//);
  assert.match(text, /SHA-256|sha256sum/);
  assert.ok(actions.some((a) => a.kind === 'exec' && a.host === 'h1' && /stop idle slot web\/b/.test(a.title)), 'the idle slot is stopped before its files are replaced');
  // dev's live slot (a) is never a destination.
  assert.doesNotMatch(text, /:\/srv\/web\/files\/a\//);
  const plan = planRefresh(stage, from, [], { web: 'a' }, new Date(0), [step!], '/state');
  assert.equal(plan.phases[0]!.title, 'Copy prod\'s live data into dev\'s idle slot\'s files');
  assert.equal(plan.phases[0]!.items[0]!.actions.length, actions.length);
  assert.throws(() => refreshFilesSteps(stage, from, services, { stage: { web: 'a' }, from: { web: 'b' } }, {}, 'a'), /--slot: slot a of web is live in dev/);
  writeProfile('prod', 'from: beta', db('10.0.0.7'));
  const again = await refreshPipeline(project, 'dev', 'prod');
  assert.throws(() => refreshFilesServices(again.stage, again.from, ['web']), /prod gives web no files to refresh dev from/);
});
