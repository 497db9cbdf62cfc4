/*
 * Profile rules of the seeds' own systems (issue 18): instances and their ports, tiers (`after`) and
 * their cycles, placeholders naming another tier's slot, data directories (`files`) and `shared`
 * directories. Each problem names the field; cross-checks.ts calls checkTopology with the others.
 */
import { posix } from 'node:path';
import type { ProfileData, ServiceData } from './schema.js';
import { findCycle } from './tiers.js';
import { hostNamesOf, instancesPerHost } from './instances.js';
import { peerPlaceholders, PEER_FIELDS } from '../commands/placeholders.js';
import type { SlotName } from './slot.js';

interface Issue { path: string; message: string }

/**
 * Instances per host of a raw service, worked out once per service: the cross-checks ask for every host
 * of a stage (thousands in a large profile), and working it out per call made validation quadratic.
 */
const perHost = new WeakMap<ServiceData, Record<string, number>>();
function instancesOf(service: ServiceData): Record<string, number> {
  let found = perHost.get(service);
  if (!found) perHost.set(service, (found = instancesPerHost(service.hosts, service.instances)));
  return found;
}

/** The ports a slot's instances use on one host, from the raw profile (port + n - 1, or listed). */
export function slotPorts(service: ServiceData, host: string, slot: SlotName): Array<{ port: number; instance: number }> {
  const n = instancesOf(service)[host] ?? 1;
  const s = service.slots[slot];
  return Array.from({ length: n }, (_, i) => {
    const port = s.ports ? s.ports[i] : s.port === undefined ? undefined : s.port + i;
    return port === undefined ? [] : [{ port, instance: i + 1 }];
  }).flat();
}

export function checkTopology(data: ProfileData): Issue[] {
  return [
    ...Object.entries(data.services).flatMap(([name, s]) => [...checkPorts(name, s), ...checkAfter(data, name, s), ...checkPaths(name, s), ...checkFrontend(name, s)]),
    ...checkCycles(data),
  ];
}

function maxInstances(s: ServiceData): number {
  return Math.max(1, ...Object.values(instancesOf(s)));
}

function checkPorts(name: string, s: ServiceData): Issue[] {
  const issues: Issue[] = [];
  const hosts = hostNamesOf(s.hosts);
  if (typeof s.instances === 'object') {
    for (const h of Object.keys(s.instances)) {
      if (!hosts.includes(h)) issues.push({ path: `services.${name}.instances.${h}`, message: `"${h}" is not one of the service's hosts (${hosts.join(', ')})` });
      // Said twice, the two could disagree: one place for each host's count.
      const entry = s.hosts.find((e) => typeof e !== 'string' && e.name === h);
      if (entry !== undefined && typeof entry !== 'string') issues.push({ path: `services.${name}.instances.${h}`, message: `host "${h}" gets its number of instances twice (instances: ${entry.instances} in hosts, ${s.instances[h]} here); keep one` });
    }
  }
  const most = maxInstances(s);
  for (const slot of ['a', 'b'] as const) {
    const { port, ports } = s.slots[slot];
    const where = `services.${name}.slots.${slot}`;
    if (port === undefined && ports === undefined) issues.push({ path: `${where}.port`, message: 'expected the slot\'s port (port: 8001), or one port per instance (ports: [8001, 8002])' });
    if (port !== undefined && ports !== undefined) issues.push({ path: `${where}.ports`, message: 'expected either port (instances use port, port + 1, ...) or ports (listed), not both' });
    if (ports !== undefined && ports.length < most) issues.push({ path: `${where}.ports`, message: `${ports.length} port(s) listed for ${most} instance(s) on one host; list one port per instance` });
    if (ports !== undefined) {
      const dup = ports.find((p, i) => ports.indexOf(p) !== i);
      if (dup !== undefined) issues.push({ path: `${where}.ports`, message: `port ${dup} is listed twice; each instance needs its own port` });
    }
    if (port !== undefined && port + most - 1 > 65535) issues.push({ path: `${where}.port`, message: `${most} instances from port ${port} go beyond 65535` });
  }
  return issues;
}

function checkAfter(data: ProfileData, name: string, s: ServiceData): Issue[] {
  const issues: Issue[] = [];
  s.after.forEach((dep, i) => {
    const path = `services.${name}.after.${i}`;
    if (dep === name) issues.push({ path, message: `a service cannot start after itself ("${name}")` });
    else if (!Object.hasOwn(data.services, dep)) issues.push({ path, message: `unknown service "${dep}" (services: ${Object.keys(data.services).join(', ')})` });
  });
  // {zeo.address} names the same slot of a tier this one starts after: anything else has no defined address.
  const commands: Array<[string, string | undefined]> = [['start', s.start], ['stop', s.stop], ['files.command', s.files?.command]];
  for (const [which, command] of commands) {
    for (const p of command === undefined ? [] : peerPlaceholders(command)) {
      if (!s.after.includes(p.service)) issues.push({ path: `services.${name}.${which}`, message: `placeholder {${p.service}.${p.field}} names service "${p.service}", which is not in services.${name}.after; add it there (its slot then starts first)` });
      else if (!(PEER_FIELDS as readonly string[]).includes(p.field)) issues.push({ path: `services.${name}.${which}`, message: `placeholder {${p.service}.${p.field}}: expected one of ${PEER_FIELDS.map((f) => `{${p.service}.${f}}`).join(' ')}` });
    }
  }
  return issues;
}

function checkCycles(data: ProfileData): Issue[] {
  const cycle = findCycle(data.services);
  if (cycle === undefined || cycle.length < 3) return [];
  return [{ path: `services.${cycle[0]}.after`, message: `"after" makes a cycle: ${cycle.join(' -> ')}; tiers need an order (remove one of these)` }];
}

/** A path relative to a directory of the service that stays inside it. */
const escapes = (p: string) => posix.isAbsolute(p) || posix.normalize(p).split('/')[0] === '..' || posix.normalize(p) === '.';
const SAFE = /^[A-Za-z0-9._/-]+$/;
const inside = (p: string, dir: string) => p === dir || p.startsWith(`${dir}/`);

function checkPaths(name: string, s: ServiceData): Issue[] {
  const issues: Issue[] = [];
  const files = (s.files?.paths ?? []).map((p) => posix.normalize(p).replace(/(.)\/+$/, '$1'));
  (s.files?.paths ?? []).forEach((p, i) => {
    const path = `services.${name}.files.paths.${i}`;
    if (escapes(p)) issues.push({ path, message: `"${p}" escapes the service root ${s.root}: expected a path inside the slot's data directory ${s.root}/files/<slot>, e.g. "data"` });
    else if (!SAFE.test(p)) issues.push({ path, message: 'expected a path of letters, digits, ".", "_", "-" and "/"' });
  });
  s.shared.forEach((p, i) => {
    const path = `services.${name}.shared.${i}`;
    if (escapes(p)) { issues.push({ path, message: `"${p}" escapes the service root ${s.root}: expected a path relative to ${s.root}/shared, e.g. "uploads"` }); return; }
    if (!SAFE.test(p)) { issues.push({ path, message: 'expected a path of letters, digits, ".", "_", "-" and "/"' }); return; }
    const shared = posix.normalize(p).replace(/(.)\/+$/, '$1');
    const overlap = files.find((f) => inside(f, shared) || inside(shared, f));
    if (overlap !== undefined) issues.push({ path, message: `"${p}" overlaps "${overlap}" of services.${name}.files: a directory is either shared by both slots or copied per slot, not both` });
  });
  return issues;
}

function checkFrontend(name: string, s: ServiceData): Issue[] {
  if (s.listen === undefined && s.mode === 'tcp') return [{ path: `services.${name}.mode`, message: 'mode tcp is the mode of a frontend, and the service has no listen port; add listen, or remove mode' }];
  return [];
}
