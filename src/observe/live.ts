/*
 * Which slot is live for each service, read from every load balancer of the stage and compared with
 * what the tool recorded. Any disagreement stops the run: acting on a wrong idea of "live" is how a
 * release tool takes a site down.
 */
import type { SlotName, Stage } from '../config/model.js';
import { UpdateserverError } from '../errors.js';
import type { Balancer } from '../lb/balancer.js';
import type { StageState } from '../state/store.js';
import { DEFAULT_SLOT, SLOTS, backendName, slotOfMapEntry } from '../config/slot.js';

export async function readLiveSlots(stage: Stage, balancers: readonly Balancer[], recorded: StageState | undefined): Promise<Record<string, SlotName>> {
  const views = await Promise.all(balancers.map(async (b) => {
    const lb = stage.loadBalancers[b.name];
    if (!lb) throw new Error(`internal: unknown load balancer ${b.name}`);
    return { name: b.name, map: await b.readMap(lb.mapFile) };
  }));
  const live: Record<string, SlotName> = {};
  const problems: string[] = [];
  for (const service of Object.keys(stage.services)) {
    const seen = views.map((v) => {
      const backend = v.map.get(service);
      const slot = slotOfMapEntry(service, backend);
      if (slot === undefined) problems.push(`${v.name} sends ${service} to "${backend}", which is neither ${SLOTS.map((x) => backendName(service, x)).join(' nor ')}`);
      return { lb: v.name, slot };
    });
    const slots = new Set(seen.map((s) => s.slot));
    if (slots.size > 1) {
      problems.push(`load balancers disagree about ${service}: ${seen.map((s) => `${s.lb} -> ${s.slot}`).join(', ')}`);
      continue;
    }
    const slot = seen[0]?.slot ?? DEFAULT_SLOT;
    const mine = recorded?.services[service]?.live;
    if (mine !== undefined && mine !== slot) {
      problems.push(`${service}: the load balancers send traffic to slot ${slot}, but the last recorded run left slot ${mine} live`);
    }
    live[service] = slot;
  }
  if (problems.length > 0) {
    throw new UpdateserverError(`the live slots are not what they should be; nothing was changed:\n  ${problems.join('\n  ')}`, {
      hint: 'someone may have switched by hand or a run was interrupted: check `updateserver status ' + stage.name + '`, put the load balancers back in agreement, then run again',
    });
  }
  return live;
}
