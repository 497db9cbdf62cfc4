/*
 * Maintenance and read-only modes, switched at the load balancers without a reload: map entries
 * "<service>.maintenance" and "<service>.readonly" that the rendered frontends test
 * (lb-templates/haproxy.cfg). Every load balancer of the stage changes, or none does.
 */
import { loadProfile } from '../config/load.js';
import type { Project } from '../config/model.js';
import { describeError, LoadBalancerError } from '../errors.js';
import type { Logger } from '../log.js';
import { StageLink, hostsUsed, selectServices } from '../promote/stage-link.js';
import { maintenanceKey, readonlyKey } from '../config/slot.js';

export type MaintenanceMode = 'on' | 'off' | 'read-only';

export interface MaintenanceResult { stage: string; services: string[]; mode: MaintenanceMode; loadBalancers: string[] }

/** The map entries a mode sets for one service. */
export function maintenanceEntries(service: string, mode: MaintenanceMode): Record<string, string> {
  return {
    [maintenanceKey(service)]: mode === 'on' ? 'on' : 'off',
    [readonlyKey(service)]: mode === 'read-only' ? 'on' : 'off',
  };
}

export async function setMaintenance(options: { project: Project; stage: string; mode: MaintenanceMode; services?: string[]; logger: Logger }): Promise<MaintenanceResult> {
  const stage = await loadProfile(options.project, options.stage);
  const services = selectServices(stage, options.services);
  const link = new StageLink(stage);
  try {
    // Only remote load balancers need a host connection.
    await link.open(hostsUsed(stage, []));
    const wanted: Record<string, string> = Object.assign({}, ...services.map((s) => maintenanceEntries(s, options.mode)));
    const done: Array<{ name: string; before: Map<string, string> }> = [];
    for (const balancer of link.balancers) {
      const file = stage.loadBalancers[balancer.name]!.mapFile;
      const before = await balancer.readMap(file);
      try {
        for (const [k, v] of Object.entries(wanted)) await balancer.setMap(file, k, v);
        const after = await balancer.readMap(file);
        const wrong = Object.entries(wanted).filter(([k, v]) => after.get(k) !== v);
        if (wrong.length > 0) throw new LoadBalancerError(balancer.name, `map reads back ${wrong.map(([k]) => `${k}=${after.get(k)}`).join(', ')}`);
        await balancer.persistMap(file);
        done.push({ name: balancer.name, before });
        options.logger.info(`${balancer.name}: ${services.join(', ')} maintenance ${options.mode}`);
      } catch (err) {
        // Put back every load balancer touched so far, this one included, so they keep agreeing.
        for (const d of [...done, { name: balancer.name, before }]) {
          const b = link.balancers.find((x) => x.name === d.name)!;
          const f = stage.loadBalancers[d.name]!.mapFile;
          try {
            for (const k of Object.keys(wanted)) await b.setMap(f, k, d.before.get(k) ?? 'off');
            await b.persistMap(f);
          } catch (revertErr) {
            options.logger.error(`${d.name}: could not put the maintenance entries back: ${describeError(revertErr)}`);
          }
        }
        throw err;
      }
    }
    return { stage: stage.name, services, mode: options.mode, loadBalancers: link.balancers.map((b) => b.name) };
  } finally {
    await link.close(options.logger);
  }
}
