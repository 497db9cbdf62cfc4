import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadProfile } from '../../src/config/load.js';
import type { Project, Stage } from '../../src/config/model.js';
import { quoteAll } from '../../src/commands/shell.js';
import { serverHealthCommand } from '../../src/lb/haproxy.js';
import { setMapCommand, showMapCommand } from '../../src/lb/map.js';
import { buildPlan, type HostSlots } from '../../src/plan/build.js';
import type { Action, Plan } from '../../src/plan/plan.js';
import { renderPlan } from '../../src/plan/render.js';

const R1 = '2026.11.21-120000-1.0.0-3fa9c2d1';
const R2 = '2026.11.22-223104-1.1.0-9e8d7c6b';
const MAP = '/etc/haproxy/live-staging.map';

/** A stage exactly as src/config/load.ts resolves it from a profile (the key path has a space on purpose). */
async function loadStage(hostsLine = 'hosts: { h1: { address: 10.0.0.11 }, h2: { address: 10.0.0.12 } }', webExtra: string[] = []): Promise<{ stage: Stage; project: Project }> {
  const dir = mkdtempSync(join(tmpdir(), 'updateserver-render-'));
  try {
    mkdirSync(join(dir, 'profiles'));
    writeFileSync(join(dir, 'profiles', 'staging.yaml'), [
      'from: dev',
      'ssh: { user: deploy, port: 2222, key: "/home/ci/my keys/id_ed25519", knownHosts: /home/ci/project/known_hosts }',
      hostsLine,
      `loadBalancers: { lb1: { socket: /run/haproxy/lb1.sock, mapFile: ${MAP} } }`,
      'services:',
      '  web:',
      '    hosts: [h1, h2]',
      '    root: /srv/web',
      '    currentLink: false', // the current link's own plan steps are tested in topology.test
      '    listen: 8080',
      '    slots: { a: { port: 8081 }, b: { port: 8082 } }',
      '    start: node server.mjs --port {port} --release {release}',
      ...webExtra,
      '  api:',
      '    hosts: [h2]',
      '    root: /srv/api',
      '    currentLink: false', // the current link's own plan steps are tested in topology.test
      '    listen: 8090',
      '    slots: { a: { port: 9001 }, b: { port: 9002 } }',
      '    start: node api.mjs --port {port}',
      '',
    ].join('\n'));
    const project = { dir, stateDir: join(dir, '.updateserver') };
    return { stage: await loadProfile(project, 'staging'), project };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const { stage: STAGE, project: PROJECT } = await loadStage();
const V6 = await loadStage('hosts: { h1: { address: "fd00::11" }, h2: { address: "fd00::12" } }');

const slots = (a: string | undefined, b: string | undefined): HostSlots =>
  ({ releases: { a, b }, running: { a: a !== undefined, b: false }, complete: [], partial: [], freeBytes: undefined });

function makePlan(): Plan {
  return buildPlan({
    project: PROJECT, stage: STAGE, from: 'dev',
    now: new Date('2026-11-22T22:31:04.000Z'), services: ['web', 'api'],
    facts: {
      web: { live: 'a', release: R2, cacheDir: `/cache/web/${R2}`, source: 'dev (web_b)', hosts: { h1: slots(R1, undefined), h2: slots(R1, undefined) } },
      api: { live: 'b', release: R2, cacheDir: `/cache/api/${R2}`, source: 'dev (api_a)', hosts: { h2: slots(undefined, undefined) } },
    },
  });
}

/** What an operator must be able to read for each action: its shell command, argv, URL or runtime lines. */
function expectedCommandLines(a: Action): string[] {
  switch (a.kind) {
    case 'exec': return [`$ ${a.command}`];
    case 'local': return [`(local) $ ${quoteAll(a.argv)}`];
    case 'check': return a.check.http ? [`${a.check.http.method} http://${a.target.address}:${a.target.port}${a.check.http.path}`] : [];
    case 'server-health': return a.servers.map((s) => `haproxy> ${serverHealthCommand(a.backend, s, a.health)}`);
    case 'set-map': return Object.entries(a.entries).map(([k, v]) => `haproxy> ${setMapCommand(a.file, k, v)}`);
    case 'verify-map': return [`haproxy> ${showMapCommand(a.file)}`];
    case 'persist-map': return [`haproxy> ${showMapCommand(a.file)}`];
    default: return [];
  }
}

describe('renderPlan', () => {
  const plan = makePlan();
  const text = renderPlan(plan);
  const lines = text.split('\n');

  test('starts with what moves where', () => {
    assert.deepEqual(lines.slice(0, 6), [
      'Plan: promote dev -> staging',
      `  web: slot a (${R1}) stays live until the switch; slot b gets ${R2} on h1, h2`,
      '    from dev (web_b)',
      `  api: slot b (nothing) stays live until the switch; slot a gets ${R2} on h2`,
      '    from dev (api_a)',
      '',
    ]);
    assert.ok(text.endsWith('\n'));
  });

  test('lists the phases in order, numbered, each with its items', () => {
    const headings = lines.filter((l) => /^\d+\. /.test(l));
    // Phases without items (no database: no freeze, data or unfreeze; no watch window; nothing to purge) are left out.
    const shown = plan.phases.filter((p) => p.items.length > 0);
    assert.deepEqual(headings, shown.map((p, i) => `${i + 1}. ${p.title}`));
    assert.deepEqual(shown.map((p) => p.name), ['copy', 'start', 'check', 'switch', 'post', 'drain', 'stop-old']);
    for (const p of plan.phases) for (const item of p.items) assert.ok(lines.includes(`   [${item.target}]`), item.target);
  });

  test('contains every action\'s title and every command, each on its own line', () => {
    let count = 0;
    for (const p of plan.phases) {
      for (const item of p.items) {
        for (const a of item.actions) {
          assert.ok(lines.includes(`     - ${a.title}`), `title "${a.title}"`);
          for (const expected of expectedCommandLines(a)) {
            assert.ok(lines.some((l) => l === `         ${expected}` || [' ', ','].some((next) => l.startsWith(`         ${expected}${next}`))),
              `${p.name}/${item.target}: ${JSON.stringify(expected)} not in the rendered plan`);
            count++;
          }
        }
      }
    }
    assert.ok(count > 20);
  });

  test('every exec command appears verbatim, prefixed by "$ "', () => {
    const execs = plan.phases.flatMap((p) => p.items.flatMap((i) => i.actions)).filter((a): a is Extract<Action, { kind: 'exec' }> => a.kind === 'exec');
    // Per service and host: verify + mark complete + point (copy); stop idle + start (start); stop old. web on h1, h2 and api on h2.
    assert.equal(execs.length, 3 * 3);
    for (const a of execs) assert.ok(lines.includes(`         $ ${a.command}`), a.command);
  });

  test('health checks show the request they make: the idle slot on each host before the switch, the frontend after', () => {
    for (const l of [
      'GET http://10.0.0.11:8082/health (expect 200)',
      'GET http://10.0.0.12:8082/health (expect 200)',
      'GET http://10.0.0.12:9001/health (expect 200)',
      'GET http://127.0.0.1:8080/health (expect 200)',
      'GET http://127.0.0.1:8090/health (expect 200)',
    ]) assert.ok(lines.includes(`         ${l}`), l);
  });

  test('an IPv6 host\'s check shows a usable URL, the address in brackets', () => {
    const v6 = buildPlan({
      project: V6.project, stage: V6.stage, from: 'dev', now: new Date('2026-11-22T22:31:04.000Z'), services: ['web'],
      facts: { web: { live: 'a', release: R2, cacheDir: `/cache/web/${R2}`, source: 'dev', hosts: { h1: slots(R1, undefined), h2: slots(R1, undefined) } } },
    });
    const out = renderPlan(v6).split('\n');
    assert.ok(out.includes('         GET http://[fd00::11]:8082/health (expect 200)'), out.filter((l) => l.includes('GET ')).join('\n'));
  });

  test('the switch lines are the exact runtime commands', () => {
    for (const l of [
      'haproxy> set server web_b/h1 health up',
      'haproxy> set server web_b/h2 health up',
      'haproxy> set server api_a/h2 health up',
      `haproxy> set map ${MAP} web web_b`,
      `haproxy> set map ${MAP} api api_a`,
    ]) assert.ok(lines.includes(`         ${l}`), l);
    assert.ok(lines.some((l) => l.startsWith(`         haproxy> show map ${MAP}`)));
  });

  test('the drain step names the old backends and the deadline', () => {
    const drain = plan.phases.find((p) => p.name === 'drain')?.items[0]?.actions[0];
    assert.ok(drain);
    const i = lines.indexOf(`     - ${drain.title}`);
    assert.ok(i > 0);
    assert.match(lines[i + 1] ?? '', /web_a/);
    assert.match(lines[i + 1] ?? '', /api_b/);
    assert.match(lines[i + 1] ?? '', /30000 ms/);
  });

  test('the map file to be rewritten is named', () => {
    const persist = plan.phases.find((p) => p.name === 'switch')?.items[0]?.actions.find((a) => a.kind === 'persist-map');
    assert.ok(persist);
    const i = lines.indexOf(`     - ${persist.title}`);
    assert.ok(i > 0);
    assert.ok(lines[i + 1]?.startsWith(`         haproxy> show map ${MAP}`), lines[i + 1]);
    assert.ok(lines[i + 1]?.includes(`write its entries to ${MAP}`), lines[i + 1]);
  });

  test('a rendered local command, pasted into a shell, runs the very argv of the plan', () => {
    const copy = plan.phases.find((p) => p.name === 'copy')?.items[0]?.actions.find((a) => a.kind === 'local');
    assert.ok(copy?.kind === 'local');
    const rendered = lines.find((l) => l.startsWith('         (local) $ '))?.slice('         (local) $ '.length);
    assert.ok(rendered);
    // The key path has a space: the rendering must keep -e's value one word.
    const r = spawnSync('bash', ['-c', `printf '%s\\0' ${rendered}`], { encoding: 'utf8' });
    assert.deepEqual(r.stdout.split('\0').slice(0, -1), copy.argv);
  });

  test('without commands: titles only', () => {
    const short = renderPlan(plan, { commands: false });
    assert.doesNotMatch(short, /^\s+\$ /m);
    assert.doesNotMatch(short, /haproxy>/);
    assert.doesNotMatch(short, /\(local\)/);
    for (const p of plan.phases) for (const item of p.items) for (const a of item.actions) assert.ok(short.includes(`     - ${a.title}\n`));
    assert.ok(short.length < text.length);
  });

  test('a flip: its own header, and phases without items are left out and the rest numbered on', () => {
    const flip = buildPlan({
      project: PROJECT, stage: STAGE, from: 'staging', mode: 'flip',
      now: new Date('2026-11-22T22:31:04.000Z'), services: ['web'],
      facts: { web: { live: 'a', release: R1, cacheDir: '', source: 'slot b on staging', hosts: { h1: slots(R2, R1), h2: slots(R2, R1) } } },
    });
    const out = renderPlan(flip).split('\n');
    assert.equal(out[0], 'Plan: flip staging to its other slot');
    assert.deepEqual(out.filter((l) => /^\d+\. /.test(l)), [
      '1. Start the idle slot', '2. Health-check the idle slot on every host', '3. Switch traffic on every load balancer',
      '4. Check the new slot through every load balancer', '5. Drain the old slot', '6. Stop the old slot (kept on disk for rollback)',
    ]);
    assert.ok(!out.some((l) => l.includes('(local)')));
  });

  test('the same plan renders the same text', () => {
    assert.equal(renderPlan(makePlan()), text);
  });

  test('a data copy shows the size of the snapshot it would take, in the title and in bytes with where it comes from', async () => {
    for (const [engine, how] of [['postgres', 'pg_database_size'], ['mysql', 'data + index length of its tables']] as const) {
      const db = await loadStage(undefined, [`    database: { engine: ${engine}, strategy: copy-self, names: { a: web_a, b: web_b } }`]);
      const source = { engine, host: '127.0.0.1', port: 5432, user: 'u', password: undefined, database: 'web_a' };
      const withData = buildPlan({
        project: db.project, stage: db.stage, from: 'dev', now: new Date('2026-11-22T22:31:04.000Z'), services: ['web'],
        facts: { web: { live: 'a', release: R2, cacheDir: `/cache/web/${R2}`, source: 'dev', hosts: { h1: slots(R1, undefined), h2: slots(R1, undefined) },
          data: { source, sourceVersion: 3, pending: [], sourceSlot: { stage: 'staging', slot: 'a' }, sourceBytes: 1_610_612_736 } } },
      });
      const out = renderPlan(withData).split('\n');
      const i = out.indexOf('     - snapshot web_a (1.5 GiB) into web_b');
      assert.ok(i > 0, out.join('\n'));
      assert.equal(out[i + 2], `         snapshot size: 1.5 GiB (1610612736 bytes, ${how})`);
      assert.ok(out.includes('         no pending migration'));
      // copy-self: the freeze, then a wait for the writes accepted before it, before anything is copied.
      const freeze = withData.phases.find((ph) => ph.name === 'freeze')!.items[0]!.actions;
      // The map file follows every change of the runtime map (issue 23): the freeze is written at once, and so is its end.
      assert.deepEqual(freeze.map((a) => a.kind), ['set-map', 'persist-map', 'settle']);
      const unfreeze = withData.phases.find((ph) => ph.name === 'unfreeze')!.items[0]!.actions;
      assert.deepEqual(unfreeze.map((a) => a.kind), ['set-map', 'persist-map']);
      assert.deepEqual(freeze[2], { kind: 'settle', loadBalancer: 'lb1', backends: ['web_a'], deadlineMs: 30_000, title: 'wait for the requests to web accepted before the freeze' });
      assert.ok(out.includes('         wait until web_a have no request in flight (at most 30000 ms, else stop: a write among them could be missing from the copy)'));
      assert.ok(withData.phases.findIndex((ph) => ph.name === 'freeze') < withData.phases.findIndex((ph) => ph.name === 'data'));
    }
  });
});
