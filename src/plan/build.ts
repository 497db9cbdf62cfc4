/*
 * buildPlan turns what was read about the world into the steps of a promotion. It is synchronous and
 * takes every fact as a parameter, so the unit tests can check exact commands for any situation.
 */
import type { Host, Project, Service, SlotName, Stage } from '../config/model.js';
import { connectionOf } from '../config/model.js';
import { idleSlot, readonlyKey } from '../config/slot.js';
import type { DatabaseConnection } from '../config/model.js';
import { configDir, finishRelease, pointSlot, prepareReleaseDirs, releaseDir, removeReleases, verifyManifest } from '../commands/release.js';
import { startSlot, stopSlot } from '../commands/process.js';
import { renderConfigFiles } from '../commands/config-files.js';
import { pushArgv, relayRoute, type RelayRoute } from '../commands/relay.js';
import { expand, type SlotContext } from '../commands/placeholders.js';
import type { Action, CheckTargetSpec, Phase, Plan, PlanItem, ServicePlan } from './plan.js';
import type { CheckPhase, CheckSpec } from '../config/healthchecks.js';
import { PLAN_VERSION } from './plan.js';
import { formatBytes } from '../bytes.js';
import type { PendingMigration } from '../data/migrations/steps.js';
import { describeData } from './data-note.js';
import { failurePaths } from './failure.js';
import { rolloutOff, rolloutPhase, type Rollouts } from './rollout.js';

/** What was read about one host for one service. */
export interface HostSlots {
  releases: Record<SlotName, string | undefined>;
  running: Record<SlotName, boolean>;
  /** Releases on the host that were fully copied, verified and built. */
  complete: string[];
  /** Release directories left unfinished by a failed or interrupted run. */
  partial: string[];
  /** Bytes available on the filesystem of the service root. */
  freeBytes: number | undefined;
}

/** What was read about a service's data: where the snapshot comes from and what migrations remain. */
export interface DataFacts {
  /** The database to snapshot (copy: the previous stage's live slot; copy-self: this stage's). */
  source: DatabaseConnection | undefined;
  /** Migration version of the source (what the copy will have), and the migrations the copy needs. */
  sourceVersion: number | undefined;
  pending: PendingMigration[];
  /** The stage and slot whose database is the source, for the release record. */
  sourceSlot?: { stage: string; slot: SlotName };
  /** Size of the source database (what the snapshot will copy), read-only, for the plan. */
  sourceBytes?: number;
}

/** With --code-only: the idle slot's database as it is, which the new release will use unchanged. */
export interface KeptData {
  database: string;
  /** Its migration version (undefined: none applied), and the migrations it lacks that are not applied. */
  version: number | undefined;
  notApplied: number[];
}

export interface ServiceFacts {
  live: SlotName;
  data?: DataFacts;
  /** Set with --code-only for a service with a database: no data step runs. */
  kept?: KeptData;
  /** The release to promote, already present in the local relay cache. */
  release: string;
  /** Local directory of the release in the relay cache. */
  cacheDir: string;
  /** Human description of where the release comes from. */
  source: string;
  /** The pull into the cache that the plan's first phase runs; none when cached. */
  fetch?: ServicePlan['fetch'];
  /** A later stage's release: the stage it comes from and the hash of the source host's manifest. */
  pull?: { from: string; manifestHash: string };
  hosts: Record<string, HostSlots>;
}

export interface PlanInput {
  project: Project;
  stage: Stage;
  from: string;
  facts: Record<string, ServiceFacts>;
  /** Services to promote (all by default). */
  services: string[];
  now: Date;
  /**
   * promote: copy the release into the idle slot and (re)start it. flip: the idle slot keeps the
   * release it has; it is started only where it is not running.
   */
  mode?: 'promote' | 'flip';
  /** What the history calls the run (a rollback is a flip back). */
  action?: Plan['action'];
  /** --code-only: no snapshot, copy or migration; each idle slot keeps the database it has. */
  codeOnly?: boolean;
  /** How rsync reaches the hosts (default: through the run's own SSH connections, see commands/relay.ts). */
  relay?: RelayRoute;
  /** Progressive rollouts by service (src/rollout/profile.ts rolloutOf): steps before the switch. */
  rollouts?: Rollouts;
}

export function slotContext(stage: Stage, service: Service, host: Host, slot: SlotName, release: string): SlotContext {
  return {
    stage: stage.name, service: service.name, host: host.name, address: host.address,
    slot, port: service.slots[slot].port, dir: service.slots[slot].dir, release, config: configDir(service, slot),
    ...(service.database ? { database: service.database.names[slot] } : {}),
  };
}

function hostOf(stage: Stage, name: string): Host {
  const h = stage.hosts[name];
  if (!h) throw new Error(`internal: host ${name} missing from stage ${stage.name}`);
  return h;
}

/** The {date} part of a release name wherever the template put it ("" without one), for ordering. */
const DATE_IN_NAME = /\d{4}\.\d{2}\.\d{2}-\d{6}/;
const byAge = (a: string, b: string) => {
  const [da, db] = [DATE_IN_NAME.exec(a)?.[0] ?? '', DATE_IN_NAME.exec(b)?.[0] ?? ''];
  return da === db ? a.localeCompare(b, 'en') : da < db ? -1 : 1;
};

/**
 * Which releases to remove so that `keep` remain, newest first by the date in their name (a template
 * may put {data} before {date}), else by name, always keeping the releases that a slot points at.
 */
export function releasesToPurge(all: readonly string[], slotReleases: ReadonlyArray<string | undefined>, keep: number): string[] {
  const pinned = new Set(slotReleases.filter((r): r is string => r !== undefined));
  const others = [...new Set(all)].filter((r) => !pinned.has(r)).sort(byAge).reverse();
  return others.slice(Math.max(0, keep - pinned.size));
}

function checkAction(phase: CheckPhase, service: string, spec: CheckSpec, target: CheckTargetSpec, stage?: Stage): Extract<Action, { kind: 'check' }> {
  const db = stage?.services[service]?.database;
  const withDb = spec.sql && db ? { ...target, database: connectionOf(db, target.slot) } : target;
  // Expanded here, not when it runs: the plan (and so the dry run) shows the command's exact text.
  const withCommand = spec.command && target.context ? { ...withDb, command: expand(spec.command.run, target.context) } : withDb;
  return { kind: 'check', phase, service, check: spec, target: withCommand, title: `${phase} check ${spec.name} on ${target.label}` };
}

/** Rewrites a load balancer's map file from its runtime map: after every step of a plan that changes the map. */
export function persistMap(file: string, loadBalancer: string): Action {
  return { kind: 'persist-map', loadBalancer, file, title: `rewrite ${file} from the runtime map` };
}

/** Shell commands run one after the other on a host, each only if the previous one succeeded. */
export function andThen(...commands: string[]): string {
  return commands.map((c) => `{ ${c}; }`).join(' && ');
}

export function buildPlan(input: PlanInput): Plan {
  const { stage } = input;
  // A plan is applied by a run that holds an SSH connection to each of its hosts.
  const relay = input.relay ?? relayRoute(true);
  const services: ServicePlan[] = [];
  const pull = new Map<string, Action[]>();
  const copy = new Map<string, Action[]>();
  const data = new Map<string, Action[]>();
  const freeze = new Map<string, Action[]>();
  const unfreeze = new Map<string, Action[]>();
  const start = new Map<string, Action[]>();
  const check = new Map<string, Action[]>();
  const stopOld = new Map<string, Action[]>();
  const purgeOld = new Map<string, Action[]>();
  const add = (m: Map<string, Action[]>, key: string, ...a: Action[]) => m.set(key, [...(m.get(key) ?? []), ...a]);

  for (const name of input.services) {
    const service = stage.services[name];
    const facts = input.facts[name];
    if (!service || !facts) throw new Error(`internal: no facts for service ${name}`);
    const target = idleSlot(facts.live);
    const firstHost = facts.hosts[service.hosts[0] ?? ''];
    const db = service.database;
    const kept = input.codeOnly && db && db.strategy !== 'none' ? facts.kept : undefined;
    services.push({
      service: name, live: facts.live, target, release: facts.release,
      liveRelease: firstHost?.releases[facts.live], source: facts.source, hosts: [...service.hosts], ...(facts.fetch ? { fetch: facts.fetch } : {}),
      // A rollout needs the old slot serving beside the new one: a stage never promoted switches at once.
      ...(input.rollouts?.[name] && input.mode !== 'flip' && service.hosts.every((h) => facts.hosts[h]?.running[facts.live]) ? { rollout: input.rollouts[name] } : {}),
      ...(kept ? { data: `--code-only: no data step; slot ${target} keeps its database ${kept.database} as it is (migration version ${kept.version ?? 'none'}${kept.notApplied.length ? `; not applied: ${kept.notApplied.join(', ')}` : ''})` }
        : db && input.mode !== 'flip' && facts.data ? { data: describeData(stage, service, target, facts.data) } : {}),
    });
    if (facts.pull && input.mode !== 'flip') {
      add(pull, 'local', {
        kind: 'pull', service: name, from: facts.pull.from, release: facts.release, cacheDir: facts.cacheDir, manifestHash: facts.pull.manifestHash, ...(facts.fetch ? { fetch: facts.fetch } : {}),
        title: facts.fetch ? `pull ${facts.release} of ${name} from ${facts.pull.from} into the relay cache and check it against its manifest` : `use ${facts.release} of ${name} from the relay cache (it matches ${facts.pull.from}'s manifest)`,
      });
    }
    if (db && db.strategy !== 'none' && input.mode !== 'flip' && facts.data && !input.codeOnly) {
      const targetDb = connectionOf(db, target);
      // The idle slot must not hold its database open while it is replaced.
      for (const h of service.hosts) {
        add(data, name, { kind: 'exec', host: h, command: stopSlot(service, target, slotContext(stage, service, hostOf(stage, h), target, facts.release)), title: `stop idle slot ${name}/${target} on ${h} if running` });
      }
      if ((db.strategy === 'copy' || db.strategy === 'copy-self') && facts.data.source) {
        const frozen = db.strategy === 'copy-self';
        if (frozen) {
          // Writes get a clear 503 while the live data is copied, so none is lost; reads are served throughout.
          for (const lb of Object.values(stage.loadBalancers)) {
            add(freeze, lb.name, { kind: 'set-map', loadBalancer: lb.name, file: lb.mapFile, entries: { [readonlyKey(name)]: 'on' }, title: `freeze writes to ${name} (read-only)` });
            // Every change of the runtime map is written to the file at once: a reload at any moment keeps what is in force.
            add(freeze, lb.name, persistMap(lb.mapFile, lb.name));
            // A write accepted just before the freeze may commit after the snapshot: the copy waits for it.
            add(freeze, lb.name, {
              kind: 'settle', loadBalancer: lb.name, backends: [service.slots[facts.live].backend], deadlineMs: service.drainTimeoutMs,
              title: `wait for the requests to ${name} accepted before the freeze`,
            });
            add(unfreeze, lb.name, { kind: 'set-map', loadBalancer: lb.name, file: lb.mapFile, entries: { [readonlyKey(name)]: 'off' }, title: `end the write freeze of ${name}` });
            // Without it the file kept "readonly on" and the next reload of HAProxy refused every write (issue 23).
            add(unfreeze, lb.name, persistMap(lb.mapFile, lb.name));
          }
        }
        const size = facts.data.sourceBytes === undefined ? '' : ` (${formatBytes(facts.data.sourceBytes)})`;
        add(data, name, {
          kind: 'data-copy', service: name, source: facts.data.source, target: targetDb, jobs: db.jobs, frozen, fastPath: db.fastPath,
          live: connectionOf(db, facts.live),
          ...(facts.data.sourceSlot ? { from: facts.data.sourceSlot } : {}), ...(facts.data.sourceBytes === undefined ? {} : { sourceBytes: facts.data.sourceBytes }),
          title: `snapshot ${facts.data.source.database}${size} into ${targetDb.database}`,
        });
      }
      const copiedFrom = (db.strategy === 'copy' || db.strategy === 'copy-self') && facts.data.source && facts.data.sourceSlot
        ? { ...facts.data.sourceSlot, database: facts.data.source.database } : undefined;
      add(data, name, { kind: 'migrate', service: name, stage: stage.name, slot: target, connection: targetDb, migrations: db.migrations, pending: facts.data.pending, ...(copiedFrom ? { copiedFrom } : {}), ...(db.strategy === 'shared' ? { shared: true } : {}), title: `migrate ${targetDb.database}${facts.data.pending.length ? ` (${facts.data.pending.map((m) => m.version).join(', ')})` : ' (nothing pending)'}` });
    }
    for (const hostName of service.hosts) {
      const host = hostOf(stage, hostName);
      const slots = facts.hosts[hostName];
      const liveRelease = slots?.releases[facts.live];
      const idleRelease = slots?.releases[target];
      const ctxTarget = slotContext(stage, service, host, target, facts.release);
      // Unchanged files are hard-linked from the release the host already runs: the copy costs only the delta.
      const linkFrom = [liveRelease, idleRelease].find((r) => r !== undefined && r !== facts.release);
      const point = { kind: 'exec', host: hostName, command: pointSlot(service, target, facts.release), title: `point slot ${target} at ${facts.release}` } as const;
      if (input.mode === 'flip') {
        // The slot keeps its release: nothing to copy or point.
      } else if (slots?.complete.includes(facts.release)) {
        // Already copied, verified and built here (e.g. it is the other slot's release): never rewritten, only pointed at.
        add(copy, hostName, point);
      } else {
        // The remote rsync first creates releases/ and run/ (a new host has neither): no round trip of its own.
        const remoteSetup = prepareReleaseDirs(service);
        add(copy, hostName,
          {
            kind: 'local', host: hostName, title: `copy ${name} release ${facts.release}`, route: relay,
            argv: pushArgv(relay, host, { cacheDir: facts.cacheDir, releaseDir: releaseDir(service, facts.release), remoteSetup, ...(linkFrom ? { linkDest: `../${linkFrom}` } : {}) }),
          },
          // Verify, build (or mark complete) and point in one round trip: each runs only if the one before succeeded.
          {
            kind: 'exec', host: hostName,
            command: andThen(verifyManifest(service, facts.release), finishRelease(service, facts.release, service.build), point.command),
            title: `verify ${facts.release} against its manifest, ${service.build ? `build it: ${service.build}` : 'mark it complete'}, point slot ${target} at it`,
          },
        );
      }
      // The idle slot may still run an older release (kept for rollback); it is replaced, the live slot is never touched.
      const render = renderConfigFiles(service, target, ctxTarget, db ? connectionOf(db, target) : undefined);
      // One round trip: stop whatever still runs in the idle slot, render its config files, start it.
      const stopIdle = stopSlot(service, target, ctxTarget);
      if (input.mode !== 'flip' || !slots?.running[target]) add(start, hostName, {
        kind: 'exec', host: hostName,
        command: andThen(stopIdle, ...(render ? [render] : []), startSlot(service, target, ctxTarget)),
        title: `start ${name}/${target} (port ${service.slots[target].port})${render ? ` with ${service.configFiles.map((f) => f.path).join(', ')} rendered into ${configDir(service, target)}` : ''}, stopping what ran there`,
        undo: { command: stopIdle, title: `stop ${name}/${target} on ${hostName} again` },
      });
      for (const spec of service.checks.pre) {
        add(check, hostName, checkAction('pre', name, spec, {
          label: `${hostName} slot ${target} (${host.address}:${service.slots[target].port})`, host: hostName,
          address: host.address, port: service.slots[target].port, slot: target, release: facts.release, sshHost: hostName, context: ctxTarget,
        }, stage));
      }
      const purge = releasesToPurge([...(slots?.complete ?? []), ...(slots?.partial ?? []), facts.release], [facts.release, liveRelease], input.stage.keepReleases);
      if (purge.length > 0 && input.mode !== 'flip') {
        add(purgeOld, hostName, { kind: 'exec', host: hostName, command: removeReleases(service, purge), title: `remove ${purge.length} old release(s) of ${name} beyond the ${input.stage.keepReleases} kept` });
      }
      add(stopOld, hostName, {
        kind: 'exec', host: hostName, command: stopSlot(service, facts.live, slotContext(stage, service, host, facts.live, liveRelease ?? '')),
        title: `stop old slot ${name}/${facts.live}`,
      });
    }
  }

  const liveAfter: Record<string, SlotName> = {};
  for (const [name, facts] of Object.entries(input.facts)) liveAfter[name] = facts.live;
  for (const s of services) liveAfter[s.service] = s.target;

  const lbs = Object.values(stage.loadBalancers);
  // A rollout's split ends with the switch: the weight goes back to 0 in the same set-map.
  const newBackends = { ...Object.fromEntries(services.map((s) => [s.service, stage.services[s.service]!.slots[s.target].backend])), ...rolloutOff(services) };
  const switchItems: PlanItem[] = lbs.map((lb) => ({
    target: lb.name,
    actions: [
      ...services.map((s): Action => ({
        kind: 'server-health', loadBalancer: lb.name, backend: newBackends[s.service]!, servers: s.hosts, health: 'up',
        title: `mark ${newBackends[s.service]}'s servers up (they just passed their checks)`,
      })),
      { kind: 'set-map', loadBalancer: lb.name, file: lb.mapFile, entries: newBackends, title: 'switch traffic' },
      { kind: 'verify-map', loadBalancer: lb.name, file: lb.mapFile, expected: newBackends, title: 'read the map back' },
      persistMap(lb.mapFile, lb.name),
    ],
  }));
  // After the switch, through every load balancer; command checks still run on each host of the service.
  const lbChecks = (phaseName: 'post' | 'watch') => services.flatMap((sp) => {
    const service = stage.services[sp.service]!;
    const specs = phaseName === 'post' ? service.checks.post : service.checks.watch.checks;
    return specs.flatMap((spec) => (spec.command
      ? sp.hosts.map((h) => {
        const host = hostOf(stage, h);
        return checkAction(phaseName, sp.service, spec, {
          label: `${h} slot ${sp.target}`, host: h, address: host.address, port: service.slots[sp.target].port, slot: sp.target, release: sp.release,
          sshHost: h, context: slotContext(stage, service, host, sp.target, sp.release),
        }, stage);
      })
      : lbs.map((lb) => checkAction(phaseName, sp.service, spec, {
        label: `${lb.name} (${lb.address}:${service.listen})`, host: lb.name, address: lb.address, port: service.listen, slot: sp.target, release: sp.release,
      }, stage))));
  });
  const postItems: PlanItem[] = lbChecks('post').map((a) => ({ target: a.target.host, actions: [a] }));
  const watchWindow = Math.max(0, ...services.map((sp) => stage.services[sp.service]!.checks.watch.windowMs));
  const watchProbes = lbChecks('watch');
  const watchItems: PlanItem[] = watchWindow > 0 && watchProbes.length > 0 ? [{
    target: stage.name,
    actions: [{
      kind: 'watch', windowMs: watchWindow, probes: watchProbes,
      intervalMs: Math.min(...services.map((sp) => stage.services[sp.service]!.checks.watch.intervalMs)),
      title: `watch the new slot for ${watchWindow} ms; a failed check switches straight back`,
    }],
  }] : [];
  const drainItems: PlanItem[] = lbs.map((lb) => ({
    target: lb.name,
    actions: [{
      kind: 'drain', loadBalancer: lb.name,
      servers: Object.fromEntries(services.map((s) => [stage.services[s.service]!.slots[s.live].backend, s.hosts])),
      deadlineMs: Math.max(...services.map((s) => stage.services[s.service]!.drainTimeoutMs)),
      title: 'wait for the old slot\'s sessions to finish',
    }],
  }));

  const items = (m: Map<string, Action[]>): PlanItem[] => [...m].map(([target, actions]) => ({ target, actions }));
  const phases: Phase[] = [
    { name: 'pull', title: 'Bring the release into the relay cache', items: items(pull) },
    { name: 'copy', title: 'Copy the release to every host', items: items(copy) },
    { name: 'freeze', title: 'Freeze writes (copy-self)', items: items(freeze) },
    { name: 'data', title: 'Copy the data into the idle slot\'s database and migrate it', items: items(data) },
    { name: 'start', title: 'Start the idle slot', items: items(start) },
    { name: 'check', title: 'Health-check the idle slot on every host', items: items(check) },
    rolloutPhase(stage, services),
    { name: 'switch', title: 'Switch traffic on every load balancer', items: switchItems },
    { name: 'post', title: 'Check the new slot through every load balancer', items: postItems },
    { name: 'watch', title: 'Watch the new slot while the old one still runs', items: watchItems },
    // After the watch: a rollback before this point finds the old slot's data complete, because writes were refused.
    { name: 'unfreeze', title: 'End the write freeze', items: items(unfreeze) },
    { name: 'drain', title: 'Drain the old slot', items: drainItems },
    { name: 'stop-old', title: 'Stop the old slot (kept on disk for rollback)', items: items(stopOld) },
    { name: 'purge', title: 'Remove releases beyond the number kept (never a slot\'s release)', items: items(purgeOld) },
  ];
  return {
    version: PLAN_VERSION, action: input.action ?? input.mode ?? 'promote', stage: stage.name, from: input.from, createdAt: input.now.toISOString(),
    services, phases, liveAfter, onFailure: failurePaths(stage, { phases, services }),
  };
}

