/*
 * kill -9 of the orchestrator at one step boundary after another, under load: the fault-injection hook
 * UPDATESERVER_KILL_AT (src/apply/apply.ts) makes `updateserver beta` SIGKILL itself right after the
 * journal records that step, so every boundary is hit exactly, not by a timer. After each kill the live
 * slot has served every request (0 failed), the next run names the interrupted run and refuses, and
 * --abandon or --resume recovers; the next promotion (the next kill point's) then goes through.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import pg from 'pg';
import { join } from 'node:path';
import { get, type ClientRequest } from 'node:http';
import { startPipeline, type Pipeline } from '../lab/pipeline.js';
import { startLoad } from '../lab/load.js';
import { updateserver, updateserverKilledAt, type CliResult, explain } from './cli.js';
import { loadProfile } from '../../src/config/load.js';
import { Haproxy } from '../../src/lb/haproxy.js';

const NET = 78;
let p: Pipeline;

/** What beta serves now, on a new connection. */
function served(): Promise<{ release: string; slot: string; version: string }> {
  return new Promise((resolve, reject) => {
    get(`${p.url.beta}/`, { agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body) as { release: string; slot: string; version: string }) : reject(new Error(`status ${res.statusCode}`))));
    }).on('timeout', function (this: ClientRequest) { this.destroy(new Error('no answer within 5 s')); }).on('error', reject);
  });
}

/** `updateserver beta` that kills itself at the given boundary; resolves with the signal that ended it. */
const killedRun = (killAt: string) => updateserverKilledAt(p.project.dir, killAt, 'beta');

/*
 * The boundaries, in plan order (two beta hosts, one load balancer; each host's copy is 5 steps:
 * prepare, rsync, verify, mark complete, point the slot; the data phase stops the idle slot on each
 * host, copies the live database (copy-self, under a write freeze) and migrates it). `live` is who serves after --abandon: the
 * previous release until traffic has moved for good, the new one once the drain has begun.
 */
const POINTS: Array<{ at: string; what: string; live: 'old' | 'new'; how: '--abandon' | '--resume' }> = [
  { at: 'copy:1:begin', what: 'during the copy: rsync announced, not run', live: 'old', how: '--resume' },
  { at: 'copy:4', what: 'after the copy on every host', live: 'old', how: '--abandon' },
  { at: 'freeze:1', what: 'after the write freeze (copy-self)', live: 'old', how: '--abandon' },
  { at: 'data:3', what: 'after the data copy, before the migration', live: 'old', how: '--resume' },
  { at: 'start:2', what: 'after the start on every host', live: 'old', how: '--abandon' },
  { at: 'check:2', what: 'after the health checks', live: 'old', how: '--resume' },
  { at: 'switch:1', what: 'after marking the new servers up, before the map changes', live: 'old', how: '--abandon' },
  { at: 'switch:2', what: 'right after the switch (set map) on the load balancer', live: 'old', how: '--abandon' },
  { at: 'switch:4', what: 'after persist-map', live: 'old', how: '--resume' },
  { at: 'post:1', what: 'after the post-switch check', live: 'old', how: '--abandon' },
  { at: 'drain:1:begin', what: 'during the drain', live: 'new', how: '--abandon' },
  { at: 'stop-old:2', what: 'after stopping the old slot on every host', live: 'new', how: '--resume' },
  { at: 'purge:1', what: 'after the purge on one host', live: 'new', how: '--abandon' },
];

// Not under another test's prefix (dry-run.test drops ustest_orc_*): the integration tier may run files side by side.
const DBS = ['ustest_kp_a', 'ustest_kp_b'];

async function dropDbs(): Promise<void> {
  const c = new pg.Client({ host: '127.0.0.1', user: 'postgres', database: 'postgres' });
  await c.connect();
  try { for (const d of DBS) await c.query(`DROP DATABASE IF EXISTS ${d} WITH (FORCE)`); } finally { await c.end(); }
}

/** Whether beta's load balancer refuses writes (the copy-self freeze) for web. */
async function frozen(): Promise<boolean> {
  const lb = (await loadProfile(p.project, 'beta')).loadBalancers.lb!;
  return (await Haproxy.forLoadBalancer(lb).showMap(lb.mapFile)).some((e) => e.key === 'web.readonly' && e.value === 'on');
}

before(async () => {
  await dropDbs();
  // keepReleases 2: old releases pile up quickly, so the last promotions have a purge phase to be killed in.
  // beta's data is a copy of its own live database, taken under a write freeze: two more boundaries.
  p = await startPipeline({
    net: NET, betaTopExtra: 'keepReleases: 2',
    betaServiceExtra: ['    database:', '      engine: postgres', '      strategy: copy-self', `      names: { a: ${DBS[0]}, b: ${DBS[1]} }`].join('\n'),
  });
  await mkdir(join(p.project.dir, 'migrations', 'web'), { recursive: true });
  await writeFile(join(p.project.dir, 'migrations', 'web', 'V0001__items.sql'), "CREATE TABLE items (id serial PRIMARY KEY, name text);\nINSERT INTO items (name) VALUES ('one');\n");
  for (const stage of ['dev', 'beta']) {
    const r = await updateserver(p.project.dir, stage);
    assert.equal(r.code, 0, explain(r));
  }
});

after(async () => {
  await p?.stop();
  await dropDbs();
});

test(`kill -9 at ${POINTS.length} step boundaries in turn, under load: live serves with 0 failed requests and the next run recovers`, async () => {
  const seen = new Set<string>();
  let version = '1.0.0';
  for (const [i, point] of POINTS.entries()) {
    const t0 = Date.now();
    const before = await served();
    // A new release in dev when beta already runs dev's (otherwise the interrupted one is promoted again).
    if (before.version === version) {
      version = `5.${i}.0`;
      await writeFile(join(p.appDir, 'VERSION'), `${version}\n`);
      const dev = await updateserver(p.project.dir, 'dev');
      assert.equal(dev.code, 0, explain(dev));
    }

    const load = startLoad(`${p.url.beta}/`, { connections: 2 });
    let stopped = false;
    try {
      const killed = await killedRun(point.at);
      assert.equal(killed.signal, 'SIGKILL', `${point.at}: the run was to kill itself ${point.what}, but it ended with exit ${killed.code}:\n${killed.stderr}`);

      // Live still serves (whichever slot the killed run left it on), and the next plain run refuses,
      // naming the interrupted run and its last step, and changes nothing.
      const atKill = await served();
      const refused = await updateserver(p.project.dir, 'beta');
      assert.equal(refused.code, 1, `${point.at}: ${explain(refused)}`);
      const phase = point.at.split(':')[0]!;
      const state = point.at.endsWith(':begin') ? 'unfinished' : 'end';
      assert.match(refused.stderr, new RegExp(`an earlier promote of beta .* did not finish: it stopped during ".+" \\(phase ${phase}, ${state}\\)`), `${point.at}: ${explain(refused)}`);
      assert.match(refused.stderr, /took over the lock of beta from .*: its process \d+ is gone/);
      assert.equal((await served()).release, atKill.release, `${point.at}: refusing changed nothing`);
      // Killed inside the freeze: writes stay refused (reads served) until the recovery ends it.
      if (point.at === 'freeze:1') assert.equal(await frozen(), true, 'the killed run left the write freeze on');

      const recovered = await updateserver(p.project.dir, 'beta', point.how);
      assert.equal(recovered.code, 0, `${point.at} ${point.how}: ${explain(recovered)}`);
      const now = await served();
      if (point.how === '--resume') {
        assert.equal(now.version, version, `${point.at} --resume: promoted ${version} after cleaning up\n${recovered.stdout}`);
      } else {
        assert.match(recovered.stdout, /abandoned the interrupted run: /);
        assert.equal(now.version === version ? 'new' : 'old', point.live, `${point.at} --abandon: ${recovered.stdout}`);
        if (point.live === 'old') assert.equal(now.release, before.release);
      }
      assert.equal(await frozen(), false, `${point.at}: the write freeze was ended`);
      await new Promise((r) => setTimeout(r, 200));
      const result = await load.stop();
      stopped = true;
      assert.ok(result.requests > 50, `${point.at}: only ${result.requests} requests`);
      assert.equal(result.non2xx + result.errors + result.timeouts, 0, `${point.at}: ${JSON.stringify(result)}`);
      console.log(`kill -9 ${point.what} (${point.at}), ${point.how}: ${result.requests} requests, 0 failed; ${JSON.stringify(result.byRelease)}; ${Date.now() - t0} ms`);
      seen.add(point.at);

      // Nothing left behind: no problem in status, the stopped side of each host is not running twice.
      const status = await updateserver(p.project.dir, 'status', 'beta', '--json');
      assert.equal(status.code, 0, explain(status));
      const json = JSON.parse(status.stdout) as { problems: string[]; services: Array<{ hosts: Record<string, { running: Record<string, boolean> }> }> };
      assert.deepEqual(json.problems, [], `${point.at}: ${status.stdout}`);
      for (const h of p.betaHosts) {
        const other = now.slot === 'a' ? 'b' : 'a';
        assert.equal(json.services[0]!.hosts[h]!.running[other], false, `${point.at}: ${h} slot ${other} was stopped`);
      }
    } finally {
      if (!stopped) await load.stop();
    }
  }
  assert.equal(seen.size, POINTS.length);

  // And a promotion after the last recovery goes through as usual.
  await writeFile(join(p.appDir, 'VERSION'), '6.0.0\n');
  assert.equal((await updateserver(p.project.dir, 'dev')).code, 0);
  const last = await updateserver(p.project.dir, 'beta');
  assert.equal(last.code, 0, explain(last));
  assert.equal((await served()).version, '6.0.0');
});
