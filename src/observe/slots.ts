import type { Service, SlotName } from '../config/model.js';
import { probeSlots, probeSourceSlots } from '../commands/release.js';
import { run, type Transport } from '../transport/transport.js';
import type { HostSlots } from '../plan/build.js';
import { RELEASE_NAME } from '../release/name.js';
import { HostError } from '../errors.js';
import { instancesOn } from '../config/instances.js';

/** Reads which release each slot points at on a host and whether it runs, in one round trip. */
export async function readHostSlots(transport: Transport, service: Service): Promise<HostSlots> {
  const { stdout } = await run(transport, probeSlots(service, instancesOn(service, transport.host)), { what: `reading the slots of ${service.name}` });
  return parseHostSlots(transport.host, service, stdout);
}

/** probeSlots' output (lines it does not know, such as probeSourceSlots' manifest hashes, are skipped). */
export function parseHostSlots(host: string, service: Service, stdout: string): HostSlots {
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
      throw new HostError(host, `slot ${s} of ${service.name} points at "${release}", which is not a release directory name`, { hint: `repoint ${service.slots[s].dir} at a release under ${service.root}/releases` });
    }
    slots.releases[s] = release === '-' || release === undefined ? undefined : release;
    slots.running[s] = up === '1';
  }
  return slots;
}

/** What the previous stage's host holds: its slots, and the SHA-256 of each slot's release manifest. */
export interface SourceSlots extends HostSlots {
  manifestHashes: Partial<Record<SlotName, string>>;
}

/** The previous stage's host in one exchange: slots, releases, free disk and both slots' manifest hashes. */
export async function readSourceSlots(transport: Transport, service: Service): Promise<SourceSlots> {
  const { stdout } = await run(transport, probeSourceSlots(service, instancesOn(service, transport.host)), { what: `reading the slots of ${service.name}` });
  const manifestHashes: Partial<Record<SlotName, string>> = {};
  for (const line of stdout.split('\n')) {
    const m = /^manifest ([ab]) ([0-9a-f]{64})\b/.exec(line.trim());
    if (m) manifestHashes[m[1] as SlotName] = m[2]!;
  }
  return { ...parseHostSlots(transport.host, service, stdout), manifestHashes };
}
