import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { homedir } from 'node:os';
import { ConfigError, UpdateserverError, describeError } from '../errors.js';
import { readYamlFile } from './yaml-file.js';
import { defaultChecks, healthchecksPath, loadHealthchecks, type HealthChecks } from './healthchecks.js';
import { NAME_PATTERN, RESERVED_NAMES, reservedNameMessage, profile as profileSchema, type DatabaseData, type ProfileData, type SourceData, type StateData } from './schema.js';
import { DEFAULT_RELEASE_NAME } from '../release/name.js';
import { Secret } from './secret.js';
import { defaultDatabaseName } from './slot.js';
import { backendName, SLOTS, type EmailNotify, type Hook, type HookPoint, type Hooks, type CodeSource, type Database, type StateBackendConfig, type SlotName, type Host, type LoadBalancer, type Project, type Service, type Stage } from './model.js';
import { checkSameStateStore, checkStage } from './cross-checks.js';
import { hostNamesOf, instancesPerHost, normalizeRelative } from './instances.js';

export function profileFile(stage: string): string {
  return join('profiles', `${stage}.yaml`);
}

/**
 * A record of what the user declared and nothing else: without a prototype, so that a lookup by a
 * name such as "constructor" or "toString" finds nothing unless that name was declared.
 */
export function declared<T>(entries: Iterable<readonly [string, T]>): Record<string, T> {
  const record = Object.create(null) as Record<string, T>;
  for (const [k, v] of entries) record[k] = v;
  return record;
}

/** Makes "~/x" and relative paths absolute the way a user expects from a config file. */
export function resolveLocalPath(project: Project, p: string): string {
  if (p === '~' || p.startsWith('~/')) return join(homedir(), p.slice(1));
  return isAbsolute(p) ? p : resolve(project.dir, p);
}

/**
 * Reads and validates one profile. Throws ConfigError listing every problem found in the file; an
 * unforeseen failure while doing so is bad input too, named by the file (its trace with --verbose).
 */
export async function loadProfile(project: Project, stage: string): Promise<Stage> {
  try {
    return await readProfile(project, stage);
  } catch (err) {
    if (err instanceof UpdateserverError) throw err;
    throw new ConfigError([{ file: profileFile(stage), path: '', message: `could not be validated: ${describeError(err)}` }], undefined, err);
  }
}

async function readProfile(project: Project, stage: string): Promise<Stage> {
  const file = profileFile(stage);
  if (!NAME_PATTERN.test(stage)) {
    throw new ConfigError([{ file, path: '', message: `"${stage}" is not a valid stage name (lowercase letters, digits, "-", "_")` }]);
  }
  if (RESERVED_NAMES.includes(stage)) throw new ConfigError([{ file, path: '', message: `stage ${reservedNameMessage(stage)}` }]);
  const absolute = join(project.dir, file);
  if (!existsSync(absolute)) {
    throw new ConfigError([{ file, path: '', message: `no such profile: stage "${stage}" is not defined` }],
      `create ${file}, or pick one of the stages in ${join(project.dir, 'profiles')}`);
  }
  const { data, lineAt } = await readYamlFile(absolute, file, profileSchema, 'hosts, loadBalancers, services, ...');
  const issues = [...checkStage(stage, data), ...checkEnvironment(data)].map((i) => ({ file, ...i, line: lineAt(i.path) }));
  if (issues.length > 0) throw new ConfigError(issues);
  const checksByService = declared<HealthChecks>([]);
  for (const [serviceName, s] of Object.entries(data.services)) {
    if (s.checks === undefined) continue;
    const where = { file, path: `services.${serviceName}.checks`, line: lineAt(`services.${serviceName}.checks`) };
    const checks = await loadHealthchecks(project, s.checks, where);
    const sql = [...checks.pre, ...checks.post, ...checks.watch.checks].find((c) => c.sql !== undefined);
    if (sql && !s.database) throw new ConfigError([{ ...where, message: `check "${sql.name}" in ${healthchecksPath(s.checks)} is an sql check, but service ${serviceName} has no database` }]);
    checksByService[serviceName] = checks;
  }
  return resolveStage(project, stage, file, data, lineAt('from'), checksByService);
}

function resolveDatabase(project: Project, stage: string, service: string, d: DatabaseData): Database {
  const fallback = (slot: SlotName) => defaultDatabaseName(service, stage, slot);
  const a = d.names?.a ?? fallback('a');
  const password = d.passwordEnv === undefined ? undefined : new Secret(process.env[d.passwordEnv] ?? '', `environment variable ${d.passwordEnv}`);
  return Object.freeze({
    engine: d.engine, strategy: d.strategy, host: d.host,
    port: d.port ?? (d.engine === 'postgres' ? 5432 : 3306),
    user: d.user ?? (d.engine === 'postgres' ? 'postgres' : 'root'),
    password,
    names: Object.freeze({ a, b: d.strategy === 'shared' ? a : d.names?.b ?? fallback('b') }),
    migrations: resolveLocalPath(project, d.migrations ?? join('migrations', service)),
    jobs: d.jobs,
    fastPath: d.fastPath,
    refreshAfter: Object.freeze([...d.refresh.after]),
  });
}

function resolveStage(project: Project, name: string, file: string, data: ProfileData, fromLine: number | undefined, checksByService: Record<string, HealthChecks>): Stage {
  const ssh = data.ssh;
  const hosts = declared<Host>([]);
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
      // Only when there are some: a host without `vars:` reads as it did before them.
      ...(data.vars || h.vars ? { vars: Object.freeze({ ...varsOf(data.vars), ...varsOf(h.vars) }) } : {}),
    });
  }
  const loadBalancers = declared<LoadBalancer>([]);
  for (const [lbName, lb] of Object.entries(data.loadBalancers)) {
    // A remote load balancer's paths are on its host and are used as written.
    const local = (p: string) => (lb.host === undefined ? resolveLocalPath(project, p) : p);
    loadBalancers[lbName] = Object.freeze({
      name: lbName, socket: local(lb.socket), mapFile: local(lb.mapFile), host: lb.host, address: lb.address,
      timeoutMs: lb.timeoutMs ?? 2000,
    });
  }
  const services = declared<Service>([]);
  for (const [serviceName, s] of Object.entries(data.services)) {
    const slots = Object.fromEntries(SLOTS.map((slot) => [slot, Object.freeze({
      name: slot,
      port: s.slots[slot].ports?.[0] ?? s.slots[slot].port ?? 0,
      ...(s.slots[slot].ports ? { ports: Object.freeze([...s.slots[slot].ports]) } : {}),
      dir: s.slots[slot].dir ?? `${s.root.replace(/\/+$/, '')}/${slot}`,
      backend: backendName(serviceName, slot),
    })])) as unknown as Service['slots'];
    services[serviceName] = Object.freeze({
      name: serviceName, hosts: Object.freeze(hostNamesOf(s.hosts)), root: s.root.replace(/\/+$/, '') || '/', listen: s.listen,
      mode: s.mode, instances: Object.freeze(instancesPerHost(s.hosts, s.instances)), after: Object.freeze([...s.after]),
      files: s.files === undefined ? undefined : Object.freeze({ paths: Object.freeze(s.files.paths.map(normalizeRelative)), strategy: s.files.strategy, command: s.files.command }),
      shared: Object.freeze(s.shared.map(normalizeRelative)), currentLink: s.currentLink,
      slots: Object.freeze(slots), start: s.start, build: s.build, stop: s.stop, stopTimeoutMs: s.stopTimeoutMs,
      exclude: Object.freeze([...s.exclude]), health: Object.freeze({ ...s.health }), drainTimeoutMs: s.drainTimeoutMs,
      checks: checksByService[serviceName] ?? defaultChecks(s.health),
      database: s.database === undefined ? undefined : resolveDatabase(project, name, serviceName, s.database),
      releaseName: s.releaseName ?? data.releaseName ?? DEFAULT_RELEASE_NAME,
      configFiles: Object.freeze(s.configFiles.map((f) => Object.freeze({ ...f }))),
      ...(data.hooks || s.hooks ? { hooks: resolveHooks(data.hooks, s.hooks, serviceName) } : {}),
      rollout: s.rollout === undefined ? undefined : Object.freeze({ steps: Object.freeze(s.rollout.steps.map((st) => Object.freeze({ weight: st.weight, holdMs: st.holdMs, ...(st.pause ? { pause: true, pauseDeadlineMs: st.pauseDeadlineMs } : {}) }))), gates: Object.freeze({ ...s.rollout.gates }) }),
    });
  }
  return Object.freeze({
    name, file, from: data.from, fromLine,
    source: data.source === undefined ? undefined : resolveSource(project, data.source),
    hosts: Object.freeze(hosts), loadBalancers: Object.freeze(loadBalancers), services: Object.freeze(services),
    parallel: data.serial ? 1 : data.parallel, keepReleases: data.keepReleases,
    notify: data.notify === undefined ? undefined : Object.freeze({
      webhook: data.notify.webhook, events: Object.freeze([...new Set(data.notify.events)]), timeoutMs: data.notify.timeoutMs,
      email: data.notify.email === undefined ? undefined : resolveEmail(project, data.notify.email),
    }),
    ...(data.vars ? { vars: Object.freeze(varsOf(data.vars)) } : {}),
    state: data.state === undefined ? undefined : resolveState(data.state),
  });
}

/** `vars:` as text: a YAML number or boolean is written as it reads (0, true). */
function varsOf(v: Record<string, string | number | boolean> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(v ?? {}).map(([k, x]) => [k, String(x)]));
}

/** The stage's hooks at each point, then the service's own: a service adds to what the stage declares. */
function resolveHooks(stage: ProfileData['hooks'], service: ProfileData['hooks'], serviceName: string): Hooks {
  const out: Partial<Record<HookPoint, Hook[]>> = {};
  for (const [point, list] of [...Object.entries(stage ?? {}).map(([p, l]) => [p, l, 'stage'] as const), ...Object.entries(service ?? {}).map(([p, l]) => [p, l, serviceName] as const)].map(([p, l, from]) => [p, (l ?? []).map((h) => Object.freeze({ ...h, from }))] as const)) {
    (out[point as HookPoint] ??= []).push(...list);
  }
  return Object.freeze(out);
}

function resolveEmail(project: Project, e: NonNullable<NonNullable<ProfileData['notify']>['email']>): EmailNotify {
  return Object.freeze({
    to: Object.freeze([...e.to]), from: e.from, timeoutMs: e.timeoutMs,
    smtp: Object.freeze({
      host: e.smtp.host, port: e.smtp.port, starttls: e.smtp.starttls, user: e.smtp.user,
      password: e.smtp.passwordEnv === undefined ? undefined : new Secret(process.env[e.smtp.passwordEnv] ?? '', `environment variable ${e.smtp.passwordEnv}`),
      caFile: e.smtp.caFile === undefined ? undefined : resolveLocalPath(project, e.smtp.caFile),
    }),
  });
}

/** The schema made sure the URL has a user, a host and a database, and no password. */
function resolveState(s: StateData): StateBackendConfig {
  const u = new URL(s.postgres);
  const port = u.port === '' ? 5432 : Number(u.port);
  const user = decodeURIComponent(u.username);
  const database = decodeURIComponent(u.pathname.slice(1));
  return Object.freeze({
    kind: 'postgres', url: `postgres://${user}@${u.hostname}:${port}/${database}`, host: u.hostname, port, user, database,
    password: s.passwordEnv === undefined ? undefined : new Secret(process.env[s.passwordEnv] ?? '', `environment variable ${s.passwordEnv}`),
  });
}

/** The cross-checks made sure that exactly one of path and git (with a ref) is given. */
function resolveSource(project: Project, s: SourceData): CodeSource {
  if (s.git !== undefined) {
    // A file:// URL names a repository on this machine like its path does.
    const repo = s.git.startsWith('file://') ? decodeURIComponent(s.git.slice('file://'.length)) : s.git;
    return Object.freeze({ kind: 'git', repo: resolveLocalPath(project, repo), ref: s.ref! });
  }
  return Object.freeze({ kind: 'path', path: resolveLocalPath(project, s.path!) });
}

/** Settings that name the environment: checked here, before any connection, rather than failing later. */
function checkEnvironment(data: ProfileData): Array<{ path: string; message: string }> {
  const stateEnv = data.state?.passwordEnv;
  return [...Object.entries(data.services).flatMap(([name, s]) => {
    const env = s.database?.passwordEnv;
    return env !== undefined && process.env[env] === undefined
      ? [{ path: `services.${name}.database.passwordEnv`, message: `environment variable ${env} is not set (it should hold the database password)` }]
      : [];
  }), ...(data.notify?.email?.smtp.passwordEnv !== undefined && process.env[data.notify.email.smtp.passwordEnv] === undefined
    ? [{ path: 'notify.email.smtp.passwordEnv', message: `environment variable ${data.notify.email.smtp.passwordEnv} is not set (it should hold the SMTP password)` }]
    : []), ...(stateEnv !== undefined && process.env[stateEnv] === undefined
    ? [{ path: 'state.passwordEnv', message: `environment variable ${stateEnv} is not set (it should hold the state store's password)` }]
    : [])];
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
      throw new ConfigError([{ file: prev.file, path: 'from', message: `circular "from:" chain: ${[...seen, next].join(' -> ')}`, line: prev.fromLine }]);
    }
    seen.add(next);
    const current: Stage = await loadProfile(project, next).catch(async (err: unknown) => {
      const prev = chain[chain.length - 1];
      if (prev && err instanceof ConfigError && err.issues.some((i) => i.message.startsWith('no such profile'))) {
        throw new ConfigError([{ file: prev.file, path: 'from', message: `unknown stage "${next}" (${profileFile(next!)} does not exist)`, line: prev.fromLine }]);
      }
      throw err;
    });
    chain.push(current);
    next = current.from;
  }
  const issues = checkSameStateStore(chain);
  if (issues.length > 0) throw new ConfigError(issues);
  return chain;
}
