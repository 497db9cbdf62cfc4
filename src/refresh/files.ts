/*
 * `updateserver refresh` for data kept in files (issue 18: `files:`): a later stage's live slot's data
 * directories copied back into an earlier stage's idle slot, as a promotion with `files.strategy: copy`
 * copies them forward (src/plan/files.ts filesCopyActions): the optional `files.command` runs on the
 * later stage's host first (sqlite3 .backup, a ZODB pack) and the copy is taken from what it writes,
 * rsync pulls it into this machine's cache and pushes it into each host's idle slot with delta transfer,
 * and one local step compares size and SHA-256 of every file of the source, the cache and each copy.
 * The idle slot is stopped first on each host (it would keep the replaced files open), so a `flip`
 * starts it afresh on the refreshed data. The later stage is only read; the live slot is never written.
 */
import type { Host, SlotName, Stage } from '../config/model.js';
import { ConfigError } from '../errors.js';
import { filesCacheDir } from '../commands/files.js';
import { filesCopyActions } from '../plan/files.js';
import { stopInstances } from '../plan/build.js';
import type { Action } from '../plan/plan.js';
import { DEFAULT_SLOT, idleSlot } from '../config/slot.js';

export interface FilesRefreshStep {
  service: string;
  /** The earlier stage's slot whose data directories are replaced (never the live one). */
  slot: SlotName;
  /** Where the data is read: the later stage's live slot on its first host of the service. */
  source: { stage: string; host: Host; root: string; slot: SlotName };
  paths: readonly string[];
  command: string | undefined;
  hosts: readonly string[];
  /** The release each host's idle slot points at (its stop command's {release}). */
  releases: Record<string, string>;
}

/** Services of `wanted` that keep data in files, with the rules that need only the profiles. */
export function refreshFilesServices(stage: Stage, from: Stage, wanted: readonly string[]): string[] {
  const out: string[] = [];
  for (const name of wanted) {
    const files = stage.services[name]!.files;
    if (!files) continue;
    const fromFiles = Object.hasOwn(from.services, name) ? from.services[name]!.files : undefined;
    if (!fromFiles) throw new ConfigError([{ file: from.file, path: `services.${name}.files`, message: `${from.name} gives ${name} no files to refresh ${stage.name} from` }]);
    const missing = files.paths.filter((p) => !fromFiles.paths.includes(p));
    if (missing.length > 0) {
      throw new ConfigError([{ file: from.file, path: `services.${name}.files.paths`, message: `${name} keeps ${missing.join(', ')} in ${stage.name} but not in ${from.name}: nothing to refresh ${missing.length > 1 ? 'them' : 'it'} from` }]);
    }
    out.push(name);
  }
  return out;
}

/** What will be copied where; the live slot is refused, as for databases. */
export function refreshFilesSteps(stage: Stage, from: Stage, services: readonly string[], live: { stage: Record<string, SlotName>; from: Record<string, SlotName> }, releases: Record<string, Record<string, string>>, slot?: SlotName): FilesRefreshStep[] {
  return services.map((name) => {
    const service = stage.services[name]!;
    const liveSlot = live.stage[name] ?? DEFAULT_SLOT;
    const target = slot ?? idleSlot(liveSlot);
    if (target === liveSlot) {
      throw new ConfigError([{ file: 'command line', path: '--slot', message: `slot ${target} of ${name} is live in ${stage.name}: refresh replaces only a slot that serves no traffic (the idle one is ${idleSlot(liveSlot)})` }]);
    }
    const fromService = from.services[name]!;
    return {
      service: name, slot: target, paths: service.files!.paths, command: fromService.files!.command, hosts: service.hosts, releases: releases[name] ?? {},
      source: { stage: from.name, host: from.hosts[fromService.hosts[0]!]!, root: fromService.root, slot: live.from[name] ?? DEFAULT_SLOT },
    };
  });
}

/**
 * The plan's actions for one service: the promotion's own copy from another stage (the later stage's
 * files.command, pull, push, verification), every remote command as it will run.
 */
export function refreshFilesActions(stage: Stage, step: FilesRefreshStep, stateDir: string): Action[] {
  const service = stage.services[step.service]!;
  // The command that makes the consistent copy is the later stage's (it runs there, on its data).
  const withSourceCommand = { ...service, files: { ...service.files!, command: step.command } };
  const cache = filesCacheDir(stateDir, step.source.stage, step.service);
  const byKey = filesCopyActions(stage, withSourceCommand, step.source, step.slot, cache, (h) => stopInstances(stage, service, h, step.slot, step.releases[h] ?? ''));
  return [...byKey.values()].flat();
}
