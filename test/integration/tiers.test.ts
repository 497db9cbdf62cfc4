/*
 * Issue 18's proof on the lab: seed 004's system, scaled down, through dev -> beta -> test -> prod
 * (test/lab/tiers.ts). A "server" tier (TCP, its data in files: a "pack" command, then copied per slot,
 * in dev from its own live slot (copy-self), in every later stage from the stage before it), a "client" tier (HTTP, 3 instances on 2 hosts in prod) that reads from its own
 * slot's server, and a worker with no frontend. A second release goes through every stage with prod
 * under load, then prod is rolled back under the same load: zero failed requests throughout. Checked
 * on the hosts themselves: which processes run (per instance), which server each client tier used,
 * the data files of both slots (the old one byte-identical after the rollback), the current link.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startTiersLab, STAGES, type TiersLab } from '../lab/tiers.js';
import { startLoad } from '../lab/load.js';
import { ssh } from '../lab/remote.js';
import { updateserver, explain } from './cli.js';

let t: TiersLab;
before(async () => { t = await startTiersLab(30); });
after(async () => { await t?.stop(); });

const on = (host: string, command: string) => ssh(t.lab, t.host(host), command);

/** Which of a slot's instances run on a host: "1" per live pid file, "0" per missing or dead one (its first word is the pid). */
async function running(host: string, root: string, slot: string, instances = 1): Promise<string> {
  const files = Array.from({ length: instances }, (_, i) => `${root}/run/${slot}${i === 0 ? '' : `.${i + 1}`}.pid`);
  return (await on(host, files.map((f) => `if [ -f ${f} ] && read -r p t < ${f} && kill -0 "$p" 2>/dev/null; then printf 1; else printf 0; fi`).join('; '))).trim();
}

async function get(url: string): Promise<{ status: number; slot: string | null; release: string | null; zeo: string | null }> {
  const res = await fetch(url, { headers: { connection: 'close' } });
  await res.text();
  return { status: res.status, slot: res.headers.get('x-slot'), release: res.headers.get('x-release'), zeo: res.headers.get('x-zeo') };
}

async function promote(stage: string): Promise<void> {
  const r = await updateserver(t.project.dir, stage);
  assert.equal(r.code, 0, explain(r));
}

let v1 = '';

/** prod's dry run: the tiers in order, the stop in reverse, the data pulled from test's live slot with its exact argv. */
async function dryRunShowsTheOrder(): Promise<void> {
  const r = await updateserver(t.project.dir, 'prod', '--dry-run', '--verbose');
  assert.equal(r.code, 0, explain(r));
  const at = (text: string) => { const i = r.stdout.indexOf(text); assert.ok(i >= 0, `the dry run lacks "${text}":\n${r.stdout}`); return i; };
  assert.ok(at('Start the idle slot (tier 1: server)') < at('Health-check the idle slot on every host (tier 1: server)'));
  assert.ok(at('Health-check the idle slot on every host (tier 1: server)') < at('Start the idle slot (tier 2: client, worker)'));
  assert.ok(at('Stop the old slot (kept on disk for rollback) (tier 2: client, worker)') < at('Stop the old slot (kept on disk for rollback) (tier 1: server)'));
  at(`root@${t.host('test1').address}:/srv/zeo/files/a.snapshot/var/`);
  at('start client/a instance 2 (port 8002)');
  at('haproxy> set map');
}

test('the first release goes through dev, beta, test and prod; each client tier reads from its own slot\'s server', async () => {
  for (const stage of STAGES) await promote(stage);
  const answer = await get(`${t.url.prod}/`);
  assert.equal(answer.status, 200);
  assert.equal(answer.slot, 'b');
  v1 = answer.release!;
  assert.match(answer.zeo!, new RegExp(`^slot=b release=${v1} records=0$`));
  // 2 client instances on prod1, 1 on prod2, the server on prod1 and the worker on prod2, all slot b.
  assert.equal(await running('prod1', '/srv/client', 'b', 2), '11');
  assert.equal(await running('prod2', '/srv/client', 'b'), '1');
  assert.equal(await running('prod1', '/srv/zeo', 'b'), '1');
  assert.equal(await running('prod2', '/srv/worker', 'b'), '1');
  assert.match(await on('prod2', 'cat /srv/worker/run/b/beat'), new RegExp(`^${v1} slot=b `));
  // Every instance answers on its own port, through its own server line.
  for (const [host, port] of [['prod1', 8011], ['prod1', 8012], ['prod2', 8011]] as const) {
    assert.equal((await get(`http://${t.host(host).address}:${port}/`)).slot, 'b');
  }
  assert.equal((await on('prod1', 'readlink /srv/client/current')).trim(), `/srv/client/releases/${v1}`);
  // A shared directory is linked into the release on every host, never copied.
  for (const host of ['prod1', 'prod2']) {
    assert.equal((await on(host, `readlink /srv/client/releases/${v1}/var/uploads && test -d /srv/client/shared/var/uploads && echo ok`)).trim(), '/srv/client/shared/var/uploads\nok');
  }
});

test('a second release under load: dev -> beta -> test -> prod, data copied down the pipeline, then prod rolled back; zero failed requests, old data byte-identical', async () => {
  // Data is made in dev (seed 004: "all changes only happen on the dev system") and travels with the release.
  for (const word of ['alpha', 'beta', 'gamma']) {
    const res = await fetch(`${t.url.dev}/add`, { method: 'POST', body: word, headers: { connection: 'close' } });
    assert.equal(res.status, 201, await res.text());
  }
  // prod's own live data, which the rollback must find as it was.
  assert.equal((await fetch(`${t.url.prod}/add`, { method: 'POST', body: 'omega', headers: { connection: 'close' } })).status, 201);
  const before = (await on('prod1', 'sha256sum < /srv/zeo/files/b/var/data.txt')).trim();
  await writeFile(join(t.appDir, 'VERSION'), '1.1.0\n');

  const load = startLoad(`${t.url.prod}/`, { connections: 8 });
  try {
    for (const stage of STAGES) {
      if (stage === 'prod') await dryRunShowsTheOrder();
      await promote(stage);
    }
    const now = await get(`${t.url.prod}/`);
    assert.equal(now.slot, 'a');
    const v2 = now.release!;
    assert.notEqual(v2, v1);
    // The new client slot reads from the new server slot, whose data came from dev through beta and test.
    assert.equal(now.zeo, `slot=a release=${v2} records=3`);
    const devData = (await on('dev1', 'sha256sum < /srv/zeo/files/a/var/data.txt')).trim();
    for (const [host, stage] of [['beta1', 'beta'], ['test1', 'test'], ['prod1', 'prod']] as const) {
      assert.equal((await on(host, 'sha256sum < /srv/zeo/files/a/var/data.txt')).trim(), devData, `${stage}'s new slot holds dev's data`);
    }
    assert.equal((await on('prod1', 'sha256sum < /srv/zeo/files/b/var/data.txt')).trim(), before, 'the old slot\'s data file is untouched');
    assert.equal(await running('prod1', '/srv/client', 'a', 2), '11');
    assert.equal(await running('prod1', '/srv/client', 'b', 2), '00', 'old client instances stopped');
    assert.equal(await running('prod1', '/srv/zeo', 'b'), '0', 'old server slot stopped');
    assert.equal(await running('prod2', '/srv/worker', 'a') + await running('prod2', '/srv/worker', 'b'), '10', 'the worker moved with its slot');
    assert.equal((await on('prod2', 'readlink /srv/client/current')).trim(), `/srv/client/releases/${v2}`);
    // Both releases see one uploads directory.
    await on('prod2', `echo kept > /srv/client/releases/${v1}/var/uploads/file`);
    assert.equal((await on('prod2', `cat /srv/client/releases/${v2}/var/uploads/file`)).trim(), 'kept');

    // A write to the new slot, then the rollback: the old slot comes back with its own data, as it was.
    assert.equal((await fetch(`${t.url.prod}/add`, { method: 'POST', body: 'delta', headers: { connection: 'close' } })).status, 201);
    const back = await updateserver(t.project.dir, 'rollback', 'prod');
    assert.equal(back.code, 0, explain(back));
    const old = await get(`${t.url.prod}/`);
    assert.equal(old.slot, 'b');
    assert.equal(old.zeo, `slot=b release=${v1} records=1`);
    assert.equal((await on('prod1', 'sha256sum < /srv/zeo/files/b/var/data.txt')).trim(), before, 'rollback finds the old slot\'s file byte-identical');
    assert.equal(await running('prod1', '/srv/client', 'b', 2) + await running('prod2', '/srv/client', 'b'), '111');
    assert.equal(await running('prod1', '/srv/client', 'a', 2) + await running('prod2', '/srv/client', 'a'), '000');
    assert.equal(await running('prod2', '/srv/worker', 'a') + await running('prod2', '/srv/worker', 'b'), '01', 'the worker rolled back with its slot');
    assert.match(await on('prod2', 'cat /srv/worker/run/b/beat'), new RegExp(`^${v1} slot=b `));
    assert.equal((await on('prod1', 'readlink /srv/client/current')).trim(), `/srv/client/releases/${v1}`, 'current moved back');
  } finally {
    const result = await load.stop();
    console.log(`load on prod: ${JSON.stringify(result)}`);
    assert.equal(result.errors + result.non2xx + result.timeouts, 0, `failed requests: ${JSON.stringify(result)}`);
    assert.ok(result.requests > 500, `too little load to mean anything: ${result.requests}`);
    assert.ok(Object.keys(result.byRelease).length >= 2, `both releases served under load: ${JSON.stringify(result.byRelease)}`);
  }
});
