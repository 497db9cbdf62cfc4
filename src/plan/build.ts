/*
 * buildPlan turns what was read about the world into the steps of a promotion. It is synchronous and
 * takes every fact as a parameter, so the unit tests can check exact commands for any situation.
 */
import type { Host, Project, Service, SlotName, Stage } from '../config/model.js';
import { connectionOf } from '../config/model.js';
import { idleSlot, readonlyKey } from '../config/slot.js';
import type { DatabaseConnection } from '../config/model.js';
import { configDir, finishRelease, linkShared, pointCurrent, pointSlot, prepareReleaseDirs, releaseDir, removeReleases, verifyManifest } from '../commands/release.js';
import { startSlot, stopSlot } from '../commands/process.js';
import { renderConfigFiles } from '../commands/config-files.js';
import { pushArgv, relayRoute, type RelayRoute } from '../commands/relay.js';
import { expand, type PeerAddress, type SlotContext } from '../commands/placeholders.js';
import { instancePort, instancesOf, instancesOn, serverNames } from '../config/instances.js';
import { filesCacheDir, filesDir } from '../commands/files.js';
import { compareManifest, recordManifest } from '../commands/files-manifest.js';
import { tiersOf } from '../config/tiers.js';
import { UpdateserverError } from '../errors.js';
import { filesActions, filesCopyActions, freezeTargets, type FilesSource } from './files.js';
import type { Action, CheckTargetSpec, Phase, Plan, PlanItem, ServicePlan } from './plan.js';
import type { CheckPhase, CheckSpec } from '../config/healthchecks.js';
import { PLAN_VERSION } from './plan.js';
import { formatBytes } from '../bytes.js';
import type { PendingMigration } from '../data/migrations/steps.js';
import { describeData } from './data-note.js';
import { failurePaths } from './failure.js';
import { withHooks } from './hook-phases.js';
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
  /** files strategy copy: the previous stage's live slot whose data directory is copied. */
  filesSource?: FilesSource;
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

export function slotContext(stage: Stage, service: Service, host: Host, slot: SlotName, release: string, instance = 1): SlotContext {
  return {
    stage: stage.name, service: service.name, host: host.name, address: host.address,
    slot, port: instancePort(service, slot, instance), dir: service.slots[slot].dir, release, config: configDir(service, slot),
    ...(service.database ? { database: service.database.names[slot] } : {}),
    ...(host.vars && Object.keys(host.vars).length > 0 ? { vars: host.vars } : {}),
    ...(instancesOn(service, host.name) > 1 ? { instance } : {}),
    ...(service.files ? { files: filesDir(service, slot) } : {}),
    ...(service.after.length > 0 ? { peers: peersOf(stage, service, slot) } : {}),
  };
}

/** Where the same slot of each service this one starts after is reached (its clients' {zeo.address} ...). */
function peersOf(stage: Stage, service: Service, slot: SlotName): Record<string, PeerAddress> {
  const peers: Record<string, PeerAddress> = {};
  for (const dep of service.after) {
    const server = stage.services[dep];
    if (!server) continue;
    const all = instancesOf(server).map((i) => ({ address: hostOf(stage, i.host).address, port: instancePort(server, slot, i.instance) }));
    peers[dep] = { address: all[0]!.address, port: all[0]!.port, servers: all.map((a) => `${a.address}:${a.port}`).join(',') };
  }
  return peers;
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
  // Tier by tier (`after`): a tier's idle slots start and pass their checks before the next tier's start.
  const tiers = tiersOf(stage.services, input.services);
  const tierOf = (name: string) => tiers.findIndex((t) => t.includes(name));
  const start = tiers.map(() => new Map<string, Action[]>());
  const check = tiers.map(() => new Map<string, Action[]>());
  const stopOld = tiers.map(() => new Map<string, Action[]>());
  const current = new Map<string, Action[]>();
  const purgeOld = new Map<string, Action[]>();
  const add = (m: Map<string, Action[]>, key: string, ...a: Action[]) => m.set(key, [...(m.get(key) ?? []), ...a]);

  checkTiersTogether(input);
  for (const name of input.services) {
    const service = stage.services[name];
    const facts = input.facts[name];
    if (!service || !facts) throw new Error(`internal: no facts for service ${name}`);
    const tier = tierOf(name);
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
        add(data, name, { kind: 'exec', host: h, command: stopInstances(stage, service, h, target, facts.release), title: `stop idle slot ${name}/${target} on ${h} if running` });
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
      // A copy arrives without the source's change log (copyDatabase removes it): the migrations run without triggers.
      const logged = db.strategy === 'copy' || db.strategy === 'copy-self';
      add(data, name, { kind: 'migrate', service: name, stage: stage.name, slot: target, connection: targetDb, migrations: db.migrations, pending: facts.data.pending, ...(copiedFrom ? { copiedFrom } : {}), ...(db.strategy === 'shared' ? { shared: true } : {}), title: `migrate ${targetDb.database}${facts.data.pending.length ? ` (${facts.data.pending.map((m) => m.version).join(', ')})` : ' (nothing pending)'}` });
      // After the migrations, so the new release's own tables are covered too; never on a live or shared database.
      if (logged) add(data, name, { kind: 'change-log', service: name, connection: targetDb, title: `install the change log on ${targetDb.database} (what a rollback leaves behind is reported)` });
    }
    if (service.files?.strategy === 'copy-self' && input.mode !== 'flip' && !input.codeOnly) {
      const f = filesActions(stage, service, facts.live, target, facts.release, (h: string) => stopInstances(stage, service, h, target, facts.release), freezeTargets(stage, name, input.services));
      for (const [key, actions] of f.freeze) add(freeze, key, ...actions);
      for (const [key, actions] of f.unfreeze) add(unfreeze, key, ...actions);
      for (const [key, actions] of f.data) add(data, key, ...actions);
    }
    if (service.files?.strategy === 'copy' && input.mode !== 'flip' && !input.codeOnly && facts.filesSource) {
      const cache = filesCacheDir(input.project.stateDir, facts.filesSource.stage, name);
      for (const [key, actions] of filesCopyActions(stage, service, facts.filesSource, target, cache, (h: string) => stopInstances(stage, service, h, target, facts.release))) add(data, key, ...actions);
    }
    for (const hostName of service.hosts) {
      const host = hostOf(stage, hostName);
      const slots = facts.hosts[hostName];
      const instances = instancesOn(service, hostName);
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
        const shared = [linkShared(service, facts.release)].filter((c): c is string => c !== undefined);
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
            command: andThen(verifyManifest(service, facts.release), ...shared, finishRelease(service, facts.release, service.build), point.command),
            title: `verify ${facts.release} against its manifest, ${shared.length ? `link ${service.shared.join(', ')} from ${service.root}/shared, ` : ''}${service.build ? `build it: ${service.build}` : 'mark it complete'}, point slot ${target} at it`,
          },
        );
      }
      // The idle slot may still run an older release (kept for rollback); it is replaced, the live slot is never touched.
      const render = renderConfigFiles(service, target, ctxTarget, db ? connectionOf(db, target) : undefined);
      for (let i = 1; i <= instances; i++) {
        const ctx = slotContext(stage, service, host, target, facts.release, i);
        const which = instances > 1 ? ` instance ${i}` : '';
        // One round trip: stop whatever still runs in the idle slot, render its config files (once per slot), start it.
        const stopIdle = stopSlot(service, target, ctx);
        const renderHere = i === 1 ? render : undefined;
        if (input.mode !== 'flip' || !slots?.running[target]) add(start[tier]!, hostName, {
          kind: 'exec', host: hostName,
          command: andThen(stopIdle, ...(renderHere ? [renderHere] : []), startSlot(service, target, ctx)),
          title: `start ${name}/${target}${which} (port ${ctx.port})${renderHere ? ` with ${service.configFiles.map((f) => f.path).join(', ')} rendered into ${configDir(service, target)}` : ''}, stopping what ran there`,
          undo: { command: stopIdle, title: `stop ${name}/${target}${which} on ${hostName} again` },
        });
        for (const spec of service.checks.pre) {
          add(check[tier]!, hostName, checkAction('pre', name, spec, {
            label: `${hostName} slot ${target}${which} (${host.address}:${ctx.port})`, host: hostName,
            address: host.address, port: ctx.port, slot: target, release: facts.release, sshHost: hostName, context: ctx,
          }, stage));
        }
      }
      const purge = releasesToPurge([...(slots?.complete ?? []), ...(slots?.partial ?? []), facts.release], [facts.release, liveRelease], input.stage.keepReleases);
      if (purge.length > 0 && input.mode !== 'flip') {
        add(purgeOld, hostName, { kind: 'exec', host: hostName, command: removeReleases(service, purge), title: `remove ${purge.length} old release(s) of ${name} beyond the ${input.stage.keepReleases} kept` });
      }
      // Right before the switch, once every tier has started and passed its checks: the list of the new
      // slot's files, which the report of a later rollback or flip away compares with (issue 21 item 4).
      if (service.files) {
        add(check[tiers.length - 1]!, hostName, { kind: 'exec', host: hostName, command: recordManifest(service, target), title: `record the list of ${name}/${target}'s files on ${hostName} (what leaving it reports is compared with it)` });
      }
      add(stopOld[tier]!, hostName, {
        kind: 'exec', host: hostName, command: stopInstances(stage, service, hostName, facts.live, liveRelease ?? ''),
        title: `stop old slot ${name}/${facts.live}${instances > 1 ? ` (${instances} instances)` : ''}`,
      });
      // A flip or rollback leaves the old slot with what users wrote to its files since its switch: once
      // it is stopped, its host lists the files added, changed and removed (the run's report).
      if (service.files && input.mode === 'flip') {
        add(stopOld[tier]!, hostName, {
          kind: 'exec', host: hostName, command: compareManifest(service, facts.live), output: { kind: 'files-left', service: name, slot: facts.live },
          title: `list the files added, changed and removed in ${name}/${facts.live} on ${hostName} since its switch`,
        });
      }
      // {root}/current follows the live slot right after the switch; a rollback puts it back.
      if (service.currentLink) {
        add(current, hostName, {
          kind: 'exec', host: hostName, command: pointCurrent(service, facts.release), title: `point ${service.root}/current at ${facts.release}`,
          undo: { command: pointCurrent(service, liveRelease), title: liveRelease ? `point ${service.root}/current back at ${liveRelease}` : `remove ${service.root}/current again` },
        });
      }
    }
  }

  const liveAfter: Record<string, SlotName> = {};
  for (const [name, facts] of Object.entries(input.facts)) liveAfter[name] = facts.live;
  for (const s of services) liveAfter[s.service] = s.target;

  const lbs = Object.values(stage.loadBalancers);
  // Map entries in tier order (servers before their clients); a service without a frontend has an entry
  // too: it routes nothing, and it is where its live slot is read from, as for every other service.
  const byTier = [...services].sort((x, y) => tierOf(x.service) - tierOf(y.service));
  // A rollout's split ends with the switch: the weight goes back to 0 in the same set-map.
  const newBackends = { ...Object.fromEntries(byTier.map((s) => [s.service, stage.services[s.service]!.slots[s.target].backend])), ...rolloutOff(services) };
  const fronted = byTier.filter((s) => stage.services[s.service]!.listen !== undefined);
  const switchItems: PlanItem[] = lbs.map((lb) => ({
    target: lb.name,
    actions: [
      ...fronted.map((s): Action => ({
        kind: 'server-health', loadBalancer: lb.name, backend: newBackends[s.service]!, servers: serverNames(stage.services[s.service]!), health: 'up',
        title: `mark ${newBackends[s.service]}'s servers up (they just passed their checks)`,
      })),
      { kind: 'set-map', loadBalancer: lb.name, file: lb.mapFile, entries: newBackends, title: 'switch traffic' },
      { kind: 'verify-map', loadBalancer: lb.name, file: lb.mapFile, expected: newBackends, title: 'read the map back' },
      persistMap(lb.mapFile, lb.name),
    ],
  }));
  // After the switch, through every load balancer; command checks, and every check of a service without
  // a frontend, run against each instance of the new slot on its host.
  const lbChecks = (phaseName: 'post' | 'watch') => byTier.flatMap((sp) => {
    const service = stage.services[sp.service]!;
    const specs = phaseName === 'post' ? service.checks.post : service.checks.watch.checks;
    return specs.flatMap((spec) => (spec.command || service.listen === undefined
      ? instancesOf(service).map((inst) => {
        const host = hostOf(stage, inst.host);
        const ctx = slotContext(stage, service, host, sp.target, sp.release, inst.instance);
        return checkAction(phaseName, sp.service, spec, {
          label: `${inst.host} slot ${sp.target}${instancesOn(service, inst.host) > 1 ? ` instance ${inst.instance}` : ''}`, host: inst.host, address: host.address, port: ctx.port, slot: sp.target, release: sp.release,
          sshHost: inst.host, context: ctx,
        }, stage);
      })
      : lbs.map((lb) => checkAction(phaseName, sp.service, spec, {
        label: `${lb.name} (${lb.address}:${service.listen})`, host: lb.name, address: lb.address, port: service.listen!, slot: sp.target, release: sp.release,
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
  const drainItems: PlanItem[] = fronted.length === 0 ? [] : lbs.map((lb) => ({
    target: lb.name,
    actions: [{
      kind: 'drain', loadBalancer: lb.name,
      servers: Object.fromEntries(fronted.map((s) => [stage.services[s.service]!.slots[s.live].backend, serverNames(stage.services[s.service]!)])),
      deadlineMs: Math.max(...fronted.map((s) => stage.services[s.service]!.drainTimeoutMs)),
      title: 'wait for the old slot\'s sessions to finish',
    }],
  }));

  const items = (m: Map<string, Action[]>): PlanItem[] => [...m].map(([target, actions]) => ({ target, actions }));
  const tiered = tiers.length > 1;
  const tierNote = (i: number) => (tiered ? ` (tier ${i + 1}: ${tiers[i]!.join(', ')})` : '');
  const phases: Phase[] = [
    { name: 'pull', title: 'Bring the release into the relay cache', items: items(pull) },
    { name: 'copy', title: 'Copy the release to every host', items: items(copy) },
    { name: 'freeze', title: 'Freeze writes (copy-self)', items: items(freeze) },
    { name: 'data', title: 'Copy the data into the idle slot\'s database and migrate it', items: items(data) },
    // Tier by tier: a tier starts only once the tiers it depends on have started and passed their checks.
    ...tiers.flatMap((_, i): Phase[] => [
      { name: 'start', title: `Start the idle slot${tierNote(i)}`, items: items(start[i]!) },
      { name: 'check', title: `Health-check the idle slot on every host${tierNote(i)}`, items: items(check[i]!) },
    ]),
    rolloutPhase(stage, services),
    { name: 'switch', title: 'Switch traffic on every load balancer', items: switchItems },
    { name: 'current', title: 'Point each host\'s current link at the new slot\'s release', items: items(current) },
    { name: 'post', title: 'Check the new slot through every load balancer', items: postItems },
    { name: 'watch', title: 'Watch the new slot while the old one still runs', items: watchItems },
    // After the watch: a rollback before this point finds the old slot's data complete, because writes were refused.
    { name: 'unfreeze', title: 'End the write freeze', items: items(unfreeze) },
    { name: 'drain', title: 'Drain the old slot', items: drainItems },
    // In reverse tier order: clients stop before the servers they use.
    ...tiers.map((_, i): Phase => ({ name: 'stop-old', title: `Stop the old slot (kept on disk for rollback)${tierNote(i)}`, items: items(stopOld[i]!) })).reverse(),
    { name: 'purge', title: 'Remove releases beyond the number kept (never a slot\'s release)', items: items(purgeOld) },
  ];
  const action = input.action ?? input.mode ?? 'promote';
  // The profile's hooks go in at their points (plan/hook-phases.ts); the failure paths are built with them.
  return withHooks(stage, {
    version: PLAN_VERSION, action, stage: stage.name, from: input.from, createdAt: input.now.toISOString(),
    services, phases, liveAfter,
  }, input.mode === 'flip', (p) => failurePaths(stage, p));
}

/** Stops every instance of a slot on a host, in one round trip. */
export function stopInstances(stage: Stage, service: Service, hostName: string, slot: SlotName, release: string): string {
  const host = hostOf(stage, hostName);
  if (instancesOn(service, hostName) === 1) return stopSlot(service, slot, slotContext(stage, service, host, slot, release));
  return andThen(...Array.from({ length: instancesOn(service, hostName) }, (_, i) => stopSlot(service, slot, slotContext(stage, service, host, slot, release, i + 1))));
}

/**
 * A client tier reaches its servers through the same slot ({zeo.address} of slot b is zeo's slot b), so
 * the tiers linked by `after` move together: the services they name are in the run, on the same live slot.
 */
function checkTiersTogether(input: PlanInput): void {
  // A tier left out while the service it starts after moves would keep using that service's old slot, which stop-old ends.
  for (const [name, service] of Object.entries(input.stage.services)) {
    const moved = service.after.filter((d) => input.services.includes(d));
    if (!input.services.includes(name) && moved.length > 0) {
      throw new UpdateserverError(`${name} starts after ${moved.join(', ')} and reaches it through its own slot, but is not in this run: its slot's server would be stopped under it`, { hint: `run them together: --service ${name} ${moved.map((d) => `--service ${d}`).join(' ')} (or without --service)` });
    }
  }
  for (const name of input.services) {
    for (const dep of input.stage.services[name]?.after ?? []) {
      if (!input.services.includes(dep)) {
        throw new UpdateserverError(`${name} starts after ${dep} and reaches it through its own slot, but ${dep} is not in this run`, { hint: `run them together: --service ${name} --service ${dep} (or without --service)` });
      }
      const [a, b] = [input.facts[name]?.live, input.facts[dep]?.live];
      if (a !== b) {
        throw new UpdateserverError(`${name} (live slot ${a}) and ${dep} (live slot ${b}), which it starts after, are not on the same slot`, { hint: 'switch one of them so that both are live on the same slot (updateserver flip --service ...), then run again' });
      }
    }
  }
}
