/*
 * Placeholders in start/stop commands. Every value comes from the validated profile (names, ports,
 * paths restricted to safe characters) or from a release name the tool generated, and is quoted
 * anyway, so a placeholder can never change the shape of the command it is put in.
 */
import { quote } from './shell.js';

export interface SlotContext {
  stage: string;
  service: string;
  host: string;
  address: string;
  slot: string;
  port: number;
  dir: string;
  release: string;
  /** The slot's own config directory, {root}/run/<slot>: rendered config files live here. */
  config: string;
  /** The slot's database name (services with a `database` only: the app must know which one is its own). */
  database?: string;
  /** The stage's and host's `vars:` (issue 19): {vars.NAME} in config templates. */
  vars?: Readonly<Record<string, string>>;
  /** Instance number on the host (1-based; services with `instances`). */
  instance?: number;
  /** The slot's data directory {root}/files/<slot> (services with `files`). */
  files?: string;
  /** In files.command only: the directory it writes the consistent copy into. */
  snapshot?: string;
  /** Where the same slot of each service named in `after` is reached: {zeo.address}, {zeo.port}, {zeo.servers}. */
  peers?: Record<string, PeerAddress>;
}

/** A server tier's slot as its clients reach it: its first instance, and every instance as address:port,... */
export interface PeerAddress { address: string; port: number; servers: string }

/** What a slot's rendered config files may use too (they are rendered once per slot, not per instance). */
export const SLOT_PLACEHOLDERS = ['stage', 'service', 'host', 'address', 'slot', 'port', 'dir', 'release', 'config', 'database'] as const;
export const PLACEHOLDERS = [...SLOT_PLACEHOLDERS, 'instance', 'files', 'snapshot'] as const;
/** Fields of a peer placeholder, {<service>.<field>}: the same slot of a service named in `after`. */
export const PEER_FIELDS = ['address', 'port', 'servers'] as const;

const PLACEHOLDER = /\{([a-z][a-z0-9_-]*)(?:\.([a-z]+))?\}/g;

export function expand(template: string, ctx: SlotContext): string {
  return template.replace(PLACEHOLDER, (whole, key: string, field: string | undefined) => {
    if (field !== undefined) {
      const peer = ctx.peers && Object.hasOwn(ctx.peers, key) ? ctx.peers[key] : undefined;
      if (!peer || !(PEER_FIELDS as readonly string[]).includes(field)) return whole;
      return quote(String(peer[field as keyof PeerAddress]));
    }
    if (!(PLACEHOLDERS as readonly string[]).includes(key)) return whole;
    const value = ctx[key as keyof SlotContext];
    return quote(typeof value === 'object' ? '' : String(value ?? ''));
  });
}

/** Names of unknown placeholders in a template, for validation messages ({x.y}: a peer placeholder, see peerPlaceholders). */
export function unknownPlaceholders(template: string): string[] {
  return [...template.matchAll(PLACEHOLDER)].filter((m) => m[2] === undefined).map((m) => m[1] ?? '').filter((k) => !(PLACEHOLDERS as readonly string[]).includes(k));
}

/** The peer placeholders of a template: {zeo.address} -> { service: zeo, field: address }. */
export function peerPlaceholders(template: string): Array<{ service: string; field: string }> {
  return [...template.matchAll(PLACEHOLDER)].filter((m) => m[2] !== undefined).map((m) => ({ service: m[1]!, field: m[2]! }));
}
