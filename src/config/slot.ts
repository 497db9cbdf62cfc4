/*
 * The slot vocabulary, in one place: the two slots of every service, the slot a frontend serves when
 * its map has no entry, the HAProxy backend of each slot (`<service>_<slot>`), the map keys of the
 * write freeze and maintenance (`<service>.readonly`, `<service>.maintenance`), and `--slot` as the
 * command line gives it. Nothing else spells these out, so renaming one changes one line.
 */
import { ConfigError } from '../errors.js';

export type SlotName = 'a' | 'b';
export const SLOTS: readonly SlotName[] = ['a', 'b'];

/**
 * The slot a service's frontend sends traffic to while its map has no entry (the rendered default
 * backend), so the slot live on a stage never promoted; also the one name of a shared database's slots.
 */
export const DEFAULT_SLOT: SlotName = 'a';

export const otherSlot = (slot: SlotName): SlotName => (slot === 'a' ? 'b' : 'a');
/** The slot that serves no traffic while `live` does: where a promotion puts its release. */
export const idleSlot = (live: SlotName): SlotName => otherSlot(live);

export const isSlotName = (text: unknown): text is SlotName => text === 'a' || text === 'b';

/** HAProxy backend holding a slot's servers: web, b -> web_b. */
export const backendName = (service: string, slot: SlotName): string => `${service}_${slot}`;

/** The slot a backend name designates (web_b -> b); undefined for any other backend. */
export function slotOfBackend(service: string, backend: string | undefined): SlotName | undefined {
  return SLOTS.find((slot) => backend === backendName(service, slot));
}

/** The slot a map entry sends a service to: no entry means the frontend's default backend. */
export function slotOfMapEntry(service: string, backend: string | undefined): SlotName | undefined {
  return backend === undefined ? DEFAULT_SLOT : slotOfBackend(service, backend);
}

/** The backend a map entry names, no entry being the default slot's. */
export const backendOfMapEntry = (service: string, backend: string | undefined): string => backend ?? backendName(service, DEFAULT_SLOT);

/** A slot's database when the profile names none: web in beta, slot b -> web_beta_b. */
export const defaultDatabaseName = (service: string, stage: string, slot: SlotName): string => `${service}_${stage}_${slot}`.replace(/-/g, '_');

/** Map key of the write freeze ("on": the frontend refuses writes with 503). */
export const readonlyKey = (service: string): string => `${service}.readonly`;
/** Map key of maintenance mode ("on": every request gets the maintenance page). */
export const maintenanceKey = (service: string): string => `${service}.maintenance`;
/** Map key of a progressive rollout's share: "N" sends N% of new requests to the backend named by rolloutKey (docs/decisions/0016). */
export const weightKey = (service: string): string => `${service}.weight`;
/** Map key naming the backend that receives a rollout's share (the new slot's). */
export const rolloutKey = (service: string): string => `${service}.rollout`;

/** `--slot` from the command line: undefined when not given; bad input otherwise (exit 2). */
export function parseSlot(text: string | undefined, where = '--slot'): SlotName | undefined {
  if (text === undefined) return undefined;
  if (!isSlotName(text)) throw new ConfigError([{ file: 'command line', path: where, message: `expected ${SLOTS.join(' or ')}, found ${JSON.stringify(text)}` }]);
  return text;
}
