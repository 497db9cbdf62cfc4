/*
 * Issue 18: `updateserver refresh` for data kept in files (net 89). An app whose data is an SQLite file
 * (test/fixtures/tiers/notes.mjs) in dev and beta. Users write to beta; `refresh dev --from beta` runs
 * beta's `sqlite3 .backup` on beta's host, relays the copy through the local cache into dev's idle slot
 * and verifies size and SHA-256: dev's idle slot then holds exactly beta's rows, dev's live slot and
 * beta's live file are byte-identical to what they were, and a flip makes dev serve beta's data.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { TIERS_APP } from '../lab/tiers.js';
import { ssh } from '../lab/remote.js';
import { updateserver, explain, recordedLiveSlot, otherSlot } from './cli.js';

const FILES = '    files: { paths: [db], command: "mkdir -p {snapshot}/db && if [ -f db/notes.db ]; then sqlite3 db/notes.db \'.backup {snapshot}/db/notes.db\'; fi" }';
let p: Pipeline;
before(async () => {
  p = await startPipeline({
    net: 89, betaHosts: 1,
    appStart: 'node notes.mjs --host {address} --port {port} --slot {slot} --release {release} --data {files}',
    projectFiles: { 'app/notes.mjs': await readFile(join(TIERS_APP, 'notes.mjs'), 'utf8') },
    devServiceExtra: FILES, betaServiceExtra: FILES,
  });
});
after(async () => { await p?.stop(); });

const host = (name: string) => p.lab.hosts.find((h) => h.name === name)!;
const on = (name: string, command: string) => ssh(p.lab, host(name), command);
const file = (slot: string) => `/srv/web/files/${slot}/db/notes.db`;
// Read without creating: sqlite3 would make an empty file where there is none.
const rows = async (name: string, slot: string) => (await on(name, `if [ -f ${file(slot)} ]; then sqlite3 ${file(slot)} 'SELECT k FROM writes ORDER BY id'; fi`)).split('\n').filter(Boolean);
const hash = async (name: string, slot: string) => (await on(name, `sha256sum < ${file(slot)}`)).trim();

async function write(url: string, keys: string[]): Promise<void> {
  for (const k of keys) {
    const r = await fetch(`${url}/rows`, { method: 'POST', body: k, headers: { connection: 'close' } });
    assert.equal(r.status, 201, `POST ${k} to ${url}: ${r.status} ${await r.text()}`);
  }
}

test('refresh dev --from beta copies beta\'s SQLite file into dev\'s idle slot, verified; both live files untouched', async () => {
  // dev twice, so that its idle slot holds a release a flip can send traffic to.
  for (const args of [['dev'], ['dev', '--force'], ['beta']]) {
    const r = await updateserver(p.project.dir, ...args);
    assert.equal(r.code, 0, explain(r));
  }
  const betaKeys = Array.from({ length: 25 }, (_, i) => `beta-${i}`);
  await write(p.url.beta, betaKeys);
  await write(p.url.dev, ['dev-only-1', 'dev-only-2']);
  const devLive = await recordedLiveSlot(p.project.dir, 'dev');
  const devIdle = otherSlot(devLive);
  const betaLive = await recordedLiveSlot(p.project.dir, 'beta');
  const betaHost = p.betaHosts[0]!;
  const before = { devLive: await hash('dev1', devLive), beta: await hash(betaHost, betaLive) };
  assert.deepEqual(await rows(betaHost, betaLive), betaKeys);

  // The dry run shows every command: beta's .backup on its host, the pull, the push into dev's idle slot, the verification.
  const dry = await updateserver(p.project.dir, 'refresh', 'dev', '--from', 'beta', '--dry-run', '--verbose');
  assert.equal(dry.code, 0, explain(dry));
  const betaAddress = host(betaHost).address;
  // (shell-quoted once more for ssh: '\'' around the .backup argument)
  assert.match(dry.stdout, new RegExp(`root@${betaAddress.replace(/\./g, '\\.')} '.*cd /srv/web/files/${betaLive} && .*sqlite3 db/notes\\.db '\\\\''\\.backup /srv/web/files/${betaLive}\\.snapshot/db/notes\\.db'\\\\''`));
  assert.match(dry.stdout, new RegExp(`rsync .*root@${betaAddress.replace(/\./g, '\\.')}:/srv/web/files/${betaLive}\\.snapshot/db/ .*/cache/files/beta/web/db/`));
  assert.match(dry.stdout, new RegExp(`rsync .*/cache/files/beta/web/db/ root@127\\.0\\.89\\.11:/srv/web/files/${devIdle}/db/`));
  assert.match(dry.stdout, /verify db of beta's web\/[ab] against every copy: size and SHA-256 of each file/);
  assert.doesNotMatch(dry.stdout, new RegExp(`:/srv/web/files/${devLive}/`), 'dev\'s live slot is never a destination');
  // The dry run changed nothing: dev's idle slot still has dev's own rows.
  assert.ok(!(await rows('dev1', devIdle)).some((k) => k.startsWith('beta-')));

  const r = await updateserver(p.project.dir, 'refresh', 'dev', '--from', 'beta');
  assert.equal(r.code, 0, explain(r));
  assert.match(r.stdout, new RegExp(`web: slot ${devIdle}'s files \\(db\\) on dev1 <- beta's web/${betaLive} on ${betaHost}`));
  assert.match(r.stdout, /size and SHA-256 of every file compared: they match/);
  // Exactly beta's rows, in beta's order, in dev's idle slot; byte for byte the .backup of beta's file.
  assert.deepEqual(await rows('dev1', devIdle), betaKeys);
  assert.equal(await hash('dev1', devIdle), (await on(betaHost, `sha256sum < /srv/web/files/${betaLive}.snapshot/db/notes.db`)).trim());
  assert.equal(await hash('dev1', devLive), before.devLive, 'dev\'s live file is untouched');
  assert.equal(await hash(betaHost, betaLive), before.beta, 'beta\'s live file is untouched');
  assert.equal(await recordedLiveSlot(p.project.dir, 'dev'), devLive, 'refresh moves no traffic');

  // A flip sends dev's traffic to the refreshed slot: it serves beta's 25 rows.
  const flip = await updateserver(p.project.dir, 'flip', 'dev');
  assert.equal(flip.code, 0, explain(flip));
  const answer = await fetch(`${p.url.dev}/`, { headers: { connection: 'close' } });
  assert.equal(answer.headers.get('x-slot'), devIdle);
  assert.equal((await answer.text()).trim(), String(betaKeys.length));
});

test('refresh refuses the live slot for files, and changes nothing', async () => {
  const devLive = await recordedLiveSlot(p.project.dir, 'dev');
  const before = await hash('dev1', devLive);
  const r = await updateserver(p.project.dir, 'refresh', 'dev', '--from', 'beta', '--slot', devLive);
  assert.equal(r.code, 2, explain(r));
  assert.match(r.stderr, new RegExp(`slot ${devLive} of web is live in dev: refresh replaces only a slot that serves no traffic`));
  assert.equal(await hash('dev1', devLive), before);
});
