import type { Service, SlotName } from '../config/model.js';
import { probeSlots } from '../commands/release.js';
import { run, type Transport } from '../transport/transport.js';
import type { HostSlots } from '../plan/build.js';

/** Reads which release each slot points at on a host and whether it runs, in one round trip. */
export async function readHostSlots(transport: Transport, service: Service): Promise<HostSlots> {
  const { stdout } = await run(transport, probeSlots(service), { what: `reading the slots of ${service.name}` });
  const slots: HostSlots = { releases: { a: undefined, b: undefined }, running: { a: false, b: false }, complete: [], freeBytes: undefined };
  for (const line of stdout.trim().split('\n')) {
    const [slot, release, up] = line.trim().split(' ');
    if (slot === 'releases') { slots.complete = line.trim().split(' ').slice(1); continue; }
    if (slot === 'free') { slots.freeBytes = Number(release); continue; }
    if (slot !== 'a' && slot !== 'b') continue;
    const s: SlotName = slot;
    slots.releases[s] = release === '-' || release === undefined ? undefined : release;
    slots.running[s] = up === '1';
  }
  return slots;
}
