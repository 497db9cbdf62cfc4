/*
 * A plan is plain data: every step a run will take, with its host and the exact command, rsync argv,
 * URL or HAProxy runtime line. A dry run prints it; a real run executes that very object. Phases run
 * in order; the items of a phase run concurrently (bounded by the profile's `parallel`), and the
 * actions of one item run in order.
 */
import type { DatabaseConnection, HookPoint, SlotName } from '../config/model.js';
import type { CheckPhase, CheckSpec } from '../config/healthchecks.js';
import type { SlotContext } from '../commands/placeholders.js';
import type { PendingMigration } from '../data/migrations/steps.js';
import type { RelayRoute } from '../commands/relay.js';
import type { Rollout, RolloutGates } from '../rollout/profile.js';

/** Where a check runs, as plain data; the host's connection is looked up when it runs. */
export interface CheckTargetSpec {
  label: string;
  host: string;
  address: string;
  port: number;
  slot: SlotName;
  release: string;
  /** Set for checks that run on a host over SSH (command). */
  sshHost?: string;
  context?: SlotContext;
  /** A command check's command with its placeholders filled in: exactly what runs on sshHost. */
  command?: string;
  /** Set for sql checks: the database of the slot checked. */
  database?: DatabaseConnection;
}

export const PLAN_VERSION = 1;

/** Every command that changes something is one of these, and builds a plan (src/run/run.ts runs it). */
export type PlanVerb = 'promote' | 'flip' | 'rollback' | 'maintenance' | 'purge' | 'refresh';

export type Action =
  /**
   * A shell command on a host over its SSH connection. `undo` is what stops what it started, run
   * when the promotion fails before the switch (starting the idle slot: stopping it again).
   */
  | {
    kind: 'exec'; host: string; command: string; title: string; undo?: { command: string; title: string };
    /**
     * Its output is a report the run keeps (ApplyContext.outputs): `files-left`, the files added, changed
     * and removed in a slot's `files:` data since its switch (commands/files-manifest.ts compareManifest).
     */
    output?: { kind: 'files-left'; service: string; slot: SlotName };
  }
  /**
   * A program run on the orchestrator's machine (rsync relaying code), argv without a shell: exactly
   * this argv runs. `route` tunnel: rsync's remote shell reaches the host over the run's SSH connection,
   * found through the environment apply gives it (commands/relay.ts); the argv holds no secret.
   */
  | { kind: 'local'; argv: string[]; title: string; host?: string; route?: RelayRoute }
  /** One health check against one target: a host's idle slot (pre) or a load balancer's frontend (post, watch). */
  | { kind: 'check'; phase: CheckPhase; service: string; check: CheckSpec; target: CheckTargetSpec; title: string }
  /** Repeats the watch checks through the load balancers for a window; a failure rolls back. */
  | { kind: 'watch'; windowMs: number; intervalMs: number; probes: Array<Extract<Action, { kind: 'check' }>>; title: string }
  /** Mark servers up at once (they have just passed our own checks) instead of waiting for HAProxy's next check. */
  | { kind: 'server-health'; loadBalancer: string; backend: string; servers: string[]; health: 'up' | 'down'; title: string }
  /** Point a service's map entry at a backend: the switch itself. */
  | { kind: 'set-map'; loadBalancer: string; file: string; entries: Record<string, string>; title: string }
  /** Read the map back and compare. */
  | { kind: 'verify-map'; loadBalancer: string; file: string; expected: Record<string, string>; title: string }
  /** Wait until the backends have no sessions left (or the deadline passes). */
  | { kind: 'drain'; loadBalancer: string; servers: Record<string, string[]>; deadlineMs: number; title: string }
  /** After a write freeze: wait until no request accepted before it is in flight on these backends; fail at the deadline. */
  | { kind: 'settle'; loadBalancer: string; backends: string[]; deadlineMs: number; title: string }
  /** Snapshot a source database into the idle slot's database (strategies copy and copy-self). */
  | {
    kind: 'data-copy'; service: string; source: DatabaseConnection; target: DatabaseConnection; jobs: number; frozen: boolean;
    /** PostgreSQL's TEMPLATE fast path (src/data/template.ts), decided when it runs: it depends on who is connected then. */
    fastPath: 'auto' | 'template' | 'off';
    /** This stage's live slot database: never replaced, whatever else the plan says. */
    live: DatabaseConnection;
    title: string;
    /** The stage and slot the source database belongs to; its size when the plan was made (bytes). */
    from?: { stage: string; slot: SlotName }; sourceBytes?: number;
    /** What removes the change log the copy brings from its source, as sent (absent: refresh, older plans: built when it runs). */
    dropLog?: string[];
  }
  /**
   * Apply pending migrations to a slot's database under the version table's rules. `copiedFrom`: the
   * database was just copied from there and will be copied afresh at the next promotion, so a failure
   * here is fixed in the migration file (or in the source's data), never repaired in this copy.
   */
  | {
    kind: 'migrate'; service: string; stage: string; slot: SlotName; connection: DatabaseConnection; migrations: string; pending: PendingMigration[]; title: string;
    copiedFrom?: { stage: string; slot: SlotName; database: string };
    /** Strategy shared: both slots use this database, so nothing is left behind by a rollback. */
    shared?: boolean;
    /**
     * Every statement that changes the database, as plan text (absent in plans made before): first
     * `createDatabase` on the server's admin database (a first stage's slot without its database), then
     * `versionTable` (the database has no version table yet), then per pending migration its begin row,
     * its statements and its ok row (PendingMigration), the rows' values known now taken from here.
     * Under its lock the run checks that the database still needs exactly `pending`, else changes nothing.
     */
    appliedBy?: string;
    createDatabase?: string;
    versionTable?: string;
  }
  /**
   * SQL statements run on one database, in order, on one session: in one transaction when
   * `transaction` (PostgreSQL: all or nothing), else each committed as it runs (MySQL commits DDL by itself).
   */
  | { kind: 'sql'; service: string; connection: DatabaseConnection; statements: readonly string[]; transaction: boolean; title: string; hint?: string }
  /**
   * The release of the previous stage into this machine's relay cache: with `fetch`, the pull exactly as
   * shown (its file list written first from the source host's manifest, read in the read phase and
   * identified here by its hash), then every file checked against that manifest; without, the cached
   * copy already matches the manifest and is only marked used. Either way the cache is pruned.
   */
  | { kind: 'pull'; service: string; from: string; release: string; cacheDir: string; manifestHash: string; fetch?: NonNullable<ServicePlan['fetch']>; title: string }
  /**
   * Install the change log on the idle slot's copy, after its migrations and before it takes traffic
   * (copy, copy-self): a trigger on every table appends each row change, so a rollback reports exactly
   * what was written to the slot it leaves (src/data/changes/).
   */
  | {
    kind: 'change-log'; service: string; connection: DatabaseConnection; title: string;
    /**
     * Exactly what the install sends, in one transaction (PostgreSQL: one statement that finds the
     * tables as they are after the migrations, so the plan can hold its text). Absent (MySQL, whose
     * triggers spell out the columns of the tables found then; plans made before): built when it runs.
     */
    statements?: string[];
  }
  /**
   * After traffic left a slot (a flip or rollback; the automatic rollback's failure path): read what
   * users wrote to each service's database of the slot left since it went live (its change log), write
   * the report under the state directory (what `replay` reads), then leave `mark` in each log read, so
   * the next report of that database starts after it. The mark is the only write, sent as this text
   * with two values only the report knows (the last change read, the run id); not sent when the
   * database has no change log (promoted before it existed) or the report file could not be written.
   * Its failures are lines of the report, never the run's (src/promote/left-writes.ts).
   */
  | {
    kind: 'report-changes'; action: string; title: string;
    /** An automatic rollback: the new slot (target) is the one left; else the slot that was live. */
    newSlotLeft?: boolean;
    services: Array<{ service: string; left: SlotName; serving: SlotName; connection: DatabaseConnection; servingDatabase: string; mark: string }>;
    /** Services keeping files: the output of their files-left steps (run before) goes into the report. */
    files?: Array<{ service: string; live: SlotName; target: SlotName; hosts: string[] }>;
  }
  /** Rewrite the load balancer's map file so a reload or restart keeps the new slots live. */
  | { kind: 'persist-map'; loadBalancer: string; file: string; title: string }
  /**
   * The undo of a switch (failure paths only): set each service's map entry back, read the map back
   * whether or not that was refused (a load balancer that never moved may refuse and yet be right), and
   * rewrite the map file from the runtime map.
   */
  | { kind: 'revert-map'; loadBalancer: string; file: string; entries: Record<string, string>; title: string }
  /** Failure paths only: wait (up to the deadline) for the requests the new slot received, before it is stopped. */
  | { kind: 'drain-new'; loadBalancer: string; backends: string[]; deadlineMs: number; title: string }
  /**
   * A hook of the profile (issue 19, src/plan/hooks.ts): `line` is exactly what runs, on `host` over its
   * SSH connection or (no host) by bash on this machine, once the facts known only when it runs (the
   * run id; for failed/finished the result) are put in front as `runtime` names them. `failure`: what
   * its failing does: stop the run (before the switch), roll back (after-switch, critical) or warn.
   */
  | {
    kind: 'hook'; point: HookPoint; service: string; host?: string; run: string; env: Record<string, string>; runtime: string[];
    line: string; timeoutMs: number; failure: 'stop' | 'rollback' | 'warn'; title: string;
  }
  /**
   * One step of a progressive rollout (src/rollout/): with the share already set, hold for holdMs, then
   * judge the new slot's backend against the old one's over that window from every load balancer's
   * `show stat`; with too few requests wait up to deadlineMs, then judge as gates.onTooFew says. A failed
   * gate fails the step, and the rollout's failure path puts all traffic back on the old slot.
   */
  | {
    kind: 'gate'; service: string; step: number; weight: number; holdMs: number; deadlineMs: number;
    loadBalancers: string[]; oldBackend: string; newBackend: string; gates: RolloutGates; title: string;
    /** How many steps the rollout has (for status; absent in plans journalled before it was recorded). */
    steps?: number;
  }
  /**
   * A rollout step held for a person (src/rollout/pause.ts): the share stays, the run keeps the lock and
   * records the pause in the state backend, then waits for `updateserver continue <stage>` (the step
   * ends, the rollout goes on) or `updateserver abort <stage>` (fails like a failed gate), at most
   * deadlineMs, after which it fails too (all traffic back on the old slot).
   */
  | {
    kind: 'pause'; stage: string; service: string; step: number; steps: number; weight: number; deadlineMs: number;
    loadBalancers: string[]; oldBackend: string; newBackend: string; gates: RolloutGates; title: string;
  };

export interface PlanItem {
  /** Host or load balancer the item works on, for progress and errors. */
  target: string;
  actions: Action[];
}

export type PhaseName = 'pull' | 'freeze' | 'copy' | 'data' | 'start' | 'check' | 'rollout' | 'switch' | 'current' | 'post' | 'watch' | 'drain' | 'stop-old' | 'purge' | 'unfreeze'
  /** After a flip or rollback (and in the automatic rollback's failure path): what was written to the slot left. */
  | 'report'
  /** Phases of the failure paths only. */
  | 'revert' | 'drain-new' | 'stop-new' | 'current-back' | 'files-left'
  /** The hooks at each point (issue 19); failed and finished are in Plan.finally. */
  | HookPoint;

/**
 * What a failure in a phase means (apply/apply.ts), as plan data so that the dry run can say it:
 *   stop: live traffic was not touched; the phase's failure path runs and the run fails.
 *   switch: items run one after another; the failure path runs for the items begun, and the run fails.
 *   rollback: traffic had moved; the failure path (switch back) runs and the run fails.
 *   warn: the run has done what matters; the failure is a warning.
 *   fail: nothing to undo beyond the failure path; the run fails with the step's own error.
 */
export type PhasePolicy = 'stop' | 'switch' | 'rollback' | 'warn' | 'fail';

/**
 * A phase; start, check and stop-old appear once per tier (`after`), in the order they run (apply runs
 * the phases of one name in plan order).
 */
export interface Phase {
  name: PhaseName;
  title: string;
  items: PlanItem[];
  /** Absent in plans journalled before it existed and in promotion plans: derived from the name (apply/policy.ts). */
  policy?: PhasePolicy;
}

/**
 * What runs when a step of one of the phases `on` fails, in order (plan/failure.ts). Its steps never
 * fail the path: each failure is logged and the next step runs. After the watch there is none: the new
 * slot serves, and a failure there is a warning.
 */
export interface FailurePath {
  on: PhaseName[];
  title: string;
  phases: Phase[];
}

export interface ServicePlan {
  service: string;
  /** Slot serving traffic now, and the slot the release goes to. */
  live: SlotName;
  target: SlotName;
  release: string;
  /** Release the live slot runs now (undefined on a stage never promoted). */
  liveRelease: string | undefined;
  source: string;
  hosts: string[];
  /** What the idle slot's database will be (copied from where, kept, shared) and where its migrations run. */
  data?: string;
  /**
   * The pull that brings the release from the previous stage into the local relay cache, when the
   * cache does not hold it already: it runs in the read phase, before the plan's first phase (a dry run
   * does not run it). `filesFrom`: the file list it writes first, from the release's manifest.
   */
  fetch?: { host: string; route: RelayRoute; argv: string[]; filesFrom: string };
  /** Progressive rollout: the steps before the switch and the gates that judge them (the 'rollout' phase). */
  rollout?: Rollout;
}

export interface Plan {
  version: typeof PLAN_VERSION;
  /**
   * promote: a release from the previous stage goes into the idle slot; flip: the idle slot's own release
   * goes live; rollback: a flip back to the slot live before; maintenance: the maintenance and read-only
   * map entries; purge: old releases removed; refresh: a later stage's data into an idle slot's database.
   */
  action: PlanVerb;
  stage: string;
  from: string;
  createdAt: string;
  services: ServicePlan[];
  phases: Phase[];
  /** The map each load balancer holds after the switch. */
  liveAfter: Record<string, SlotName>;
  /** What runs when a step fails (absent in plans journalled before it existed: apply derives it). */
  onFailure?: FailurePath[];
  /**
   * What runs when the run has ended (issue 19): the `failed` phase when it failed, then `finished`
   * whatever the result. Hooks only; their failures are warnings and never change the result.
   */
  finally?: Phase[];
}
