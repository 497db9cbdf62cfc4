import { pendingMigration } from '../../src/data/migrations/steps.js';
import { PG_INSTALL, markStatement } from '../../src/data/changes/log-sql.js';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadProfile } from '../../src/config/load.js';
import { connectionOf, type Project, type SlotName, type Stage } from '../../src/config/model.js';
import { renderConfigFiles } from '../../src/commands/config-files.js';
import { ALIVE, startSlot, stopSlot } from '../../src/commands/process.js';
import { serverHealthCommand } from '../../src/lb/haproxy.js';
import { setMapCommand, showMapCommand } from '../../src/lb/map.js';
import { renderPlan } from '../../src/plan/render.js';
import { buildPlan, releasesToPurge, slotContext, type HostSlots, type PlanInput, type ServiceFacts } from '../../src/plan/build.js';
import type { Action, Phase, PhaseName, Plan } from '../../src/plan/plan.js';
import { TUNNEL_RSH } from '../../src/commands/relay.js';

const R_3 = '2026.11.17-090000-0.7.0-77777777';
const R_2 = '2026.11.18-090000-0.8.0-88888888';
const R0 = '2026.11.20-101010-0.9.0-00c0ffee';
const R1 = '2026.11.21-120000-1.0.0-3fa9c2d1';
const R2 = '2026.11.22-223104-1.1.0-9e8d7c6b';
const MAP = '/etc/haproxy/live-staging.map';
const NOW = new Date('2026-11-22T22:31:04.000Z');
const CACHE = '/home/ci/project/.updateserver/cache/web';
const SSH_E = 'ssh -p 22 -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=/home/ci/project/known_hosts ' +
  '-o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=10 -i /home/ci/.ssh/id_ed25519 -o IdentitiesOnly=yes';

/** A stage exactly as src/config/load.ts resolves it from a profile: every default and derived field included. */
async function loadStage(lines: string[]): Promise<{ stage: Stage; project: Project }> {
  const dir = mkdtempSync(join(tmpdir(), 'updateserver-plan-'));
  try {
    mkdirSync(join(dir, 'profiles'));
    writeFileSync(join(dir, 'profiles', 'staging.yaml'), [
      'from: dev',
      'ssh: { user: deploy, key: /home/ci/.ssh/id_ed25519, knownHosts: /home/ci/project/known_hosts }',
      ...lines,
      '',
    ].join('\n'));
    const project = { dir, stateDir: join(dir, '.updateserver') };
    return { stage: await loadProfile(project, 'staging'), project };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const WEB_LINES = [
  '  web:',
  '    hosts: [h1, h2]',
  '    root: /srv/web',
  '    currentLink: false', // the current link's own plan steps are tested in topology.test
  '    listen: 8080',
  '    slots: { a: { port: 8081 }, b: { port: 8082 } }',
  '    start: node server.mjs --host {address} --port {port} --slot {slot} --release {release}',
];

// Loaded before any test is defined; each fixture is what a user's profile would give.
const MAIN = await loadStage([
  'hosts: { h1: { address: 10.0.0.11 }, h2: { address: 10.0.0.12 } }',
  `loadBalancers: { lb1: { socket: /run/haproxy/lb1.sock, mapFile: ${MAP} } }`,
  'services:',
  ...WEB_LINES,
]);
const STAGE = MAIN.stage;
const WEB = STAGE.services.web!;

const slots = (a: string | undefined, b: string | undefined, running: [boolean, boolean] = [a !== undefined, false], complete: string[] = []): HostSlots =>
  ({ releases: { a, b }, running: { a: running[0], b: running[1] }, complete, partial: [], freeBytes: 50 * 2 ** 30 });

function facts(live: SlotName, release: string, hosts: Record<string, HostSlots>, cacheDir = `${CACHE}/${release}`): ServiceFacts {
  return { live, release, cacheDir, source: `dev: web slot b (${release})`, hosts };
}

/** The main scenario: live slot a runs R1 on both hosts, h1's idle slot b still has (and runs) R0, R2 is promoted. */
function mainInput(): PlanInput {
  return {
    project: MAIN.project, stage: STAGE, from: 'dev', now: NOW, services: ['web'],
    facts: { web: facts('a', R2, { h1: slots(R1, R0, [true, true], [R0, R1]), h2: slots(R1, undefined, [true, false], [R1]) }) },
  };
}

const phase = (plan: Plan, name: PhaseName): Phase => {
  const p = plan.phases.find((x) => x.name === name);
  assert.ok(p, `phase ${name}`);
  return p;
};
const actionsOf = (p: Phase, target: string): Action[] => p.items.flatMap((i) => (i.target === target ? i.actions : []));
const allActions = (phases: readonly Phase[]) => phases.flatMap((p) => p.items.flatMap((i) => i.actions.map((a) => ({ phase: p.name, target: i.target, a }))));
const beforeSwitch = (plan: Plan) => plan.phases.slice(0, plan.phases.findIndex((p) => p.name === 'switch'));

/** The runtime API lines a load-balancer action sends (what apply's Haproxy client writes to the socket). */
const runtimeLines = (a: Action): string[] => {
  switch (a.kind) {
    case 'server-health': return a.servers.map((srv) => serverHealthCommand(a.backend, srv, a.health));
    case 'set-map': return Object.entries(a.entries).map(([k, v]) => setMapCommand(a.file, k, v));
    case 'verify-map': return [showMapCommand(a.file)];
    default: return [];
  }
};
/** Every string an action carries: commands, argv, check targets, runtime lines, files. */
const textOf = (a: Action): string => {
  switch (a.kind) {
    case 'exec': return a.command;
    case 'local': return a.argv.join(' ');
    case 'check': return JSON.stringify(a.target);
    case 'watch': return a.probes.map((p) => JSON.stringify(p.target)).join('\n');
    case 'server-health':
    case 'set-map':
    case 'verify-map': return runtimeLines(a).join('\n');
    case 'drain': return Object.entries(a.servers).map(([backend, hosts]) => `${backend}: ${hosts.join(' ')}`).join('\n');
    case 'persist-map': return a.file;
    default: return JSON.stringify(a);
  }
};
/** Mentions of slot a of /srv/web: its dir, its pid or log file, its port. */
const SLOT_A = /\/srv\/web\/a(?![\w.-])|run\/a\.(pid|log)|:8081\b|"port":8081\b|--port 8081\b|"slot":"a"/;
const SLOT_B = /\/srv\/web\/b(?![\w.-])|run\/b\.(pid|log)|:8082\b|"port":8082\b|--port 8082\b|"slot":"b"/;

describe('the fixture stage', () => {
  test('is the 2-host stage the tests assume', () => {
    assert.deepEqual(Object.keys(STAGE.hosts), ['h1', 'h2']);
    assert.deepEqual(WEB.slots, {
      a: { name: 'a', port: 8081, dir: '/srv/web/a', backend: 'web_a' },
      b: { name: 'b', port: 8082, dir: '/srv/web/b', backend: 'web_b' },
    });
    assert.equal(STAGE.keepReleases, 5);
    assert.equal(WEB.drainTimeoutMs, 30_000);
    assert.equal(WEB.database, undefined);
    assert.deepEqual(WEB.checks.pre.map((c) => c.name), ['health']);
  });
});

describe('buildPlan: a 2-host stage with live slot a', () => {
  const plan = buildPlan(mainInput());

  test('the plan\'s header and summary', () => {
    assert.equal(plan.version, 1);
    assert.equal(plan.action, 'promote');
    assert.equal(plan.stage, 'staging');
    assert.equal(plan.from, 'dev');
    assert.equal(plan.createdAt, '2026-11-22T22:31:04.000Z');
    assert.deepEqual(plan.services, [{
      service: 'web', live: 'a', target: 'b', release: R2, liveRelease: R1, source: `dev: web slot b (${R2})`, hosts: ['h1', 'h2'],
    }]);
    assert.deepEqual(plan.liveAfter, { web: 'b' });
  });

  test('phases come in order: copy, start, check, switch, drain, stop-old', () => {
    const names = plan.phases.map((p) => p.name);
    const main: PhaseName[] = ['copy', 'start', 'check', 'switch', 'drain', 'stop-old'];
    assert.deepEqual(names.filter((n) => main.includes(n)), main);
    for (const name of ['copy', 'start', 'check', 'stop-old'] as const) {
      assert.deepEqual(phase(plan, name).items.map((i) => i.target), ['h1', 'h2'], `${name} has one item per host`);
    }
    assert.deepEqual(phase(plan, 'switch').items.map((i) => i.target), ['lb1']);
    assert.deepEqual(phase(plan, 'drain').items.map((i) => i.target), ['lb1']);
  });

  test('without a database, nothing to freeze, copy or migrate; with 2 releases on each host, nothing to purge', () => {
    assert.deepEqual(plan.phases.filter((p) => p.items.length > 0).map((p) => p.name), ['copy', 'start', 'check', 'switch', 'post', 'drain', 'stop-old']);
  });

  test('copy: rsync (whose remote side first creates releases/ and run/) with link-dest to the live release, through the run\'s SSH connection; then verify, mark complete and point slot b in one round trip', () => {
    assert.deepEqual(actionsOf(phase(plan, 'copy'), 'h1'), [
      {
        // Exactly what runs: the tunnel's remote shell is the same text in every run, its port and token come by environment.
        kind: 'local', host: 'h1', title: `copy web release ${R2}`, route: 'tunnel',
        argv: ['rsync', '-a', '--checksum', '--delete', '--stats', '-e', TUNNEL_RSH, '--rsync-path=mkdir -p /srv/web/releases /srv/web/run && rsync', `--link-dest=../${R1}`,
          `${CACHE}/${R2}/`, `h1:/srv/web/releases/${R2}/`],
      },
      {
        kind: 'exec', host: 'h1', title: `verify ${R2} against its manifest, mark it complete, point slot b at it`,
        command: `{ cd /srv/web/releases/${R2} && sha256sum --quiet --strict -c .updateserver-manifest; } && ` +
          `{ : > /srv/web/releases/${R2}/.updateserver-complete; } && ` +
          '{ if [ -e /srv/web/b ] && [ ! -L /srv/web/b ]; then echo \'/srv/web/b exists and is not a symlink; move it away ' +
          '(updateserver manages it as a pointer to a release)\' >&2; exit 3; fi; ' +
          `ln -sfn /srv/web/releases/${R2} /srv/web/b.updateserver-new && mv -Tf /srv/web/b.updateserver-new /srv/web/b; }`,
      },
    ]);
    const h2Copy = actionsOf(phase(plan, 'copy'), 'h2')[0];
    assert.ok(h2Copy?.kind === 'local');
    assert.deepEqual(h2Copy.argv.slice(8), [`--link-dest=../${R1}`, `${CACHE}/${R2}/`, `h2:/srv/web/releases/${R2}/`]);
  });

  test('copy over OpenSSH (the route of a caller without SSH connections): ssh with the strict options, user@address', () => {
    const viaSsh = buildPlan({ ...mainInput(), relay: 'openssh' });
    assert.deepEqual(actionsOf(phase(viaSsh, 'copy'), 'h1')[0], {
      kind: 'local', host: 'h1', title: `copy web release ${R2}`, route: 'openssh',
      argv: ['rsync', '-a', '--checksum', '--delete', '--stats', '-e', SSH_E, '--rsync-path=mkdir -p /srv/web/releases /srv/web/run && rsync', `--link-dest=../${R1}`,
        `${CACHE}/${R2}/`, `deploy@10.0.0.11:/srv/web/releases/${R2}/`],
    });
  });

  test('start: stop whatever idle slot b runs, then start b with its own context', () => {
    for (const [h, address] of [['h1', '10.0.0.11'], ['h2', '10.0.0.12']] as const) {
      const ctx = slotContext(STAGE, WEB, STAGE.hosts[h]!, 'b', R2);
      assert.deepEqual(ctx, { stage: 'staging', service: 'web', host: h, address, slot: 'b', port: 8082, dir: '/srv/web/b', release: R2, config: '/srv/web/run/b' });
      assert.deepEqual(actionsOf(phase(plan, 'start'), h), [{
        kind: 'exec', host: h, command: `{ ${stopSlot(WEB, 'b', ctx)}; } && { ${startSlot(WEB, 'b', ctx)}; }`,
        title: 'start web/b (port 8082), stopping what ran there',
        // A failure before the switch stops it again.
        undo: { command: stopSlot(WEB, 'b', ctx), title: `stop web/b on ${h} again` },
      }]);
    }
    const start = actionsOf(phase(plan, 'start'), 'h1')[0];
    assert.ok(start?.kind === 'exec' && start.command.endsWith(
      `&& { ${ALIVE}; cd /srv/web/b/ && { setsid bash -c 'node server.mjs --host 10.0.0.11 --port 8082 --slot b --release ${R2}' ` +
      '</dev/null >>/srv/web/run/b.log 2>&1 & p=$!; started "$p" || s=-; echo "$p $s" > /srv/web/run/b.pid; }; }'), JSON.stringify(start));
    assert.ok(start.undo?.command.includes('if [ -f /srv/web/run/b.pid ]; then'), JSON.stringify(start));
  });

  test('check: the pre checks against the idle slot\'s port on each host', () => {
    for (const [h, address] of [['h1', '10.0.0.11'], ['h2', '10.0.0.12']] as const) {
      const actions = actionsOf(phase(plan, 'check'), h);
      assert.equal(actions.length, 1);
      const a = actions[0];
      assert.ok(a?.kind === 'check');
      assert.equal(a.phase, 'pre');
      assert.equal(a.service, 'web');
      assert.deepEqual(a.check, WEB.checks.pre[0]);
      assert.equal(a.check.http?.path, '/health');
      assert.deepEqual(a.target, {
        label: `${h} slot b (${address}:8082)`, host: h, address, port: 8082, slot: 'b', release: R2, sshHost: h,
        context: slotContext(STAGE, WEB, STAGE.hosts[h]!, 'b', R2),
      });
      assert.equal(a.title, `pre check health on ${h} slot b (${address}:8082)`);
    }
  });

  test('nothing before the switch touches the live slot a', () => {
    for (const { phase: p, target, a } of allActions(beforeSwitch(plan))) {
      assert.doesNotMatch(textOf(a), SLOT_A, `${p}/${target}: "${a.title}" mentions slot a`);
      assert.doesNotMatch(a.title, /slot a\b|web\/a\b/, `${p}/${target}: "${a.title}"`);
    }
  });

  test('no stop of slot a before the switch; slot a is stopped in stop-old, after the drain', () => {
    const stopA = (h: string) => stopSlot(WEB, 'a', slotContext(STAGE, WEB, STAGE.hosts[h]!, 'a', R1));
    for (const { a } of allActions(beforeSwitch(plan))) {
      assert.ok(a.kind !== 'exec' || (a.command !== stopA('h1') && a.command !== stopA('h2')), a.title);
    }
    const names = plan.phases.map((p) => p.name);
    assert.ok(names.indexOf('stop-old') > names.indexOf('drain'));
    for (const h of ['h1', 'h2']) {
      assert.deepEqual(actionsOf(phase(plan, 'stop-old'), h), [
        { kind: 'exec', host: h, command: stopA(h), title: 'stop old slot web/a' },
      ]);
    }
    assert.ok(stopA('h1').includes('if [ -f /srv/web/run/a.pid ]; then'), stopA('h1'));
  });

  test('switch: mark b\'s servers up, point the map at web_b, read it back, persist the runtime map', () => {
    const actions = actionsOf(phase(plan, 'switch'), 'lb1');
    assert.deepEqual(actions, [
      {
        kind: 'server-health', loadBalancer: 'lb1', backend: 'web_b', servers: ['h1', 'h2'], health: 'up',
        title: 'mark web_b\'s servers up (they just passed their checks)',
      },
      { kind: 'set-map', loadBalancer: 'lb1', file: MAP, entries: { web: 'web_b' }, title: 'switch traffic' },
      { kind: 'verify-map', loadBalancer: 'lb1', file: MAP, expected: { web: 'web_b' }, title: 'read the map back' },
      { kind: 'persist-map', loadBalancer: 'lb1', file: MAP, title: `rewrite ${MAP} from the runtime map` },
    ]);
    assert.deepEqual(actions.flatMap(runtimeLines), [
      'set server web_b/h1 health up',
      'set server web_b/h2 health up',
      `set map ${MAP} web web_b`,
      `show map ${MAP}`,
    ]);
  });

  test('post: the post checks through the load balancer\'s frontend, after the switch', () => {
    const names = plan.phases.map((p) => p.name);
    assert.ok(names.indexOf('post') > names.indexOf('switch') && names.indexOf('post') < names.indexOf('drain'));
    const post = phase(plan, 'post').items.flatMap((i) => i.actions);
    assert.equal(post.length, WEB.checks.post.length);
    const a = post[0];
    assert.ok(a?.kind === 'check');
    assert.deepEqual(a.target, { label: 'lb1 (127.0.0.1:8080)', host: 'lb1', address: '127.0.0.1', port: 8080, slot: 'b', release: R2 });
  });

  test('drain: web_a on both hosts, until the service\'s drain timeout', () => {
    assert.deepEqual(actionsOf(phase(plan, 'drain'), 'lb1'), [{
      kind: 'drain', loadBalancer: 'lb1', servers: { web_a: ['h1', 'h2'] }, deadlineMs: 30_000,
      title: 'wait for the old slot\'s sessions to finish',
    }]);
  });

  test('the plan is plain data: it survives a JSON round trip unchanged', () => {
    assert.deepEqual(JSON.parse(JSON.stringify(plan)), plan);
  });

  test('the same input gives the same plan', () => {
    assert.deepEqual(buildPlan(mainInput()), plan);
  });
});

describe('buildPlan: link-dest', () => {
  const copyArgv = (hostSlots: HostSlots, live: SlotName = 'a'): string[] => {
    const plan = buildPlan({ ...mainInput(), facts: { web: facts(live, R2, { h1: hostSlots, h2: hostSlots }) } });
    const a = actionsOf(phase(plan, 'copy'), 'h1')[0];
    assert.ok(a?.kind === 'local', `copy of h1 is ${JSON.stringify(a)}`);
    return a.argv;
  };
  const linkDest = (argv: string[]) => argv.filter((x) => x.startsWith('--link-dest'));

  test('prefers the live release over the idle one', () => {
    assert.deepEqual(linkDest(copyArgv(slots(R1, R0))), [`--link-dest=../${R1}`]);
    assert.deepEqual(linkDest(copyArgv(slots(R0, R1), 'b')), [`--link-dest=../${R1}`]);
  });

  test('falls back to the idle slot\'s release when the live slot has none', () => {
    assert.deepEqual(linkDest(copyArgv(slots(undefined, R0))), [`--link-dest=../${R0}`]);
  });

  test('never links from the release being copied', () => {
    assert.deepEqual(linkDest(copyArgv(slots(R2, R0))), [`--link-dest=../${R0}`]);
    assert.deepEqual(linkDest(copyArgv(slots(R2, R2))), []);
  });

  test('a host missing from the facts gets no link-dest', () => {
    const plan = buildPlan({ ...mainInput(), facts: { web: facts('a', R2, { h1: slots(R1, undefined) }) } });
    const a = actionsOf(phase(plan, 'copy'), 'h2')[0];
    assert.ok(a?.kind === 'local');
    assert.deepEqual(linkDest(a.argv), []);
  });
});

describe('buildPlan: a release already complete on a host', () => {
  test('is only pointed at there, never copied or rewritten; other hosts still get the full copy', () => {
    const plan = buildPlan({ ...mainInput(), facts: { web: facts('a', R2, { h1: slots(R1, R2, [true, false], [R1, R2]), h2: slots(R1, undefined, [true, false], [R1]) }) } });
    assert.deepEqual(actionsOf(phase(plan, 'copy'), 'h1').map((a) => a.title), [`point slot b at ${R2}`]);
    assert.deepEqual(actionsOf(phase(plan, 'copy'), 'h2').map((a) => a.title),
      [`copy web release ${R2}`, `verify ${R2} against its manifest, mark it complete, point slot b at it`]);
  });
});

describe('buildPlan: a stage never promoted', () => {
  const plan = buildPlan({
    ...mainInput(), facts: { web: facts('a', R1, { h1: slots(undefined, undefined), h2: slots(undefined, undefined) }) },
  });

  test('has no --link-dest anywhere', () => {
    for (const { a } of allActions(plan.phases)) assert.doesNotMatch(textOf(a), /--link-dest/);
    const copy = actionsOf(phase(plan, 'copy'), 'h1')[0];
    assert.deepEqual(copy?.kind === 'local' && copy.argv, ['rsync', '-a', '--checksum', '--delete', '--stats', '-e', TUNNEL_RSH, '--rsync-path=mkdir -p /srv/web/releases /srv/web/run && rsync',
      `${CACHE}/${R1}/`, `h1:/srv/web/releases/${R1}/`]);
  });

  test('says the live slot runs nothing, still goes a -> b, and stops a (with an empty release) at the end', () => {
    assert.equal(plan.services[0]?.liveRelease, undefined);
    assert.equal(plan.services[0]?.target, 'b');
    assert.deepEqual(plan.liveAfter, { web: 'b' });
    assert.deepEqual(actionsOf(phase(plan, 'stop-old'), 'h1'), [{
      kind: 'exec', host: 'h1', title: 'stop old slot web/a',
      command: stopSlot(WEB, 'a', slotContext(STAGE, WEB, STAGE.hosts.h1!, 'a', '')),
    }]);
    assert.deepEqual(phase(plan, 'purge').items, []);
  });
});

describe('buildPlan: live slot b', () => {
  const plan = buildPlan({ ...mainInput(), facts: { web: facts('b', R2, { h1: slots(R0, R1, [false, true]), h2: slots(R0, R1, [false, true]) }) } });

  test('targets slot a, switches to web_a and drains web_b, and nothing before the switch touches slot b', () => {
    assert.equal(plan.services[0]?.target, 'a');
    assert.equal(plan.services[0]?.liveRelease, R1);
    assert.deepEqual(actionsOf(phase(plan, 'switch'), 'lb1').map(textOf),
      ['set server web_a/h1 health up\nset server web_a/h2 health up', `set map ${MAP} web web_a`, `show map ${MAP}`, MAP]);
    assert.deepEqual(plan.liveAfter, { web: 'a' });
    assert.deepEqual(actionsOf(phase(plan, 'drain'), 'lb1').map(textOf), ['web_b: h1 h2']);
    for (const { phase: p, target, a } of allActions(beforeSwitch(plan))) assert.doesNotMatch(textOf(a), SLOT_B, `${p}/${target}: ${a.title}`);
    assert.match(textOf(actionsOf(phase(plan, 'stop-old'), 'h1')[0]!), /\/srv\/web\/run\/b\.pid/);
  });
});

describe('buildPlan: flip (the idle slot\'s own release goes live)', () => {
  const plan = buildPlan({
    ...mainInput(), mode: 'flip',
    facts: { web: facts('a', R0, { h1: slots(R1, R0, [true, true], [R0, R1]), h2: slots(R1, R0, [true, false], [R0, R1]) }) },
  });

  test('copies nothing, and starts the idle slot only where it does not run', () => {
    assert.equal(plan.action, 'flip');
    assert.deepEqual(phase(plan, 'copy').items, []);
    assert.deepEqual(phase(plan, 'start').items.map((i) => [i.target, i.actions.map((a) => a.title)]), [
      ['h2', ['start web/b (port 8082), stopping what ran there']],
    ]);
    assert.deepEqual(phase(plan, 'check').items.map((i) => i.target), ['h1', 'h2']);
    assert.deepEqual(phase(plan, 'purge').items, []);
  });

  test('still switches to b, drains a and stops a; nothing before the switch touches a', () => {
    assert.deepEqual(actionsOf(phase(plan, 'switch'), 'lb1').map(textOf).slice(0, 2),
      ['set server web_b/h1 health up\nset server web_b/h2 health up', `set map ${MAP} web web_b`]);
    assert.deepEqual(actionsOf(phase(plan, 'drain'), 'lb1').map(textOf), ['web_a: h1 h2']);
    assert.match(textOf(actionsOf(phase(plan, 'stop-old'), 'h1')[0]!), /run\/a\.pid/);
    for (const { phase: p, target, a } of allActions(beforeSwitch(plan))) assert.doesNotMatch(textOf(a), SLOT_A, `${p}/${target}: ${a.title}`);
  });
});

describe('releasesToPurge', () => {
  test('keeps the newest `keep` releases, counting the pinned ones, and never removes a pinned release', () => {
    const all = [R_3, R_2, R0, R1, R2];
    assert.deepEqual(releasesToPurge(all, [R2, R1], 5), []);
    assert.deepEqual(releasesToPurge(all, [R2, R1], 3), [R_2, R_3]);
    assert.deepEqual(releasesToPurge(all, [R2, R1], 2), [R0, R_2, R_3]);
    assert.deepEqual(releasesToPurge(all, [R2, R_3], 2), [R1, R0, R_2]);
  });

  test('an undefined or repeated pin counts once', () => {
    assert.deepEqual(releasesToPurge([R0, R1, R2], [R2, undefined], 2), [R0]);
    assert.deepEqual(releasesToPurge([R0, R1, R2, R2], [R2, R2], 2), [R0]);
  });

  test('never goes below the pinned releases, whatever keep says', () => {
    assert.deepEqual(releasesToPurge([R0, R1, R2], [R2, R1], 1), [R0]);
  });

  test('orders by the date inside the name: {data}-{date}-... keeps the newest even when the data version sorts the other way', () => {
    const old9 = '9-2026.11.20-101010-1.0-aaaaaaa';
    const new10 = '10-2026.11.21-101010-1.1-bbbbbbb';
    const new11 = '11-2026.11.22-101010-1.2-ccccccc';
    assert.deepEqual(releasesToPurge([new10, old9, new11], [new11, undefined], 2), [old9]);
    // Without a date in the names: by name.
    assert.deepEqual(releasesToPurge(['v1-aaaaaaa', 'v2-bbbbbbb', 'v3-ccccccc'], [undefined, undefined], 1), ['v2-bbbbbbb', 'v1-aaaaaaa']);
  });
});

describe('buildPlan: purge', () => {
  test('removes each host\'s complete releases beyond keepReleases, never the new or the live one, after stop-old', async () => {
    const { stage, project } = await loadStage([
      'keepReleases: 3',
      'hosts: { h1: { address: 10.0.0.11 }, h2: { address: 10.0.0.12 } }',
      `loadBalancers: { lb1: { socket: /run/haproxy/lb1.sock, mapFile: ${MAP} } }`,
      'services:',
      ...WEB_LINES,
    ]);
    const plan = buildPlan({
      project, stage, from: 'dev', now: NOW, services: ['web'],
      facts: { web: facts('a', R2, { h1: slots(R1, R0, [true, true], [R_3, R_2, R0, R1]), h2: slots(R1, undefined, [true, false], [R1]) }) },
    });
    const names = plan.phases.map((p) => p.name);
    assert.ok(names.indexOf('purge') > names.indexOf('stop-old'));
    assert.deepEqual(phase(plan, 'purge').items, [{
      target: 'h1',
      actions: [{ kind: 'exec', host: 'h1', command: `cd /srv/web/releases && rm -rf -- ${R_2} ${R_3}`, title: 'remove 2 old release(s) of web beyond the 3 kept' }],
    }]);
  });
});

const MULTI = await loadStage([
  'hosts: { h1: { address: 10.0.0.11 }, h2: { address: 10.0.0.12 } }',
  'loadBalancers:',
  `  lb1: { socket: /run/haproxy/lb1.sock, mapFile: ${MAP} }`,
  '  lb2: { socket: /run/haproxy/lb2.sock, mapFile: /etc/haproxy/lb2.map, address: 127.0.0.2 }',
  'services:',
  ...WEB_LINES,
  '  api:',
  '    hosts: [h2]',
  '    root: /srv/api',
  '    listen: 8090',
  '    slots: { a: { port: 9001 }, b: { port: 9002 } }',
  '    start: node api.mjs --port {port}',
  '    drainTimeoutMs: 60000',
  '  worker:',
  '    hosts: [h1]',
  '    root: /srv/worker',
  '    listen: 8070',
  '    slots: { a: { port: 7001 }, b: { port: 7002 } }',
  '    start: node worker.mjs --port {port}',
]);

describe('buildPlan: two services, two load balancers', () => {
  const multi = MULTI;
  const plan = buildPlan({
    project: multi.project, stage: multi.stage, from: 'dev', now: NOW, services: ['web', 'api'],
    facts: {
      web: facts('a', R2, { h1: slots(R1, undefined), h2: slots(R1, undefined) }),
      api: facts('b', R2, { h2: slots(R0, R1, [false, true]) }, '/cache/api'),
      // Not promoted this time: stays where it is.
      worker: facts('b', R1, { h1: slots(R0, R1, [false, true]) }),
    },
  });

  test('each host gets the actions of every service it carries, in service order', () => {
    assert.deepEqual(actionsOf(phase(plan, 'start'), 'h2').map((a) => a.title),
      ['start web/b (port 8082), stopping what ran there', 'start api/a (port 9001), stopping what ran there']);
    assert.deepEqual(actionsOf(phase(plan, 'start'), 'h1').map((a) => a.title), ['start web/b (port 8082), stopping what ran there']);
    assert.deepEqual(phase(plan, 'check').items.flatMap((i) => i.actions.map((a) => (a.kind === 'check' ? `${a.target.address}:${a.target.port}` : ''))),
      ['10.0.0.11:8082', '10.0.0.12:8082', '10.0.0.12:9001']);
  });

  test('every load balancer switches every promoted service and persists its map; liveAfter keeps the others', () => {
    for (const [name, map] of [['lb1', MAP], ['lb2', '/etc/haproxy/lb2.map']] as const) {
      assert.deepEqual(actionsOf(phase(plan, 'switch'), name).map(textOf), [
        'set server web_b/h1 health up\nset server web_b/h2 health up',
        'set server api_a/h2 health up',
        `set map ${map} web web_b\nset map ${map} api api_a`,
        `show map ${map}`,
        map,
      ]);
    }
    assert.deepEqual(plan.liveAfter, { web: 'b', api: 'a', worker: 'b' });
  });

  test('post checks run through each load balancer\'s frontend for each promoted service', () => {
    const targets = phase(plan, 'post').items.flatMap((i) => i.actions.map((a) => (a.kind === 'check' ? `${a.service}@${a.target.address}:${a.target.port}` : '')));
    assert.deepEqual(targets, ['web@127.0.0.1:8080', 'web@127.0.0.2:8080', 'api@127.0.0.1:8090', 'api@127.0.0.2:8090']);
  });

  test('drain names each promoted service\'s old backend and waits as long as the longest drain timeout', () => {
    assert.deepEqual(phase(plan, 'drain').items.map((i) => i.actions), ['lb1', 'lb2'].map((l) => [{
      kind: 'drain', loadBalancer: l, servers: { web_a: ['h1', 'h2'], api_b: ['h2'] }, deadlineMs: 60_000, title: 'wait for the old slot\'s sessions to finish',
    }]));
  });

  test('the service left out is not touched at all', () => {
    for (const { phase: p, target, a } of allActions(plan.phases)) {
      assert.doesNotMatch(`${textOf(a)} ${a.title}`, /worker|\/srv\/worker|700[12]/, `${p}/${target}: ${a.title}`);
    }
  });
});

describe('buildPlan: addresses', () => {
  test('an IPv6 host address is bracketed in the rsync destination (rsync reads "user@fd00::11:path" as daemon syntax)', async () => {
    const v6 = await loadStage([
      'hosts: { h1: { address: "fd00::11" } }',
      `loadBalancers: { lb1: { socket: /run/haproxy/lb1.sock, mapFile: ${MAP} } }`,
      'services:',
      '  web:',
      '    hosts: [h1]',
      '    root: /srv/web',
      '    listen: 8080',
      '    slots: { a: { port: 8081 }, b: { port: 8082 } }',
      '    start: node server.mjs',
    ]);
    const plan = buildPlan({ project: v6.project, stage: v6.stage, from: 'dev', now: NOW, services: ['web'], facts: { web: facts('a', R2, { h1: slots(R1, undefined) }) }, relay: 'openssh' });
    const copy = actionsOf(phase(plan, 'copy'), 'h1')[0];
    assert.equal(copy?.kind === 'local' && copy.argv.at(-1), `deploy@[fd00::11]:/srv/web/releases/${R2}/`);
  });
});

const WITH_DATA = await loadStage([
  'hosts: { h1: { address: 10.0.0.11 } }',
  `loadBalancers: { lb1: { socket: /run/haproxy/lb1.sock, mapFile: ${MAP} } }`,
  'services:',
  ...WEB_LINES.map((l) => l.replace('[h1, h2]', '[h1]')),
  '    database: { engine: postgres, strategy: copy, names: { a: web_staging_a, b: web_staging_b } }',
  '    configFiles: [{ template: config/app.env.tmpl, path: app.env }]',
]);

describe('buildPlan: config files and --code-only', () => {
  const { stage, project } = WITH_DATA;
  const web = stage.services.web!;
  const dev = { engine: 'postgres' as const, host: '127.0.0.1', port: 5432, user: 'postgres', password: undefined, database: 'web_dev_b' };
  const input = (codeOnly: boolean): PlanInput => ({
    project, stage, from: 'dev', now: NOW, services: ['web'], codeOnly,
    facts: { web: {
      ...facts('a', R2, { h1: slots(R1, R0, [true, false], [R0, R1]) }),
      data: { source: dev, sourceVersion: 2, pending: [{ version: 3, name: 'index', file: 'migrations/web/V0003__index.sql', baseline: false, statements: ['CREATE INDEX items_name ON items (name);'] }] },
      ...(codeOnly ? { kept: { database: 'web_staging_b', version: 2, notApplied: [3] } } : {}),
    } },
  });

  test('the idle slot\'s config files are rendered on each host between stopping and starting it, with its own database', () => {
    const plan = buildPlan(input(false));
    const ctx = slotContext(stage, web, stage.hosts.h1!, 'b', R2);
    const tmpl = `/srv/web/releases/${R2}/config/app.env.tmpl`;
    const start = actionsOf(phase(plan, 'start'), 'h1');
    assert.equal(start.length, 1);
    assert.ok(start[0]?.kind === 'exec');
    assert.equal(start[0].title, 'start web/b (port 8082) with app.env rendered into /srv/web/run/b, stopping what ran there');
    // Stop, render, start, each only if the one before succeeded.
    assert.equal(start[0].command, `{ ${stopSlot(web, 'b', ctx)}; } && { ${renderConfigFiles(web, 'b', ctx, connectionOf(web.database!, 'b'))}; } && { ${startSlot(web, 'b', ctx)}; }`);
    assert.equal(renderConfigFiles(web, 'b', ctx, connectionOf(web.database!, 'b')),
      `{ [ -f ${tmpl} ] || { echo 'config template config/app.env.tmpl is missing from release ${R2}' >&2; exit 3; }; } && ` +
        `mkdir -p /srv/web/run/b && sed -e 's|{stage}|staging|g; s|{service}|web|g; s|{host}|h1|g; s|{address}|10.0.0.11|g; s|{slot}|b|g; s|{port}|8082|g; ` +
        `s|{dir}|/srv/web/b|g; s|{release}|${R2}|g; s|{config}|/srv/web/run/b|g; s|{database}|web_staging_b|g; s|{dbhost}|127.0.0.1|g; s|{dbport}|5432|g; s|{dbuser}|postgres|g' ` +
        `${tmpl} > /srv/web/run/b/app.env.tmp && mv -f /srv/web/run/b/app.env.tmp /srv/web/run/b/app.env`);
    assert.equal(ctx.config, '/srv/web/run/b');
    assert.deepEqual(phase(plan, 'data').items[0]!.actions.map((a) => a.kind), ['exec', 'data-copy', 'migrate', 'change-log']);
    // Where the data comes from and where the migration runs (issue 23): in beta's copy of dev's live database.
    assert.equal(plan.services[0]!.data, 'copy: web_staging_b becomes a copy of dev\'s live database web_dev_b (version 2); migrations 3 run in it, in the copy; dev\'s live database does not have it, so staging runs it first (dev never did; promote dev first to rehearse it there)');
    const migrate = plan.phases.find((ph) => ph.name === 'data')!.items[0]!.actions.find((a) => a.kind === 'migrate');
    assert.ok(migrate?.kind === 'migrate');
    assert.deepEqual(migrate.copiedFrom, undefined, 'no sourceSlot in these facts: nothing to name');
    const text = renderPlan(plan);
    assert.ok(text.includes('         V3 index (migrations/web/V0003__index.sql): one script in one transaction with its ok row\n           sql> CREATE INDEX items_name ON items (name);'), text);
  });

  test('--code-only: no snapshot, copy or migration; the plan says which database the idle slot keeps and what it lacks', () => {
    const plan = buildPlan(input(true));
    assert.deepEqual(phase(plan, 'data').items, []);
    assert.deepEqual(phase(plan, 'freeze').items, []);
    assert.equal(plan.services[0]!.data, '--code-only: no data step; slot b keeps its database web_staging_b as it is (migration version 2; not applied: 3)');
    const full = buildPlan(input(false));
    // Everything else is the same plan.
    for (const name of ['copy', 'start', 'check', 'switch', 'drain', 'stop-old'] as const) assert.deepEqual(phase(plan, name), phase(full, name));
  });
});

describe('buildPlan: every database statement is plan text (issue 16)', () => {
  const { stage, project } = WITH_DATA;
  const dev = { engine: 'postgres' as const, host: '127.0.0.1', port: 5432, user: 'postgres', password: undefined, database: 'web_dev_b' };
  const sqlText = 'CREATE INDEX items_name ON items (name);\n';
  const v3 = pendingMigration('postgres', { version: 3, name: 'index', sql: sqlText, checksum: 'c'.repeat(64), file: 'migrations/web/V0003__index.sql', baseline: false });
  const input = (mode?: 'flip'): PlanInput => ({
    project, stage, from: 'dev', now: NOW, services: ['web'], ...(mode ? { mode, action: 'rollback' as const } : {}),
    facts: { web: { ...facts('a', R2, { h1: slots(R1, R0, [true, true], [R0, R1]) }), data: { source: dev, sourceVersion: 2, pending: [v3], versionTable: false, appliedBy: 'ann@updateserver' } } },
  });

  test('the migrate step holds the version table, the begin and ok rows and the SQL; the change log its one install statement; the dry run prints them', () => {
    const plan = buildPlan(input());
    const [migrate, log] = phase(plan, 'data').items[0]!.actions.slice(2);
    assert.ok(migrate?.kind === 'migrate' && log?.kind === 'change-log');
    assert.equal(migrate.appliedBy, 'ann@updateserver');
    assert.match(migrate.versionTable ?? '', /^CREATE TABLE IF NOT EXISTS updateserver_version /);
    assert.equal(migrate.createDatabase, undefined, 'the copy creates it');
    assert.deepEqual(migrate.pending[0]!.statements, [sqlText.trimEnd()]);
    assert.deepEqual(log.statements, [...PG_INSTALL]);
    const text = renderPlan(plan);
    assert.ok(text.includes("(values 1: 3, 2: 'index', 3: '" + 'c'.repeat(64) + "', 4: 'ann@updateserver', 5: false)"), text);
    assert.ok(text.includes("sql> UPDATE updateserver_version SET status = 'ok', comments = $1, duration_ms = $2, updated = clock_timestamp() WHERE id = $3"), text);
    assert.ok(text.includes('sql> DO $install$'), text);
  });

  test('a rollback ends with the report of the slot it leaves, holding the mark it leaves; a promotion\'s automatic rollback too', () => {
    const back = buildPlan(input('flip'));
    const report = phase(back, 'report').items[0]!.actions[0]!;
    assert.ok(report.kind === 'report-changes');
    assert.deepEqual(report.services.map((s) => [s.left, s.connection.database, s.serving, s.servingDatabase, s.mark]), [['a', 'web_staging_a', 'b', 'web_staging_b', markStatement('postgres')]]);
    const promoted = buildPlan(input());
    const path = promoted.onFailure!.find((f) => f.on.includes('post'))!;
    const auto = path.phases.find((ph) => ph.name === 'report')!.items[0]!.actions[0]!;
    assert.ok(auto.kind === 'report-changes' && auto.action === 'automatic rollback');
    assert.deepEqual(auto.services.map((s) => [s.left, s.connection.database]), [['b', 'web_staging_b']], 'the new slot is the one left');
    assert.equal(promoted.phases.some((ph) => ph.name === 'report'), false, 'a promotion that succeeds leaves no slot behind');
  });
});

describe('buildPlan: command checks', () => {
  const files = { name: 'files', command: { run: 'test -f {dir}/server.mjs && grep -q {release} {config}/release' } } as unknown as import('../../src/config/healthchecks.js').CheckSpec;
  const web = { ...WEB, checks: { ...WEB.checks, pre: [files], post: [files] } };
  const stage = { ...STAGE, services: { web } } as Stage;
  const plan = buildPlan({ ...mainInput(), stage });

  test('carry their command with every placeholder filled in, pre and post, on each host of the service', () => {
    for (const name of ['check', 'post'] as const) {
      const checks = allActions([phase(plan, name)]).map(({ a }) => a).filter((a): a is Extract<Action, { kind: 'check' }> => a.kind === 'check' && a.check.name === 'files');
      assert.deepEqual(checks.map((c) => [c.target.sshHost, c.target.command]), ['h1', 'h2'].map((h) => [h,
        `test -f /srv/web/b/server.mjs && grep -q ${R2} /srv/web/run/b/release`]), name);
    }
  });

  test('the dry run prints that exact text', () => {
    assert.match(renderPlan(plan), new RegExp(`on h1: \\$ test -f /srv/web/b/server\\.mjs && grep -q ${R2.replace(/\./g, '\\.')} /srv/web/run/b/release`));
    assert.doesNotMatch(renderPlan(plan), /\{dir\}|\{release\}|\{config\}/);
  });
});

describe('buildPlan: failure paths are plan data', () => {
  const plan = buildPlan(mainInput());
  const path = (phase: PhaseName) => plan.onFailure?.find((p) => p.on.includes(phase));

  test('before the switch: the new slot is stopped again with each start\'s undo, nothing else', () => {
    assert.equal(path('copy')?.phases.length, 0, 'a failed copy started nothing');
    assert.deepEqual(path('check')?.phases.map((p) => p.name), ['stop-new']);
    assert.deepEqual(path('check')?.phases[0]?.items.map((i) => i.actions), ['h1', 'h2'].map((h) => {
      const ctx = slotContext(STAGE, WEB, STAGE.hosts[h]!, 'b', R2);
      return [{ kind: 'exec', host: h, command: stopSlot(WEB, 'b', ctx), title: `stop web/b on ${h} again` }];
    }));
  });

  test('after the switch (post, watch) and on a failed switch: revert every load balancer, let the new slot\'s requests finish, stop it', () => {
    for (const phase of ['switch', 'post', 'watch'] as const) {
      assert.deepEqual(path(phase)?.phases.map((p) => p.name), ['revert', 'drain-new', 'stop-new'], phase);
      assert.deepEqual(path(phase)?.phases[0]?.items, [{ target: 'lb1', actions: [{ kind: 'revert-map', loadBalancer: 'lb1', file: MAP, entries: { web: 'web_a' }, title: 'switch back to the previous slots' }] }]);
      assert.deepEqual(path(phase)?.phases[1]?.items[0]?.actions, [{ kind: 'drain-new', loadBalancer: 'lb1', backends: ['web_b'], deadlineMs: WEB.drainTimeoutMs, title: 'wait for the requests the new slot received to finish' }]);
    }
    assert.equal(path('drain'), undefined, 'after the watch the new slot serves: no failure path');
  });

  test('the dry run shows them collapsed; --verbose lists each step with its runtime lines and commands', () => {
    const short = renderPlan(plan);
    assert.match(short, /\nIf a step fails:\n {2}in data, start, check: live traffic untouched; the new slot is stopped again: stop the new slot again \(h1, h2\)\n/);
    assert.match(short, /in post, watch: automatic rollback: .*: switch every load balancer back to the previous slots \(lb1\), then let the new slot's requests finish \(lb1\), then stop the new slot again \(h1, h2\)/);
    assert.doesNotMatch(short, /haproxy> set map \S+ web web_a/);
    const full = renderPlan(plan, { failures: 'full' });
    assert.ok(full.includes(`haproxy> ${setMapCommand(MAP, 'web', 'web_a')}`));
    assert.ok(full.includes(`$ ${stopSlot(WEB, 'b', slotContext(STAGE, WEB, STAGE.hosts.h1!, 'b', R2))}`));
  });
});
