/*
 * Issue 21 item 4 without a lab: the list of a slot's files recorded right before a switch and compared
 * when traffic leaves it (the commands run here by bash on a real directory), the plan steps that do it
 * (promote: record before the switch, list in the automatic rollback's path; flip: list the slot left once
 * stopped), and the report's lines and webhook counts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compareManifest, parseFilesLeft, recordManifest } from '../../src/commands/files-manifest.js';
import { filesCounts, filesLeftLines, filesLeftOf } from '../../src/data/files-left.js';
import { loadProfile } from '../../src/config/load.js';
import { buildPlan, type HostSlots, type ServiceFacts } from '../../src/plan/build.js';
import type { Action, Plan } from '../../src/plan/plan.js';

// With pipefail, as the strictest shell a host could run them in.
const bash = (command: string) => execFileSync('bash', ['-o', 'pipefail', '-c', command], { encoding: 'utf8' });

test('the list recorded at the switch against the tree now: exactly the files added, changed and removed', () => {
  const root = mkdtempSync(join(tmpdir(), 'updateserver-files-left-'));
  try {
    // `missing`: a path nothing was written to yet lists nothing, and fails nothing.
    const service = { root, files: { paths: ['db', 'uploads', 'missing'], strategy: 'copy-self' as const, command: undefined } };
    const dir = join(root, 'files', 'b');
    mkdirSync(join(dir, 'db'), { recursive: true });
    mkdirSync(join(dir, 'uploads', 'sub dir'), { recursive: true });
    writeFileSync(join(dir, 'db', 'notes.db'), 'rows');
    writeFileSync(join(dir, 'uploads', 'keep.txt'), 'same');
    writeFileSync(join(dir, 'uploads', 'sub dir', 'old.png'), 'gone soon');
    writeFileSync(join(dir, 'uploads', 'same-size.txt'), 'abcd');
    // Nothing recorded yet: the comparison says so instead of reporting every file as added.
    assert.equal(parseFilesLeft(bash(compareManifest(service, 'b'))), undefined);
    bash(recordManifest(service, 'b'));
    assert.deepEqual(parseFilesLeft(bash(compareManifest(service, 'b'))), { added: [], changed: [], removed: [] });
    writeFileSync(join(dir, 'db', 'notes.db'), 'rows and more rows');
    // Same size, new content: the modification time tells.
    writeFileSync(join(dir, 'uploads', 'same-size.txt'), 'wxyz');
    utimesSync(join(dir, 'uploads', 'same-size.txt'), new Date(), new Date(Date.now() + 5000));
    unlinkSync(join(dir, 'uploads', 'sub dir', 'old.png'));
    writeFileSync(join(dir, 'uploads', 'sub dir', 'new file.jpg'), 'new!');
    writeFileSync(join(dir, 'uploads', 'b.txt'), '');
    const diff = parseFilesLeft(bash(compareManifest(service, 'b')))!;
    assert.deepEqual(diff.added, [{ path: 'uploads/b.txt', size: 0 }, { path: 'uploads/sub dir/new file.jpg', size: 4 }]);
    assert.deepEqual(diff.changed, [{ path: 'db/notes.db', size: 18, sizeBefore: 4 }, { path: 'uploads/same-size.txt', size: 4, sizeBefore: 4 }]);
    assert.deepEqual(diff.removed, [{ path: 'uploads/sub dir/old.png', size: 9 }]);
    // The comparison leaves nothing behind but the list it compared with.
    assert.equal(bash(`ls ${root}/files`).trim().split('\n').sort().join(' '), 'b b.manifest');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

async function stage() {
  const dir = mkdtempSync(join(tmpdir(), 'updateserver-files-left-p-'));
  try {
    mkdirSync(join(dir, 'profiles'));
    writeFileSync(join(dir, 'profiles', 'prod.yaml'), [
      'source: { path: app }',
      'hosts: { h1: { address: 10.0.0.1 }, h2: { address: 10.0.0.2 } }',
      'loadBalancers: { lb: { socket: /run/lb.sock, mapFile: /etc/haproxy/prod.map } }',
      'services:',
      '  web:',
      '    hosts: [h1, h2]', '    root: /srv/web', '    listen: 8080',
      '    slots: { a: { port: 8001 }, b: { port: 8002 } }',
      '    start: node notes.mjs --data {files}',
      '    files: { paths: [db, uploads] }',
      '',
    ].join('\n'));
    return await loadProfile({ dir, stateDir: join(dir, '.us') }, 'prod');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
const R1 = '2026.11.21-120000-1.0.0';
const R2 = '2026.11.22-120000-1.1.0';
const hostSlots = (): HostSlots => ({ releases: { a: R1, b: R2 }, running: { a: true, b: false }, complete: [R1, R2], partial: [], freeBytes: undefined });
const facts = (): Record<string, ServiceFacts> => ({ web: { live: 'a', release: R2, cacheDir: '/c', source: 't', hosts: { h1: hostSlots(), h2: hostSlots() } } });
const execsOf = (phases: Plan['phases']) => phases.flatMap((p) => p.items.flatMap((i) => i.actions)).filter((a): a is Extract<Action, { kind: 'exec' }> => a.kind === 'exec');

test('plan: the new slot\'s list is recorded after the last checks, before the switch; an automatic rollback lists it once stopped', async () => {
  const s = await stage();
  const plan = buildPlan({ project: { dir: '/p', stateDir: '/p/.us' }, stage: s, from: 'source', services: ['web'], facts: facts(), now: new Date(0) });
  const checkAt = plan.phases.map((p) => p.name).lastIndexOf('check');
  assert.ok(checkAt < plan.phases.findIndex((p) => p.name === 'switch'));
  const records = execsOf([plan.phases[checkAt]!]).filter((a) => a.title.startsWith('record the list'));
  assert.deepEqual(records.map((a) => a.host), ['h1', 'h2']);
  assert.match(records[0]!.command, /cd \/srv\/web\/files\/b && \{ \{ find \.\/db \.\/uploads -type f -printf '%p\\t%s\\t%T@\\n' 2>\/dev\/null \|\| true; \} \| LC_ALL=C sort; \} > \/srv\/web\/files\/b\.manifest\.tmp && mv -f/);
  // A promotion does not list the old slot (its data went into the new slot's copy).
  assert.equal(execsOf(plan.phases).filter((a) => a.output).length, 0);
  const auto = plan.onFailure!.find((p) => p.on.includes('watch'))!;
  const names = auto.phases.map((p) => p.name);
  assert.ok(names.indexOf('files-left') > names.indexOf('stop-new'), `after stop-new: ${names.join(', ')}`);
  const listed = execsOf(auto.phases.filter((p) => p.name === 'files-left'));
  assert.deepEqual(listed.map((a) => [a.host, a.output]), [['h1', { kind: 'files-left', service: 'web', slot: 'b' }], ['h2', { kind: 'files-left', service: 'web', slot: 'b' }]]);
  assert.match(listed[0]!.command, /diff --old-line-format='- %L' --new-line-format='\+ %L' --unchanged-line-format='' \/srv\/web\/files\/b\.manifest \/srv\/web\/files\/b\.manifest\.now/);
});

test('plan: a rollback records the list of the slot it goes to and lists the slot it leaves after stopping it', async () => {
  const s = await stage();
  const plan = buildPlan({ project: { dir: '/p', stateDir: '/p/.us' }, stage: s, from: 'prod', services: ['web'], facts: facts(), now: new Date(0), mode: 'flip', action: 'rollback' });
  const stopOld = plan.phases.find((p) => p.name === 'stop-old')!;
  for (const item of stopOld.items) {
    const [stop, list] = item.actions as Array<Extract<Action, { kind: 'exec' }>>;
    assert.match(stop!.title, /^stop old slot web\/a/);
    assert.deepEqual(list!.output, { kind: 'files-left', service: 'web', slot: 'a' });
    assert.match(list!.command, /^if \[ -f \/srv\/web\/files\/a\.manifest \]; then .* else echo 'files-left no-manifest'; fi$/);
  }
  assert.equal(execsOf(plan.phases).filter((a) => a.title.startsWith('record the list of web/b')).length, 2);
});

test('report: per host, the paths by kind; unknown when nothing was recorded or listed; counts per service', async () => {
  const s = await stage();
  const plan = buildPlan({ project: { dir: '/p', stateDir: '/p/.us' }, stage: s, from: 'prod', services: ['web'], facts: facts(), now: new Date(0), mode: 'flip', action: 'rollback' });
  const files = filesLeftOf(s, plan, [
    { kind: 'files-left', service: 'web', slot: 'a', host: 'h1', stdout: 'files-left ok\n- ./db/notes.db\t4\t1.0\n+ ./db/notes.db\t9\t2.0\n+ ./uploads/x.png\t3\t2.0\n- ./uploads/y.png\t7\t1.0\n' },
    { kind: 'files-left', service: 'web', slot: 'a', host: 'h2', stdout: 'files-left no-manifest\n' },
  ], false);
  assert.equal(files.length, 2);
  assert.deepEqual([files[0]!.added, files[0]!.changed, files[0]!.removed], [[{ path: 'uploads/x.png', size: 3 }], [{ path: 'db/notes.db', size: 9, sizeBefore: 4 }], [{ path: 'uploads/y.png', size: 7 }]]);
  assert.deepEqual([files[0]!.slot, files[0]!.servingSlot, files[0]!.dir], ['a', 'b', '/srv/web/files/a']);
  assert.match(files[1]!.unknown!, /no list of its files was recorded at its switch/);
  const lines = filesLeftLines(files);
  assert.equal(lines[0], 'web: files of slot a on h1 (/srv/web/files/a) were left behind; slot b serves without what was written to them since it went live: 1 added, 1 changed, 1 removed');
  assert.deepEqual(lines.slice(1, 4), ['  added: uploads/x.png', '  changed: db/notes.db', '  removed: uploads/y.png']);
  assert.match(lines[4]!, /^web: files of slot a on h2 .*: no list of its files was recorded/);
  assert.deepEqual(filesCounts(files), { web: { added: 1, changed: 1, removed: 1 } });
  // A step that did not run is said, not taken for "nothing written".
  assert.match(filesLeftOf(s, plan, [], false)[0]!.unknown!, /were not listed/);
});

test('check: the probe of the programs files data needs names exactly the missing ones', async () => {
  const { FILES_TOOLS, filesToolsProbe } = await import('../../src/check/hosts.js');
  const bin = mkdtempSync(join(tmpdir(), 'updateserver-files-tools-'));
  try {
    const which = (t: string) => execFileSync('bash', ['-c', `command -v ${t}`], { encoding: 'utf8' }).trim();
    const run = () => execFileSync('/bin/bash', ['-c', filesToolsProbe()], { encoding: 'utf8', env: { PATH: bin } });
    assert.deepEqual(run().split('\n').filter(Boolean), [...FILES_TOOLS]);
    for (const t of FILES_TOOLS.filter((x) => x !== 'diff' && x !== 'rsync')) execFileSync('ln', ['-s', which(t), join(bin, t)]);
    assert.deepEqual(run().split('\n').filter(Boolean), ['diff', 'rsync']);
    execFileSync('ln', ['-s', which('diff'), join(bin, 'diff')]);
    execFileSync('ln', ['-s', which('rsync'), join(bin, 'rsync')]);
    assert.equal(run(), '');
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
});
