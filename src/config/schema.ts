import { z } from 'zod';

/*
 * The profile format, one schema for the validator and (later) the JSON Schema that editors use.
 * Names and paths that end up inside shell commands or HAProxy configuration lines are limited to
 * characters that need no quoting anywhere, so that no profile can smuggle a metacharacter in.
 */

export const NAME_PATTERN = /^[a-z][a-z0-9_-]{0,39}$/;
const NAME_HINT = 'expected a name of lowercase letters, digits, "-" or "_", starting with a letter (at most 40)';
export const PATH_PATTERN = /^\/[A-Za-z0-9._/-]*$/;
const PATH_HINT = 'expected an absolute path of letters, digits, ".", "_", "-" and "/"';
const USER_PATTERN = /^[a-z_][a-z0-9_-]{0,31}$/;
const HOST_ADDRESS_PATTERN = /^[A-Za-z0-9.:-]+$/;
const HTTP_PATH_PATTERN = /^\/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$/;

export const name = () => z.string({ error: NAME_HINT }).regex(NAME_PATTERN, { error: NAME_HINT });
const remotePath = () => z.string({ error: PATH_HINT }).regex(PATH_PATTERN, { error: PATH_HINT });
/** A path on the orchestrator's machine: relative paths are resolved against the project directory. */
const localPath = () => z.string({ error: 'expected a file path' }).min(1, { error: 'expected a file path' });
const port = () =>
  z.int({ error: 'expected an integer 1-65535' })
    .min(1, { error: 'expected an integer 1-65535' })
    .max(65535, { error: 'expected an integer 1-65535' });
const millis = (max: number) =>
  z.int({ error: `expected a duration in milliseconds (integer 0-${max})` })
    .min(0, { error: `expected a duration in milliseconds (integer 0-${max})` })
    .max(max, { error: `expected a duration in milliseconds (integer 0-${max})` });
const command = () =>
  z.string({ error: 'expected a shell command' })
    .min(1, { error: 'expected a shell command' })
    .refine((s) => !s.includes('\n'), { error: 'expected a single-line shell command' });

export const sshSettings = z.strictObject({
  user: z.string().regex(USER_PATTERN, { error: 'expected a user name of lowercase letters, digits, "-" or "_"' }).optional(),
  port: port().optional(),
  /** Private key file. Without one, the ssh-agent at SSH_AUTH_SOCK is used. */
  key: localPath().optional(),
  knownHosts: localPath().optional(),
  connectTimeoutMs: millis(120_000).optional(),
  commandTimeoutMs: millis(3_600_000).optional(),
});

export const host = z.strictObject({
  address: z.string({ error: 'expected a host name or IP address' })
    .regex(HOST_ADDRESS_PATTERN, { error: 'expected a host name or IP address' }),
  user: sshSettings.shape.user,
  port: port().optional(),
  key: localPath().optional(),
});

export const loadBalancer = z.strictObject({
  /** HAProxy runtime API socket (a UNIX socket, stats socket ... level admin). */
  socket: localPath(),
  /** The map file that says which backend serves each service; rewritten after each switch. */
  mapFile: localPath(),
  /** When set, socket and mapFile are on that host and are reached through its SSH connection. */
  host: name().optional(),
  /** Address the services' frontends listen on (each service's `listen` port). */
  address: z.string({ error: 'expected an IP address or host name' })
    .regex(HOST_ADDRESS_PATTERN, { error: 'expected an IP address or host name' }).default('127.0.0.1'),
  timeoutMs: millis(60_000).optional(),
});

export const slot = z.strictObject({
  port: port(),
  /** The slot's pointer: a symlink to the release it runs. Defaults to {root}/{slot}. */
  dir: remotePath().optional(),
});

export const httpCheck = z.strictObject({
  path: z.string().regex(HTTP_PATH_PATTERN, { error: 'expected a URL path starting with "/"' }).default('/health'),
  expectStatus: z.array(z.int().min(100).max(599)).min(1).default([200]),
  attemptTimeoutMs: millis(60_000).default(1000),
  intervalMs: millis(60_000).default(100),
  deadlineMs: millis(600_000).default(15_000),
});

/** Where a stage's databases of a service live, and how the idle slot's data is made. */
export const database = z.strictObject({
  engine: z.enum(['postgres', 'mysql'], { error: 'expected postgres or mysql' }),
  /**
   * copy: a snapshot of the previous stage's live slot database; copy-self: of this stage's live slot
   * database, under a read-only freeze; shared: both slots use one database; none: no data step.
   */
  strategy: z.enum(['copy', 'copy-self', 'shared', 'none'], { error: 'expected copy, copy-self, shared or none' }).default('copy'),
  host: z.string().regex(HOST_ADDRESS_PATTERN, { error: 'expected a host name or IP address' }).default('127.0.0.1'),
  port: port().optional(),
  user: z.string().regex(/^[A-Za-z0-9_.-]{1,63}$/, { error: 'expected a database user name' }).optional(),
  /** Name of the environment variable holding the password (never the password itself). */
  passwordEnv: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, { error: 'expected an environment variable name such as PG_PROD_PASSWORD' }).optional(),
  /** Database name per slot; default <service>_<stage>_<slot>. With strategy shared, slot a's name serves both. */
  names: z.strictObject({ a: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, { error: 'expected a database name of lowercase letters, digits and _' }), b: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, { error: 'expected a database name of lowercase letters, digits and _' }) }).optional(),
  /** Directory of versioned migrations, relative to the project; default migrations/<service>. */
  migrations: localPath().optional(),
  /** pg_restore / pg_dump parallel jobs for large databases. */
  jobs: z.int().min(1).max(64).default(1),
  /**
   * PostgreSQL, source and target on one server: CREATE DATABASE ... TEMPLATE instead of a dump.
   * auto: only when nobody else is connected to the source; template: end the source's other
   * sessions for the copy (the operator accepts it); off: always pg_dump | pg_restore.
   */
  fastPath: z.enum(['auto', 'template', 'off'], { error: 'expected auto, template or off' }).default('auto'),
  /** `updateserver refresh <this stage> --from <later stage>`: what to change in the copy of the later stage's data. */
  refresh: z.strictObject({
    /** SQL run on the refreshed copy, in order, in one transaction on PostgreSQL (e.g. UPDATE users SET email = ...). */
    after: z.array(z.string().trim().min(1, { error: 'expected an SQL statement' }), { error: 'expected a list of SQL statements' }).default([]),
  }).default({ after: [] }),
});

export const service = z.strictObject({
  hosts: z.array(name(), { error: 'expected a list of host names' }).min(1, { error: 'expected at least one host' }),
  /** Service root on each host: releases/ and run/ live here. */
  root: remotePath(),
  /** Port of the service's frontend on every load balancer: where clients send requests. */
  listen: port(),
  slots: z.strictObject({ a: slot, b: slot }, { error: 'expected slots a and b' }),
  /** The app's foreground command; the tool runs it detached in the slot directory. Placeholders: {slot} {port} {dir} {release} {stage} {host} {address} {service}. */
  start: command(),
  /** Run once in each new release directory on each host after it is copied and verified (e.g. npm ci --omit=dev); its own environment per release. */
  build: command().optional(),
  /** Optional command that stops the slot; by default the started process gets TERM, then KILL after stopTimeoutMs. */
  stop: command().optional(),
  stopTimeoutMs: millis(600_000).default(10_000),
  /** Files (relative to the source) left out of the copy, in rsync --exclude syntax. */
  exclude: z.array(z.string().regex(/^[A-Za-z0-9._*?/-]+$/, { error: 'expected an rsync pattern of letters, digits and . _ * ? / -' })).default([]),
  database: database.optional(),
  /** Name of healthchecks/<name>.yaml with pre, post and watch checks; without it, `health` is the only check. */
  checks: name().optional(),
  health: httpCheck.default({ path: '/health', expectStatus: [200], attemptTimeoutMs: 1000, intervalMs: 100, deadlineMs: 15_000 }),
  drainTimeoutMs: millis(3_600_000).default(30_000),
});

export const source = z.strictObject({
  /** A local directory holding the code, relative to the project directory. */
  path: localPath(),
});

export const profile = z.strictObject({
  from: name().optional(),
  source: source.optional(),
  ssh: sshSettings.default({}),
  hosts: z.record(name(), host, { error: 'expected a map of host name to host' }),
  loadBalancers: z.record(name(), loadBalancer).default({}),
  services: z.record(name(), service, { error: 'expected a map of service name to service' }),
  /** Hosts worked on at once; 1 updates each machine in turn. */
  parallel: z.int().min(1).max(256).default(16),
  /** true: one host at a time, whatever `parallel` says (seed 001: "each machine updated sequentially"). */
  serial: z.boolean().default(false),
  /** Releases kept per service on each host (never the release of either slot). */
  keepReleases: z.int().min(2).max(100).default(5),
});

export type ProfileInput = z.input<typeof profile>;
export type ProfileData = z.output<typeof profile>;
export type ServiceData = z.output<typeof service>;
export type HostData = z.output<typeof host>;
export type LoadBalancerData = z.output<typeof loadBalancer>;
export type HttpCheckData = z.output<typeof httpCheck>;
export type DatabaseData = z.output<typeof database>;
