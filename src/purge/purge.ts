/*
 * `updateserver purge <stage>`: keep the newest N releases of each service on each host (the
 * profile's keepReleases unless --keep says otherwise), never removing a release a slot points at.
 */
import { loadProfile } from '../config/load.js';
import type { Project } from '../config/model.js';
import { removeReleases } from '../commands/release.js';
import type { Logger } from '../log.js';
import { readHostSlots } from '../observe/slots.js';
import { releasesToPurge } from '../plan/build.js';
import { StageLink, hostsUsed, selectServices } from '../promote/stage-link.js';
import { run } from '../transport/transport.js';
import { allLimited } from '../transport/runner.js';

export interface PurgeResult { stage: string; keep: number; removed: Array<{ service: string; host: string; releases: string[] }>; dryRun: boolean }

export async function purge(options: { project: Project; stage: string; keep?: number; services?: string[]; dryRun?: boolean; logger: Logger }): Promise<PurgeResult> {
  const stage = await loadProfile(options.project, options.stage);
  const services = selectServices(stage, options.services);
  const keep = options.keep ?? stage.keepReleases;
  const link = new StageLink(stage);
  try {
    await link.open(hostsUsed(stage, services).filter((h) => services.some((s) => stage.services[s]!.hosts.includes(h))));
    const removed: PurgeResult['removed'] = [];
    for (const s of services) {
      const service = stage.services[s]!;
      await allLimited(service.hosts, stage.parallel, async (host) => {
        const slots = await readHostSlots(link.pool.get(host), service);
        const gone = releasesToPurge([...slots.complete, ...slots.partial], [slots.releases.a, slots.releases.b], keep);
        if (gone.length === 0) return;
        if (!options.dryRun) await run(link.pool.get(host), removeReleases(service, gone), { what: `removing old releases of ${s}` });
        options.logger.info(`${options.dryRun ? 'would remove' : 'removed'} ${gone.join(', ')}`, { host });
        removed.push({ service: s, host, releases: gone });
      });
    }
    return { stage: stage.name, keep, removed, dryRun: options.dryRun === true };
  } finally {
    await link.close(options.logger);
  }
}
