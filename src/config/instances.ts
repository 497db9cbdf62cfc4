/*
 * Instances: a service may run several processes per host (issue 18: "8 zeo clients on 5 machines").
 * Instance n (1-based) of a slot listens on its own port (the slot's listed ports[n - 1], else
 * port + n - 1), has its own pid and log file, and its own HAProxy server line. Instance 1 keeps the
 * names a single-instance service always had (server <host>, run/<slot>.pid), so nothing changes on a
 * host that runs one instance.
 */
import { posix } from 'node:path';
import type { Service, SlotName } from './model.js';

/** A service's host as the profile writes it: a name, or `{ name, instances }` ("instances: 4 on a host"). */
export type ServiceHostEntry = string | { name: string; instances: number };
export const hostNameOf = (h: ServiceHostEntry): string => (typeof h === 'string' ? h : h.name);
export const hostNamesOf = (hosts: readonly ServiceHostEntry[]): string[] => hosts.map(hostNameOf);

/**
 * Instances per host: a host entry's own `instances` first, else the service's `instances` (a number
 * for all hosts, or a map by host name), else 1. The profile check refuses a host given a count both ways.
 */
export function instancesPerHost(hosts: readonly ServiceHostEntry[], spec: number | Record<string, number>): Record<string, number> {
  const out = Object.create(null) as Record<string, number>;
  for (const entry of hosts) {
    const h = hostNameOf(entry);
    out[h] = typeof entry !== 'string' ? entry.instances : typeof spec === 'number' ? spec : Object.hasOwn(spec, h) ? spec[h]! : 1;
  }
  return out;
}

/** A relative path as written, normalised ("a/./b/" -> "a/b"), so that comparisons mean what they say. */
export const normalizeRelative = (p: string): string => posix.normalize(p).replace(/(.)\/+$/, '$1');

export const instancesOn = (service: Pick<Service, 'instances'>, host: string): number =>
  (Object.hasOwn(service.instances, host) ? service.instances[host]! : 1);

/** The port instance n (1-based) of a slot listens on. */
export function instancePort(service: Pick<Service, 'slots'>, slot: SlotName, instance: number): number {
  const { port, ports } = service.slots[slot];
  // The profile check makes sure a listed slot has a port for every instance.
  return ports && ports.length > 0 ? ports[instance - 1] ?? ports[ports.length - 1]! + instance - ports.length : port + instance - 1;
}

/** HAProxy server name of instance n on a host: the host's name for the first, <host>-<n> for the others. */
export const serverName = (host: string, instance: number): string => (instance === 1 ? host : `${host}-${instance}`);

/** Suffix of an instance's run files: "" for the first (run/a.pid), ".<n>" for the others (run/a.2.pid). */
export const instanceSuffix = (instance: number): string => (instance === 1 ? '' : `.${instance}`);

export interface Instance { host: string; instance: number; server: string }

/** Every instance of a service, host by host in the profile's order. */
export function instancesOf(service: Pick<Service, 'hosts' | 'instances'>): Instance[] {
  return service.hosts.flatMap((host) => Array.from({ length: instancesOn(service, host) }, (_, i) => ({ host, instance: i + 1, server: serverName(host, i + 1) })));
}

/** HAProxy server names of a service (every instance on every host). */
export const serverNames = (service: Pick<Service, 'hosts' | 'instances'>): string[] => instancesOf(service).map((i) => i.server);
