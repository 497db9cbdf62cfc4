import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { homedir } from 'node:os';
import { LineCounter, parseDocument, isMap, isNode, isScalar, isSeq, type Document } from 'yaml';
import { ConfigError, type ConfigIssue } from '../errors.js';
import { NAME_PATTERN, profile as profileSchema, type ProfileData } from './schema.js';
import { backendName, SLOTS, type Host, type LoadBalancer, type Project, type Service, type Stage } from './model.js';
import { checkStage } from './cross-checks.js';

export function profileFile(stage: string): string {
  return join('profiles', `${stage}.yaml`);
}

/** Makes "~/x" and relative paths absolute the way a user expects from a config file. */
export function resolveLocalPath(project: Project, p: string): string {
  if (p === '~' || p.startsWith('~/')) return join(homedir(), p.slice(1));
  return isAbsolute(p) ? p : resolve(project.dir, p);
}

function pathOf(segments: readonly PropertyKey[]): string {
  return segments.map(String).join('.');
}

/**
 * Line of the key (or list item) at a path, so that an error points into the file. A path that is
 * not in the file (a missing key) points at the nearest enclosing key that is, if any.
 */
function lineOf(doc: Document, lines: LineCounter, segments: readonly PropertyKey[]): number | undefined {
  for (let n = segments.length; n >= (segments.length === 0 ? 0 : 1); n--) {
    const node = n === 0 ? doc.contents : keyOrItem(doc.getIn(segments.slice(0, n - 1) as unknown[], true), segments[n - 1]);
    if (isNode(node) && node.range) return lines.linePos(node.range[0]).line;
  }
  return undefined;
}

function keyOrItem(parent: unknown, segment: PropertyKey | undefined): unknown {
  if (isMap(parent)) return parent.items.find((pair) => String(isScalar(pair.key) ? pair.key.value : pair.key) === String(segment))?.key;
  if (isSeq(parent)) return parent.items[Number(segment)];
  return undefined;
}

async function lineIn(project: Project, file: string, segments: readonly PropertyKey[]): Promise<number | undefined> {
  const lines = new LineCounter();
  const doc = parseDocument(await readFile(join(project.dir, file), 'utf8'), { lineCounter: lines });
  return lineOf(doc, lines, segments);
}

/** Reads and validates one profile. Throws ConfigError listing every problem found in the file. */
export async function loadProfile(project: Project, stage: string): Promise<Stage> {
  const file = profileFile(stage);
  if (!NAME_PATTERN.test(stage)) {
    throw new ConfigError([{ file, path: '', message: `"${stage}" is not a valid stage name (lowercase letters, digits, "-", "_")` }]);
  }
  const absolute = join(project.dir, file);
  if (!existsSync(absolute)) {
    throw new ConfigError([{ file, path: '', message: `no such profile: stage "${stage}" is not defined` }],
      `create ${file}, or pick one of the stages in ${join(project.dir, 'profiles')}`);
  }
  const text = await readFile(absolute, 'utf8');
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((e) => ({
      file, path: '', message: `invalid YAML: ${e.message.split('\n')[0]}`,
      line: lines.linePos(e.pos[0]).line,
    } as ConfigIssue)));
  }
  if (!isMap(doc.contents)) {
    const found = doc.contents === null ? 'the file is empty' : isSeq(doc.contents) ? 'found a list' : 'found a single value';
    throw new ConfigError([{ file, path: '', message: `expected a map of settings (hosts, loadBalancers, services, ...); ${found}`, line: lineOf(doc, lines, []) }]);
  }
  const parsed = profileSchema.safeParse(doc.toJS());
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.flatMap((issue): ConfigIssue[] => {
      const at = (path: readonly PropertyKey[], message: string) => ({ file, path: pathOf(path), message, line: lineOf(doc, lines, path) });
      if (issue.code === 'unrecognized_keys') {
        return issue.keys.map((key) => at([...issue.path, key], `unknown key (allowed here: ${allowedKeys(issue.path)})`));
      }
      if (issue.code === 'invalid_key') {
        return [at(issue.path, `invalid name: ${issue.issues[0]?.message ?? issue.message}`)];
      }
      return [at(issue.path, issue.message)];
    }));
  }
  const data = parsed.data;
  const issues = checkStage(stage, data).map((i) => ({ file, ...i, line: lineOf(doc, lines, i.path.split('.')) }));
  if (issues.length > 0) throw new ConfigError(issues);
  return resolveStage(project, stage, file, data);
}

function allowedKeys(path: readonly PropertyKey[]): string {
  const top = ['from', 'source', 'ssh', 'hosts', 'loadBalancers', 'services', 'parallel', 'serial', 'keepReleases'];
  const byDepth: Record<string, string[]> = {
    '': top,
    ssh: ['user', 'port', 'key', 'knownHosts', 'connectTimeoutMs', 'commandTimeoutMs'],
    hosts: ['address', 'user', 'port', 'key'],
    loadBalancers: ['socket', 'mapFile', 'host', 'address', 'timeoutMs'],
    services: ['hosts', 'root', 'listen', 'slots', 'start', 'build', 'stop', 'stopTimeoutMs', 'exclude', 'health', 'drainTimeoutMs'],
    slots: ['a', 'b'],
    slot: ['port', 'dir'],
    health: ['path', 'expectStatus', 'attemptTimeoutMs', 'intervalMs', 'deadlineMs'],
    source: ['path'],
  };
  const p = path.map(String);
  let key = '';
  if (p.length === 1) key = p[0] ?? '';
  else if (p.length === 2) key = p[0] ?? '';
  else if (p[0] === 'services' && p[2] === 'slots') key = p.length === 3 ? 'slots' : 'slot';
  else if (p[0] === 'services' && p[2] === 'health') key = 'health';
  return (byDepth[key] ?? []).join(', ');
}

function resolveStage(project: Project, name: string, file: string, data: ProfileData): Stage {
  const ssh = data.ssh;
  const hosts: Record<string, Host> = {};
  for (const [hostName, h] of Object.entries(data.hosts)) {
    const key = h.key ?? ssh.key;
    hosts[hostName] = Object.freeze({
      name: hostName,
      address: h.address,
      port: h.port ?? ssh.port ?? 22,
      user: h.user ?? ssh.user ?? 'root',
      key: key === undefined ? undefined : resolveLocalPath(project, key),
      knownHosts: resolveLocalPath(project, ssh.knownHosts ?? '~/.ssh/known_hosts'),
      connectTimeoutMs: ssh.connectTimeoutMs ?? 10_000,
      commandTimeoutMs: ssh.commandTimeoutMs ?? 600_000,
    });
  }
  const loadBalancers: Record<string, LoadBalancer> = {};
  for (const [lbName, lb] of Object.entries(data.loadBalancers)) {
    // A remote load balancer's paths are on its host and are used as written.
    const local = (p: string) => (lb.host === undefined ? resolveLocalPath(project, p) : p);
    loadBalancers[lbName] = Object.freeze({
      name: lbName, socket: local(lb.socket), mapFile: local(lb.mapFile), host: lb.host, address: lb.address,
      timeoutMs: lb.timeoutMs ?? 2000,
    });
  }
  const services: Record<string, Service> = {};
  for (const [serviceName, s] of Object.entries(data.services)) {
    const slots = Object.fromEntries(SLOTS.map((slot) => [slot, Object.freeze({
      name: slot,
      port: s.slots[slot].port,
      dir: s.slots[slot].dir ?? `${s.root.replace(/\/+$/, '')}/${slot}`,
      backend: backendName(serviceName, slot),
    })])) as unknown as Service['slots'];
    services[serviceName] = Object.freeze({
      name: serviceName, hosts: Object.freeze([...s.hosts]), root: s.root.replace(/\/+$/, '') || '/', listen: s.listen,
      slots: Object.freeze(slots), start: s.start, build: s.build, stop: s.stop, stopTimeoutMs: s.stopTimeoutMs,
      exclude: Object.freeze([...s.exclude]), health: Object.freeze({ ...s.health }), drainTimeoutMs: s.drainTimeoutMs,
    });
  }
  return Object.freeze({
    name, file, from: data.from,
    sourcePath: data.source === undefined ? undefined : resolveLocalPath(project, data.source.path),
    hosts: Object.freeze(hosts), loadBalancers: Object.freeze(loadBalancers), services: Object.freeze(services),
    parallel: data.serial ? 1 : data.parallel, keepReleases: data.keepReleases,
  });
}

/**
 * Loads a stage and every stage before it (following from:), refusing unknown stages and cycles.
 * The chain is returned target first.
 */
export async function loadPipeline(project: Project, stage: string): Promise<Stage[]> {
  const chain: Stage[] = [];
  const seen = new Set<string>();
  let next: string | undefined = stage;
  while (next !== undefined) {
    if (seen.has(next)) {
      const prev = chain[chain.length - 1]!;
      throw new ConfigError([{ file: prev.file, path: 'from', message: `circular "from:" chain: ${[...seen, next].join(' -> ')}`, line: await lineIn(project, prev.file, ['from']) }]);
    }
    seen.add(next);
    const current: Stage = await loadProfile(project, next).catch(async (err: unknown) => {
      const prev = chain[chain.length - 1];
      if (prev && err instanceof ConfigError && err.issues.some((i) => i.message.startsWith('no such profile'))) {
        throw new ConfigError([{ file: prev.file, path: 'from', message: `unknown stage "${next}" (${profileFile(next!)} does not exist)`, line: await lineIn(project, prev.file, ['from']) }]);
      }
      throw err;
    });
    chain.push(current);
    next = current.from;
  }
  return chain;
}
