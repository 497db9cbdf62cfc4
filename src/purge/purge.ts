/*
 * `updateserver purge <stage>`: keep the newest N complete releases of each service on each host (the
 * profile's keepReleases unless --keep says otherwise), never removing a release a slot points at.
 *
 * It runs under the stage's lock, like a promotion, so it never removes what a promotion is copying or
 * about to point a slot at. Incomplete releases (no completion marker: a copy in progress, or the
 * remains of a run that died) are never removed here: the next promotion of the stage reuses or
 * removes them under its own lock, after it has settled any interrupted run.
 */
import { loadProfile } from '../config/load.js';
import type { Project } from '../config/model.js';
import { removeReleases } from '../commands/release.js';
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import { readHostSlots } from '../observe/slots.js';
import { releasesToPurge } from '../plan/build.js';
import { StageLink, hostsUsed, selectServices } from '../promote/stage-link.js';
import { lockStage } from '../promote/lock.js';
import { openState } from '../state/backend.js';
import { run } from '../transport/transport.js';
import { allLimited } from '../transport/runner.js';

export interface PurgeResult {
  stage: string; keep: number; dryRun: boolean;
  removed: Array<{ service: string; host: string; releases: string[] }>;
  /** incomplete releases seen and left in place */
  incomplete: Array<{ service: string; host: string; releases: string[] }>;
}

export interface PurgeOptions { project: Project; stage: string; keep?: number; services?: string[]; dryRun?: boolean; waitMs?: number; logger: Logger }

export async function purge(options: PurgeOptions): Promise<PurgeResult> {
  const stage = await loadProfile(options.project, options.stage);
  const services = selectServices(stage, options.services);
  const keep = options.keep ?? stage.keepReleases;
  const state = openState(options.project, stage);
  const lock = await lockStage(state, stage.name, { dryRun: options.dryRun, waitMs: options.waitMs, logger: options.logger });
  const link = new StageLink(stage);
  try {
    await link.open(hostsUsed(stage, services).filter((h) => services.some((s) => stage.services[s]!.hosts.includes(h))));
    const removed: PurgeResult['removed'] = [];
    const incomplete: PurgeResult['incomplete'] = [];
    for (const s of services) {
      const service = stage.services[s]!;
      await allLimited(service.hosts, stage.parallel, async (host) => {
        const slots = await readHostSlots(link.pool.get(host), service);
        if (slots.partial.length > 0) {
          incomplete.push({ service: s, host, releases: slots.partial });
          options.logger.info(`left ${slots.partial.length} incomplete release(s) of ${s}: ${slots.partial.join(', ')} (the next promotion reuses or removes them)`, { host });
        }
        const gone = releasesToPurge(slots.complete, [slots.releases.a, slots.releases.b], keep);
        if (gone.length === 0) return;
        if (!options.dryRun) await run(link.pool.get(host), removeReleases(service, gone), { what: `removing old releases of ${s}` });
        options.logger.info(`${options.dryRun ? 'would remove' : 'removed'} ${gone.join(', ')}`, { host });
        removed.push({ service: s, host, releases: gone });
      });
    }
    return { stage: stage.name, keep, removed, incomplete, dryRun: options.dryRun === true };
  } finally {
    await link.close(options.logger);
    await lock?.release().catch((err: unknown) => options.logger.warn(`could not release the lock: ${describeError(err)}`));
    await state.close().catch((err: unknown) => options.logger.warn(`closing the state store: ${describeError(err)}`));
  }
}
