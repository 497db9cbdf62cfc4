/*
 * Issue 21 item 4 on the lab (net 90): what users wrote to a `files:` service's new slot is reported
 * when traffic leaves it. The app (test/fixtures/tiers/notes.mjs) keeps an SQLite file in db/ and
 * uploaded files in uploads/, in its slot's data directory. After a copy-self promotion, writes through
 * beta's HAProxy add, change and remove files in the new slot; `rollback` then reports exactly those
 * files, which the test compares with the host's own tree (SHA-256 of every file before and after),
 * on the terminal, in --json, in the report file under the state directory and in history. The `current`
 * link follows the live slot: after the promotion and back after the rollback. Then an automatic
 * rollback (a failed watch check) reports the files written to the new slot meanwhile. The webhook
 * carries the counts (changes.web.files).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { TIERS_APP } from '../lab/tiers.js';
import { ssh } from '../lab/remote.js';
import { updateserver, explain, recordedLiveSlot, otherSlot } from './cli.js';
import type { ChangeReport } from '../../src/data/changes/report.js';
import type { HistoryEntry } from '../../src/state/store.js';

const FILES = [
  '    currentLink: true',
  '    checks: web',
  '    files:',
  '      paths: [db, uploads]',
  '      command: "mkdir -p {snapshot}/db {snapshot}/uploads && cp -a uploads/. {snapshot}/uploads/ && if [ -f db/notes.db ]; then sqlite3 db/notes.db \'.backup {snapshot}/db/notes.db\'; fi"',
].join('\n');
// A watch check on the host: an upload named "poison" in the slot's files fails it.
const checks = (windowMs: number) => [
  'pre:', '  - { name: up, http: { path: /health }, deadlineMs: 5000, intervalMs: 50 }',
  'post:', '  - { name: up, http: { path: /health } }',
  'watch:', `  windowMs: ${windowMs}`, '  intervalMs: 200', '  checks:', '    - { name: clean, command: { run: "test ! -e {files}/uploads/poison" } }', '',
].join('\n');

let p: Pipeline;
let server: Server;
/** What beta's webhook received: the `changes` counts of each notification that had some. */
const hooks: Array<{ event?: string; changes?: Record<string, { files?: unknown }> }> = [];
before(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => { body += d; });
    req.on('end', () => { hooks.push(JSON.parse(body) as (typeof hooks)[number]); res.statusCode = 204; res.end(); });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  p = await startPipeline({
    betaTopExtra: `notify:\n  webhook: http://127.0.0.1:${(server.address() as AddressInfo).port}/hook\n  events: [started, switched, rolled-back, failed]`,
    net: 90, betaHosts: 1,
    appStart: 'node notes.mjs --host {address} --port {port} --slot {slot} --release {release} --data {files}',
    projectFiles: { 'app/notes.mjs': await readFile(join(TIERS_APP, 'notes.mjs'), 'utf8'), 'healthchecks/web.yaml': checks(200) },
    devServiceExtra: FILES, betaServiceExtra: FILES,
  });
});
after(async () => {
  await p?.stop();
  await new Promise((r) => server?.close(r));
});
const lastHookChanges = () => hooks.filter((h) => h.changes).at(-1)?.changes;

const host = () => p.lab.hosts.find((h) => h.name === p.betaHosts[0])!;
const on = (command: string) => ssh(p.lab, host(), command);
/** The host's own tree of a slot's files: path -> SHA-256. */
async function tree(slot: string): Promise<Map<string, string>> {
  const out = await on(`cd /srv/web/files/${slot} && find db uploads -type f -exec sha256sum {} + 2>/dev/null || true`);
  return new Map(out.split('\n').filter(Boolean).map((l) => [l.slice(66), l.slice(0, 64)] as [string, string]));
}
function diffOf(before: Map<string, string>, now: Map<string, string>) {
  const sorted = (xs: string[]) => xs.sort();
  return {
    added: sorted([...now.keys()].filter((k) => !before.has(k))),
    changed: sorted([...now.keys()].filter((k) => before.has(k) && before.get(k) !== now.get(k))),
    removed: sorted([...before.keys()].filter((k) => !now.has(k))),
  };
}
async function send(method: string, path: string, body?: string): Promise<void> {
  const r = await fetch(`${p.url.beta}${path}`, { method, ...(body === undefined ? {} : { body }), headers: { connection: 'close' } });
  assert.ok(r.status === 201 || r.status === 204, `${method} ${path}: ${r.status} ${await r.text()}`);
}
const paths = (entries: ReadonlyArray<{ path: string }>) => entries.map((e) => e.path);

test('rollback reports exactly the files added, changed and removed in the slot it leaves, as the host\'s tree shows; current follows', async () => {
  for (const stage of ['dev', 'beta']) {
    const r = await updateserver(p.project.dir, stage);
    assert.equal(r.code, 0, explain(r));
  }
  // The old slot's data: rows and uploads, copied into the new slot by the next promotion.
  for (const name of ['keep.txt', 'change-me.txt', 'delete-me.txt']) await send('PUT', `/files/${name}`, `first ${name}`);
  await send('POST', '/rows', 'before-1');
  const oldSlot = await recordedLiveSlot(p.project.dir, 'beta');
  const newSlot = otherSlot(oldSlot);
  const oldRelease = (await on(`readlink /srv/web/${oldSlot}`)).trim().split('/').at(-1)!;
  assert.equal((await on('readlink /srv/web/current')).trim(), `/srv/web/releases/${oldRelease}`);

  await writeFile(join(p.appDir, 'VERSION'), '1.1.0\n');
  for (const stage of ['dev', 'beta']) {
    const r = await updateserver(p.project.dir, stage);
    assert.equal(r.code, 0, explain(r));
  }
  assert.equal(await recordedLiveSlot(p.project.dir, 'beta'), newSlot);
  // The list of the new slot's files, recorded on the host right before the switch.
  assert.match(await on(`cat /srv/web/files/${newSlot}.manifest`), /^\.\/db\/notes\.db\t\d+\t[\d.]+\n(\.\/uploads\/\S+\t\d+\t[\d.]+\n){3}$/);
  const newRelease = (await on(`readlink /srv/web/${newSlot}`)).trim().split('/').at(-1)!;
  assert.equal((await on('readlink /srv/web/current')).trim(), `/srv/web/releases/${newRelease}`, 'current points at the new slot\'s release after the switch');
  const atSwitch = await tree(newSlot);
  assert.ok(atSwitch.has('uploads/keep.txt') && atSwitch.has('db/notes.db'), [...atSwitch.keys()].join(' '));

  // Users of the new slot: two uploads added, one changed, one removed, and rows (the SQLite file changes).
  await send('PUT', '/files/new-1.txt', 'one');
  await send('PUT', '/files/new-2.txt', 'two');
  await send('PUT', '/files/change-me.txt', 'second version, longer');
  await send('DELETE', '/files/delete-me.txt');
  for (let i = 0; i < 3; i++) await send('POST', '/rows', `after-${i}`);

  const back = await updateserver(p.project.dir, 'rollback', 'beta', '--json');
  assert.equal(back.code, 0, explain(back));
  const report = (JSON.parse(back.stdout) as { changes: ChangeReport }).changes;
  // The host's own account of the slot left, compared with its tree at the switch.
  const expected = diffOf(atSwitch, await tree(newSlot));
  assert.deepEqual(expected, { added: ['uploads/new-1.txt', 'uploads/new-2.txt'], changed: ['db/notes.db', 'uploads/change-me.txt'], removed: ['uploads/delete-me.txt'] });
  assert.equal(report.files?.length, 1);
  const files = report.files![0]!;
  assert.deepEqual([files.service, files.host, files.slot, files.servingSlot, files.unknown], ['web', p.betaHosts[0], newSlot, oldSlot, undefined]);
  assert.deepEqual({ added: paths(files.added), changed: paths(files.changed), removed: paths(files.removed) }, expected);
  assert.deepEqual(files.changed.find((c) => c.path === 'uploads/change-me.txt'), { path: 'uploads/change-me.txt', size: 22, sizeBefore: 19 });
  // The same report in the file under the state directory and in history; the terminal's lines are in the warnings.
  const saved = JSON.parse(await readFile(join(p.project.stateDir, 'changes', `beta-${report.runId}.json`), 'utf8')) as ChangeReport;
  assert.deepEqual(saved.files, report.files);
  const entry = (JSON.parse((await updateserver(p.project.dir, 'history', 'beta', '--json')).stdout) as HistoryEntry[]).at(-1)!;
  assert.deepEqual(entry.changes?.files, report.files);
  const warnings = (JSON.parse(back.stdout) as { warnings: string[] }).warnings;
  assert.ok(warnings.includes(`web: files of slot ${newSlot} on ${p.betaHosts[0]} (/srv/web/files/${newSlot}) were left behind; slot ${oldSlot} serves without what was written to them since it went live: 2 added, 2 changed, 1 removed`), warnings.join('\n'));

  // The webhook carries the counts.
  assert.deepEqual(lastHookChanges()?.web?.files, { added: 2, changed: 2, removed: 1 });
  // Back on the old slot: its release behind `current`, its data as it was.
  assert.equal(await recordedLiveSlot(p.project.dir, 'beta'), oldSlot);
  assert.equal((await on('readlink /srv/web/current')).trim(), `/srv/web/releases/${oldRelease}`, 'current points back at the old release after the rollback');
  assert.equal((await on(`cat /srv/web/files/${oldSlot}/uploads/change-me.txt`)).trim(), 'first change-me.txt');
});

test('an automatic rollback (failed watch check) reports the files written to the new slot meanwhile', async () => {
  await writeFile(join(p.project.dir, 'healthchecks', 'web.yaml'), checks(15000));
  const oldSlot = await recordedLiveSlot(p.project.dir, 'beta');
  const promotion = updateserver(p.project.dir, 'beta', '--force');
  const deadline = Date.now() + 30_000;
  while ((await fetch(`${p.url.beta}/`, { headers: { connection: 'close' } }).then((r) => r.headers.get('x-slot')).catch(() => oldSlot)) === oldSlot) {
    assert.ok(Date.now() < deadline, 'beta never switched');
    await new Promise((r) => setTimeout(r, 100));
  }
  // copy-self keeps writes frozen until the watch is over: what reaches the new slot's files now is the
  // operator's (or a job's) own, written on the host; the poison file ends the watch.
  const left = otherSlot(oldSlot);
  await on(`echo late > /srv/web/files/${left}/uploads/late.txt && echo x > /srv/web/files/${left}/uploads/poison`);
  const run = await promotion;
  assert.equal(run.code, 1, explain(run));
  assert.match(run.stderr, /traffic was switched back to the previous slot \(automatic rollback\)/);
  assert.ok(run.stderr.includes(`web: files of slot ${left} on ${p.betaHosts[0]} (/srv/web/files/${left}) were left behind; slot ${oldSlot} serves without what was written to them since it went live: 2 added, 0 changed, 0 removed`), run.stderr);
  const entry = (JSON.parse((await updateserver(p.project.dir, 'history', 'beta', '--json')).stdout) as HistoryEntry[]).at(-1)!;
  assert.equal(entry.changes?.action, 'automatic rollback');
  assert.deepEqual(paths(entry.changes!.files![0]!.added), ['uploads/late.txt', 'uploads/poison']);
  assert.equal(await recordedLiveSlot(p.project.dir, 'beta'), oldSlot);
  assert.deepEqual(lastHookChanges()?.web?.files, { added: 2, changed: 0, removed: 0 });
});

test('check: the host has the programs files data needs', async () => {
  const r = await updateserver(p.project.dir, 'check', 'beta');
  const line = r.stdout.split('\n').find((l) => l.includes('files tools'));
  assert.ok(line, explain(r));
  assert.match(line!, /find, sort, diff, sha256sum, xargs, awk, cut, rsync \(files data of web\)/);
  assert.doesNotMatch(line!, /not found/);
});
