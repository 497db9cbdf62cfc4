/*
 * Issue 18, data in files: an app whose data is an SQLite file (test/fixtures/tiers/notes.mjs) in its
 * slot's data directory. A copy-self promotion under a stream of writes: the copy is taken with
 * `sqlite3 .backup` under the read-only freeze, verified by size and checksum, and every acknowledged
 * write is in the new live slot's file. A rollback then finds the old slot's file byte-identical, and
 * it holds exactly the writes that slot acknowledged.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { TIERS_APP } from '../lab/tiers.js';
import { startWriters } from '../lab/writers.js';
import { ssh } from '../lab/remote.js';
import { updateserver, explain } from './cli.js';

const FILES = '    files: { paths: [db], command: "mkdir -p {snapshot}/db && if [ -f db/notes.db ]; then sqlite3 db/notes.db \'.backup {snapshot}/db/notes.db\'; fi" }';
let p: Pipeline;
before(async () => {
  p = await startPipeline({
    net: 31, betaHosts: 1,
    appStart: 'node notes.mjs --host {address} --port {port} --slot {slot} --release {release} --data {files}',
    projectFiles: { 'app/notes.mjs': await readFile(join(TIERS_APP, 'notes.mjs'), 'utf8') },
    devServiceExtra: FILES, betaServiceExtra: FILES,
  });
});
after(async () => { await p?.stop(); });

const beta1 = () => p.lab.hosts.find((h) => h.name === 'beta1')!;
const on = (command: string) => ssh(p.lab, beta1(), command);
const rows = async (slot: string) => (await on(`sqlite3 /srv/web/files/${slot}/db/notes.db 'SELECT k FROM writes ORDER BY id'`)).split('\n').filter(Boolean);
const hash = async (slot: string) => (await on(`sha256sum < /srv/web/files/${slot}/db/notes.db`)).trim();

test('copy-self keeps every acknowledged write; a rollback finds the old slot\'s file byte-identical', async () => {
  for (const stage of ['dev', 'beta']) {
    const r = await updateserver(p.project.dir, stage);
    assert.equal(r.code, 0, explain(r));
  }
  const writers = startWriters(p.url.beta, 'w', 2);
  let result;
  try {
    assert.ok(await writers.until((w) => (w.bySlot.b ?? 0) >= 15, 20_000), 'writes reach slot b');
    await writeFile(join(p.appDir, 'VERSION'), '1.1.0\n');
    const dev = await updateserver(p.project.dir, 'dev');
    assert.equal(dev.code, 0, explain(dev));
    const dry = await updateserver(p.project.dir, 'beta', '--dry-run', '--verbose');
    assert.match(dry.stdout, /freeze writes to web \(read-only\) while web's files are copied/);
    assert.match(dry.stdout, /sqlite3 db\/notes\.db '\.backup \/srv\/web\/files\/b\.snapshot\/db\/notes\.db'/);
    assert.match(dry.stdout, /rsync -a --delete --no-whole-file --checksum "\$from"\/db\/ \/srv\/web\/files\/a\/db\//);
    const beta = await updateserver(p.project.dir, 'beta');
    assert.equal(beta.code, 0, explain(beta));
    assert.match(beta.stderr + beta.stdout, /copy db of web\/b into a/);
    assert.ok(await writers.until((w) => (w.bySlot.a ?? 0) >= 15, 20_000), 'writes reach slot a after the switch');
  } finally {
    result = await writers.stop();
  }
  console.log(`writes: ${JSON.stringify(result.statuses)} by slot ${JSON.stringify(result.bySlot)}`);
  // Every acknowledged write is in the live slot's file: those of slot b came with the copy.
  const live = await rows('a');
  const missing = result.acked.filter((k) => !live.includes(k));
  assert.deepEqual(missing, [], `acknowledged writes missing from slot a: ${missing.length} of ${result.acked.length} (${JSON.stringify(result.statuses)})`);
  // 201, or 503 from the freeze (retried by the writers); nothing else.
  const unexpected = Object.keys(result.statuses).filter((s) => s !== '201' && s !== '503');
  assert.deepEqual(unexpected, [], `statuses: ${JSON.stringify(result.statuses)}`);
  const oldRows = await rows('b');
  const oldHash = await hash('b');
  // The old slot holds exactly the writes acknowledged before the freeze: a prefix of slot a's rows.
  assert.deepEqual(live.slice(0, oldRows.length), oldRows);
  assert.equal(oldRows.length, result.bySlot.b);

  const back = await updateserver(p.project.dir, 'rollback', 'beta');
  assert.equal(back.code, 0, explain(back));
  const answer = await fetch(`${p.url.beta}/`, { headers: { connection: 'close' } });
  assert.equal(answer.headers.get('x-slot'), 'b');
  assert.equal((await answer.text()).trim(), String(oldRows.length));
  assert.equal(await hash('b'), oldHash, 'the old slot\'s SQLite file is byte-identical after the rollback');
});
