import { posix } from 'node:path';
import { PLACEHOLDERS, unknownPlaceholders } from '../commands/placeholders.js';
import type { ProfileData, ServiceData } from './schema.js';
import type { Stage } from './model.js';
import { templateProblems } from '../release/name.js';
import { checkHooksAndNotify } from './hook-checks.js';
import { checkTopology, slotPorts } from './topology-checks.js';
import { hostNamesOf } from './instances.js';
import { checkRollouts } from '../rollout/profile.js';

export interface CrossIssue { path: string; message: string }

/*
 * Rules that span several fields: references between sections, and things that would collide on a
 * machine. The schema checks each field alone; this checks that they make one workable stage.
 * Two host entries with the same address are one machine to HAProxy (it connects to address:port),
 * so ports are compared per address, and directories per address and SSH port.
 */
export function checkStage(stage: string, data: ProfileData): CrossIssue[] {
  return [
    ...checkCodeSource(stage, data),
    ...checkReleaseNames(data),
    ...checkConfigFiles(data),
    ...checkLoadBalancers(data),
    ...checkServiceHosts(data),
    ...checkCommands(data),
    ...checkSlotDirs(data),
    ...checkMachines(data),
    ...checkListenPorts(data),
    ...checkHooksAndNotify(data),
    ...checkTopology(data),
    ...checkRollouts(data),
  ];
}

/** The declared entry of that name, never a member every object has. */
const own = <T>(record: Readonly<Record<string, T>>, key: string): T | undefined => (Object.hasOwn(record, key) ? record[key] : undefined);

const hostList = (data: ProfileData) => Object.keys(data.hosts).join(', ') || 'none';

/** Normalised absolute path without a trailing slash ("/" stays "/"). */
const norm = (p: string) => posix.normalize(p).replace(/(.)\/+$/, '$1');
const isInside = (p: string, dir: string) => p === dir || p.startsWith(dir === '/' ? '/' : `${dir}/`);

function checkCodeSource(stage: string, data: ProfileData): CrossIssue[] {
  const issues: CrossIssue[] = [];
  if (data.from === undefined && data.source === undefined) {
    issues.push({ path: 'from', message: 'expected "from: <previous stage>" or, for the first stage, "source: { path: ... }"' });
  }
  if (data.from !== undefined && data.source !== undefined) {
    issues.push({ path: 'source', message: 'a stage takes its code either from the previous stage (from:) or from a source, not both' });
  }
  if (data.from === stage) issues.push({ path: 'from', message: `a stage cannot promote from itself ("${stage}")` });
  const src = data.source;
  if (src !== undefined) {
    if (src.path !== undefined && src.git !== undefined) issues.push({ path: 'source', message: 'expected either path (a directory) or git (a repository with a ref), not both' });
    else if (src.path === undefined && src.git === undefined) issues.push({ path: 'source', message: 'expected "path: <directory>" or "git: <repository>" with "ref: <tag, branch or commit>"' });
    if (src.git !== undefined && src.ref === undefined) issues.push({ path: 'source.ref', message: 'expected the tag, branch or commit of the git repository to release' });
    if (src.git === undefined && src.ref !== undefined) issues.push({ path: 'source.ref', message: 'a ref is only used with "git: <repository>"' });
  }
  return issues;
}

/** Templates are checked here, so that a bad one is refused before a release is made with it. */
function checkReleaseNames(data: ProfileData): CrossIssue[] {
  const templates: Array<[string, string | undefined]> = [['releaseName', data.releaseName], ...Object.entries(data.services).map(([n, s]): [string, string | undefined] => [`services.${n}.releaseName`, s.releaseName])];
  return templates.flatMap(([path, template]) => {
    if (template === undefined) return [];
    // Later stages keep the name the first stage gave: a template there would silently do nothing.
    if (data.from !== undefined) return [{ path, message: `only the first stage names releases; this stage keeps the names of stage "${data.from}" (move releaseName to the first stage's profile)` }];
    return templateProblems(template).map((message) => ({ path, message }));
  });
}

/** Two templates rendered to one file would overwrite each other on every start. */
function checkConfigFiles(data: ProfileData): CrossIssue[] {
  return Object.entries(data.services).flatMap(([name, s]) => {
    const seen = new Set<string>();
    return s.configFiles.flatMap((f, i) => {
      const out = posix.normalize(f.path);
      if (seen.has(out)) return [{ path: `services.${name}.configFiles.${i}.path`, message: `${f.path} is already rendered by another entry; give each file its own path` }];
      seen.add(out);
      return [];
    });
  });
}

function checkLoadBalancers(data: ProfileData): CrossIssue[] {
  const issues: CrossIssue[] = [];
  const lbNames = Object.keys(data.loadBalancers);
  if (lbNames.length === 0 && Object.keys(data.services).length > 0) {
    issues.push({ path: 'loadBalancers', message: 'expected at least one load balancer: traffic is switched there' });
  }
  // One runtime socket is one HAProxy: two entries on one machine would be switched twice.
  const sockets = new Map<string, string>();
  for (const [lbName, lb] of Object.entries(data.loadBalancers)) {
    if (lb.host !== undefined && !Object.hasOwn(data.hosts, lb.host)) {
      issues.push({ path: `loadBalancers.${lbName}.host`, message: `unknown host "${lb.host}": declare it under hosts (hosts: ${hostList(data)})` });
    }
    const machine = lb.host === undefined ? 'this machine' : `host "${lb.host}"`;
    const key = `${lb.host === undefined ? '' : own(data.hosts, lb.host)?.address ?? lb.host} ${norm(lb.socket)}`;
    const owner = sockets.get(key);
    if (owner !== undefined) {
      issues.push({ path: `loadBalancers.${lbName}.socket`, message: `socket ${lb.socket} on ${machine} is already used by load balancer "${owner}"; each load balancer needs its own HAProxy socket` });
    } else sockets.set(key, lbName);
  }
  return issues;
}

function checkServiceHosts(data: ProfileData): CrossIssue[] {
  const issues: CrossIssue[] = [];
  for (const [serviceName, service] of Object.entries(data.services)) {
    const seen = new Set<string>();
    hostNamesOf(service.hosts).forEach((h, i) => {
      const path = `services.${serviceName}.hosts.${i}`;
      if (!Object.hasOwn(data.hosts, h)) issues.push({ path, message: `unknown host "${h}": declare it under hosts (hosts: ${hostList(data)})` });
      if (seen.has(h)) issues.push({ path, message: `host "${h}" is listed twice; list each host once` });
      seen.add(h);
    });
  }
  return issues;
}

function checkCommands(data: ProfileData): CrossIssue[] {
  const issues: CrossIssue[] = [];
  const allowed = PLACEHOLDERS.map((p) => `{${p}}`).join(' ');
  for (const [serviceName, service] of Object.entries(data.services)) {
    for (const which of ['start', 'stop'] as const) {
      const command = service[which];
      if (command === undefined) continue;
      for (const unknown of new Set(unknownPlaceholders(command))) {
        issues.push({ path: `services.${serviceName}.${which}`, message: `unknown placeholder {${unknown}} (allowed: ${allowed})` });
      }
      if (!service.files && /\{files\}/.test(command)) {
        issues.push({ path: `services.${serviceName}.${which}`, message: `placeholder {files} names the slot's data directory, but the service has none: add services.${serviceName}.files or remove {files}` });
      }
      if (/\{snapshot\}/.test(command)) {
        issues.push({ path: `services.${serviceName}.${which}`, message: 'placeholder {snapshot} is only for files.command (where the consistent copy is written)' });
      }
      if (!service.database && /\{database\}/.test(command)) {
        issues.push({ path: `services.${serviceName}.${which}`, message: `placeholder {database} names the slot's database, but the service has none: add services.${serviceName}.database or remove {database}` });
      }
    }
  }
  return issues;
}

/** Under a service's root, releases/, run/, files/, shared/ and current belong to the tool; a slot's pointer lives beside them. */
function checkSlotDirs(data: ProfileData): CrossIssue[] {
  const issues: CrossIssue[] = [];
  for (const [serviceName, service] of Object.entries(data.services)) {
    const root = norm(service.root);
    for (const slot of ['a', 'b'] as const) {
      const dir = slotDir(service, slot);
      const path = `services.${serviceName}.slots.${slot}.dir`;
      const suggestion = `e.g. ${posix.join(root, slot)}`;
      if (isInside(root, dir)) {
        issues.push({ path, message: `"${dir}" is the service's root or above it; use a directory of its own, ${suggestion}` });
      } else if (['releases', 'run', 'files', 'shared', 'current'].some((d) => isInside(dir, posix.join(root, d)))) {
        issues.push({ path, message: `"${dir}" is reserved for the service's releases and run files; use ${suggestion}` });
      }
    }
  }
  return issues;
}

const slotDir = (service: ServiceData, slot: 'a' | 'b') => norm(service.slots[slot].dir ?? posix.join(service.root, slot));

/** Per machine: every slot port, slot directory and service root belongs to one owner. */
function checkMachines(data: ProfileData): CrossIssue[] {
  interface Owner { path: string; host: string; service: string }
  const issues: CrossIssue[] = [];
  const owners = new Map<string, Owner>();
  const describe = (o: Owner, host: string) => (o.host === host ? o.path : `${o.path} on host "${o.host}" (same address)`);
  /** The earlier owner of what `key` names, described for a message; undefined when `owner` is the first. */
  const claim = (key: string, owner: Owner): string | undefined => {
    const previous = owners.get(key);
    if (previous === undefined) owners.set(key, owner);
    return previous && describe(previous, owner.host);
  };
  for (const [serviceName, service] of Object.entries(data.services)) {
    for (const h of new Set(hostNamesOf(service.hosts))) {
      const host = own(data.hosts, h);
      if (host === undefined) continue;
      const machine = `${host.address}:${host.port ?? data.ssh.port ?? 22}`;
      const root = norm(service.root);
      const rootKey = `root ${machine} ${root}`;
      const rootOwner = owners.get(rootKey);
      if (rootOwner === undefined) owners.set(rootKey, { path: `services.${serviceName}.root`, host: h, service: serviceName });
      else if (rootOwner.service !== serviceName) {
        issues.push({ path: `services.${serviceName}.root`, message: `root ${root} on host "${h}" is already used by ${describe(rootOwner, h)}; give each service its own root` });
      }
      for (const slot of ['a', 'b'] as const) {
        const where = `services.${serviceName}.slots.${slot}`;
        // Every instance's port: two instances (of one service or of two) cannot listen on one port of a machine.
        for (const { port, instance } of slotPorts(service, h, slot)) {
          const owner = instance === 1 ? where : `${where} instance ${instance}`;
          const portOwner = claim(`port ${host.address} ${port}`, { path: owner, host: h, service: serviceName });
          if (portOwner !== undefined) issues.push({ path: `${where}.${service.slots[slot].ports ? 'ports' : 'port'}`, message: `port ${port}${instance === 1 ? '' : ` (instance ${instance})`} on host "${h}" is already used by ${portOwner}; pick another port` });
        }
        const dir = slotDir(service, slot);
        const dirOwner = claim(`dir ${machine} ${dir}`, { path: where, host: h, service: serviceName });
        if (dirOwner !== undefined) issues.push({ path: `${where}.dir`, message: `directory ${dir} on host "${h}" is already used by ${dirOwner}; give each slot its own directory` });
      }
    }
  }
  return issues;
}

/**
 * Every load balancer binds every service's frontend on its address, so listen ports are one
 * namespace per stage, and a slot on the load balancer's own address cannot use a listen port.
 */
function checkListenPorts(data: ProfileData): CrossIssue[] {
  const issues: CrossIssue[] = [];
  const listeners = new Map<number, string>();
  for (const [serviceName, service] of Object.entries(data.services)) {
    if (service.listen === undefined) continue;
    const other = listeners.get(service.listen);
    if (other !== undefined) {
      issues.push({ path: `services.${serviceName}.listen`, message: `port ${service.listen} is already the listen port of service "${other}"; give each service its own` });
    } else listeners.set(service.listen, serviceName);
  }
  const lbAt = new Map<string, string>();
  for (const [lbName, lb] of Object.entries(data.loadBalancers)) if (!lbAt.has(lb.address)) lbAt.set(lb.address, lbName);
  for (const [serviceName, service] of Object.entries(data.services)) {
    for (const h of new Set(hostNamesOf(service.hosts))) {
      const address = own(data.hosts, h)?.address;
      const lbName = address === undefined ? undefined : lbAt.get(address);
      if (lbName === undefined) continue;
      for (const slot of ['a', 'b'] as const) for (const { port } of slotPorts(service, h, slot)) {
        const listener = listeners.get(port);
        if (listener === undefined) continue;
        const whose = listener === serviceName ? 'its listen port' : `the listen port of service "${listener}"`;
        issues.push({
          path: `services.${serviceName}.slots.${slot}.port`,
          message: `port ${port} is ${whose}, and host "${h}" has the address ${address} where load balancer "${lbName}" listens; pick another port`,
        });
      }
    }
  }
  return issues;
}

/** Where a stage's state lives, as people read it. */
export const describeStateStore = (s: Stage): string => (s.state ? `PostgreSQL ${s.state.url}` : 'the local state directory');

/**
 * A promotion reads what passed the previous stage from the state store: stages linked by from: must
 * keep their state in one store, or the guard would read another team's (or no) record.
 */
export function checkSameStateStore(chain: readonly Stage[]): Array<{ file: string; path: string; message: string; line?: number | undefined }> {
  const issues = [];
  for (let i = 0; i + 1 < chain.length; i++) {
    const [stage, from] = [chain[i]!, chain[i + 1]!];
    if (describeStateStore(stage) === describeStateStore(from)) continue;
    issues.push({
      file: stage.file, path: 'state',
      message: `${stage.name} keeps its state in ${describeStateStore(stage)} but ${from.name} (its from:, ${from.file}) in ${describeStateStore(from)}: stages linked by from: must name the same state store`,
    });
  }
  return issues;
}
