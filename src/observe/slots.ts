import type { Service, SlotName } from '../config/model.js';
import { probeSlots } from '../commands/release.js';
import { run, type Transport } from '../transport/transport.js';
import type { HostSlots } from '../plan/build.js';
import { RELEASE_NAME } from '../release/name.js';
import { HostError } from '../errors.js';
import { instancesOn } from '../config/instances.js';

/** Reads which release each slot points at on a host and whether it runs, in one round trip. */
export async function readHostSlots(transport: Transport, service: Service): Promise<HostSlots> {
  const { stdout } = await run(transport, probeSlots(service, instancesOn(service, transport.host)), { what: `reading the slots of ${service.name}` });
  const slots: HostSlots = { releases: { a: undefined, b: undefined }, running: { a: false, b: false }, complete: [], partial: [], freeBytes: undefined };
  for (const line of stdout.trim().split('\n')) {
    const [slot, release, up] = line.trim().split(' ');
    // Names read from a host go into commands later: anything unexpected there is not taken as a release.
    if (slot === 'releases') { slots.complete = line.trim().split(' ').slice(1).filter((r) => RELEASE_NAME.test(r)); continue; }
    if (slot === 'partial') { slots.partial = line.trim().split(' ').slice(1).filter((r) => RELEASE_NAME.test(r)); continue; }
    if (slot === 'free') { slots.freeBytes = Number(release); continue; }
    if (slot !== 'a' && slot !== 'b') continue;
    const s: SlotName = slot;
    if (release !== undefined && release !== '-' && !RELEASE_NAME.test(release)) {
      throw new HostError(transport.host, `slot ${s} of ${service.name} points at "${release}", which is not a release directory name`, { hint: `repoint ${service.slots[s].dir} at a release under ${service.root}/releases` });
    }
    slots.releases[s] = release === '-' || release === undefined ? undefined : release;
    slots.running[s] = up === '1';
  }
  return slots;
}
