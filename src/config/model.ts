/*
 * The validated, resolved configuration that the rest of the tool works from. Everything a later
 * layer needs is filled in here (defaults applied, host settings merged, slot directories and backend
 * names derived), so no other module reads raw profile data.
 */
import type { HttpCheckData } from './schema.js';
import type { HealthChecks } from './healthchecks.js';
import type { Secret } from './secret.js';
import type { Rollout } from '../rollout/profile.js';

import type { SlotName } from './slot.js';
// The slot vocabulary lives in slot.ts; re-exported here for the modules that take the model whole.
export { type SlotName, SLOTS, otherSlot, backendName } from './slot.js';

export interface Host {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly user: string;
  /** Absolute path of the private key; undefined means ssh-agent. */
  readonly key: string | undefined;
  readonly knownHosts: string;
  readonly connectTimeoutMs: number;
  readonly commandTimeoutMs: number;
  /** The stage's `vars:` with this host's own over them (issue 19). */
  readonly vars?: Readonly<Record<string, string>>;
}

export interface Slot {
  readonly name: SlotName;
  /** The first instance's port (instances.ts instancePort gives every instance's). */
  readonly port: number;
  /** Ports listed in the profile, one per instance; absent: derived from `port`. */
  readonly ports?: readonly number[];
  readonly dir: string;
  /** HAProxy backend that holds this slot's servers. */
  readonly backend: string;
}

export interface Service {
  readonly name: string;
  readonly hosts: readonly string[];
  readonly root: string;
  /** Frontend port on every load balancer; undefined: no frontend, never in HAProxy (a worker, a directly reached server). */
  readonly listen: number | undefined;
  readonly mode: 'http' | 'tcp';
  /** Instances per host name (every host of the service has an entry, at least 1). */
  readonly instances: Readonly<Record<string, number>>;
  /** Services started and checked before this one; its commands may name their slot's servers ({zeo.address}). */
  readonly after: readonly string[];
  /** The slots' data directories (relative to {root}/files/<slot>) and how the idle slot's copy is made. */
  readonly files: Files | undefined;
  /** Directories under {root}/shared linked into every release. */
  readonly shared: readonly string[];
  /** Whether {root}/current follows the live slot's release on every host. */
  readonly currentLink: boolean;
  readonly slots: Readonly<Record<SlotName, Slot>>;
  readonly start: string;
  readonly build: string | undefined;
  readonly stop: string | undefined;
  readonly stopTimeoutMs: number;
  readonly exclude: readonly string[];
  readonly health: Readonly<HttpCheckData>;
  /** The checks by phase: from healthchecks/<checks>.yaml, or derived from `health`. */
  readonly checks: HealthChecks;
  readonly database: Database | undefined;
  readonly drainTimeoutMs: number;
  /** Release name template (first stage): the service's, else the stage's, else the default. */
  readonly releaseName: string;
  /** Rendered for each slot from templates in the release; template and path are relative. */
  readonly configFiles: ReadonlyArray<Readonly<{ template: string; path: string }>>;
  /** The stage's hooks at each point, then the service's own (issue 19). */
  readonly hooks?: Hooks;
  /** Progressive rollout steps and gates (src/rollout/profile.ts); undefined: the switch moves all at once. */
  readonly rollout?: Rollout | undefined;
}

/** Issue 19: commands at named points of a run (src/plan/hooks.ts puts them in the plan). */
export type HookPoint = 'before-copy' | 'after-copy' | 'before-start' | 'after-start' | 'before-switch' | 'after-switch' | 'after-drain' | 'after-rollback' | 'failed' | 'finished';
export interface Hook {
  readonly run: string;
  readonly on: 'local' | 'hosts' | 'one-host';
  readonly timeoutMs: number;
  readonly critical: boolean;
  /** Where it was declared: "stage" or the service's name, for the plan's titles. */
  readonly from: string;
}
export type Hooks = Readonly<Partial<Record<HookPoint, readonly Hook[]>>>;
export interface Files {
  readonly paths: readonly string[];
  readonly strategy: 'copy' | 'copy-self' | 'none';
  readonly command: string | undefined;
}

/** Where the first stage's code comes from. */
export type CodeSource =
  | { readonly kind: 'path'; readonly path: string }
  /** A git repository on this machine (absolute path) and the ref to release. */
  | { readonly kind: 'git'; readonly repo: string; readonly ref: string };

export type DatabaseEngine = 'postgres' | 'mysql';

/** A service's databases in one stage: one per slot (or one shared), on one server. */
export interface Database {
  readonly engine: DatabaseEngine;
  readonly strategy: 'copy' | 'copy-self' | 'shared' | 'none';
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: Secret | undefined;
  /** Database name per slot; equal for strategy shared. */
  readonly names: Readonly<Record<SlotName, string>>;
  /** Absolute path of the service's migrations directory. */
  readonly migrations: string;
  readonly jobs: number;
  /** PostgreSQL's CREATE DATABASE ... TEMPLATE fast path (src/data/template.ts). */
  readonly fastPath: 'auto' | 'template' | 'off';
  /** SQL run on this stage's copy of a later stage's data after `updateserver refresh`. */
  readonly refreshAfter: readonly string[];
}

/** What it takes to open one database. */
export interface DatabaseConnection {
  readonly engine: DatabaseEngine;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: Secret | undefined;
  readonly database: string;
}

export const connectionOf = (db: Database, slot: SlotName): DatabaseConnection => ({
  engine: db.engine, host: db.host, port: db.port, user: db.user, password: db.password, database: db.names[slot],
});

export interface LoadBalancer {
  readonly name: string;
  /** Absolute path of the runtime API socket. */
  readonly socket: string;
  readonly mapFile: string;
  readonly host: string | undefined;
  /** Where the service frontends listen: http://{address}:{service.listen}/ */
  readonly address: string;
  readonly timeoutMs: number;
}

export interface Stage {
  readonly name: string;
  /** The profile file, as the user would name it (relative to the project directory). */
  readonly file: string;
  readonly from: string | undefined;
  /** Line of `from:` in the file, for errors about the stage it names. */
  readonly fromLine?: number | undefined;
  /** The first stage's code (local paths absolute); undefined for a stage with `from`. */
  readonly source: CodeSource | undefined;
  readonly hosts: Readonly<Record<string, Host>>;
  readonly loadBalancers: Readonly<Record<string, LoadBalancer>>;
  readonly services: Readonly<Record<string, Service>>;
  readonly parallel: number;
  readonly keepReleases: number;
  /** Webhook told of started / switched / rolled-back / failed runs. */
  readonly notify?: Notify | undefined;
  /** Team state in PostgreSQL; undefined: the local state directory. */
  readonly state?: StateBackendConfig | undefined;
  /** The stage's `vars:` (each host's own are merged into Host.vars). */
  readonly vars?: Readonly<Record<string, string>>;
}

/**
 * Where a stage's recorded state, history, journal and lock live when not in the local state
 * directory: a PostgreSQL database shared by everyone who promotes the stage.
 */
export interface StateBackendConfig {
  readonly kind: 'postgres';
  /** postgres://user@host:port/database: never holds the password, so it may be printed. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly database: string;
  readonly password: Secret | undefined;
}

export type NotifyEvent = 'started' | 'switched' | 'rolled-back' | 'failed';
export interface Notify {
  readonly webhook: string | undefined;
  readonly events: readonly NotifyEvent[];
  readonly timeoutMs: number;
  /** The release mail (issue 19, src/notify/email.ts). */
  readonly email?: EmailNotify | undefined;
}
export interface EmailNotify {
  readonly to: readonly string[];
  readonly from: string;
  readonly smtp: {
    readonly host: string; readonly port: number; readonly starttls: boolean; readonly user: string | undefined;
    readonly password: Secret | undefined;
    /** Absolute path of a CA certificate to trust. */
    readonly caFile: string | undefined;
  };
  readonly timeoutMs: number;
}

export interface Project {
  /** Directory holding profiles/, healthchecks/, ...; relative paths in profiles resolve against it. */
  readonly dir: string;
  /** Where recorded state, history, logs and the code cache live. */
  readonly stateDir: string;
}
