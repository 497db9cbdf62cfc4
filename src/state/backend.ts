/*
 * Where a stage's recorded state, history, journal and lock live. Commands open the backend of their
 * stage with openState() and never know which one they have: the local state directory (the default)
 * or PostgreSQL (`state: { postgres: ... }`, shared by a team). close() ends its connections; every
 * command calls it in `finally`, so no pool keeps the process alive.
 */
import type { Project, Stage } from '../config/model.js';
import { FileJournalStore, type JournalStore } from './journal.js';
import { FileLockStore, type LockStore } from './lock.js';
import { StateDb } from './postgres/db.js';
import { PgJournalStore } from './postgres/journal.js';
import { PgLockStore } from './postgres/lock.js';
import { PgStateStore } from './postgres/store.js';
import { FileStateStore, type StateStore } from './store.js';
import { FileRolloutControl, type RolloutControl } from './rollout-control.js';
import { PgRolloutControl } from './postgres/rollout-control.js';

export interface StateBackend {
  /** Where, as people read it: "local directory /p/.updateserver" or "PostgreSQL postgres://u@h:5432/db". */
  readonly where: string;
  readonly store: StateStore;
  readonly locks: LockStore;
  readonly journals: JournalStore;
  /** A rollout's progress and the continue/abort requests of its pauses (issue 20). */
  readonly rollouts: RolloutControl;
  close(): Promise<void>;
}

export function fileBackend(stateDir: string): StateBackend {
  return {
    where: `local directory ${stateDir}`,
    store: new FileStateStore(stateDir), locks: new FileLockStore(stateDir), journals: new FileJournalStore(stateDir), rollouts: new FileRolloutControl(stateDir),
    close: () => Promise.resolve(),
  };
}

export function postgresBackend(db: StateDb): StateBackend {
  return {
    where: `PostgreSQL ${db.config.url}`,
    store: new PgStateStore(db), locks: new PgLockStore(db), journals: new PgJournalStore(db), rollouts: new PgRolloutControl(db),
    close: () => db.close(),
  };
}

/** The state backend the stage's profile names. Connects to nothing until first used. */
export function openState(project: Project, stage: Stage): StateBackend {
  return stage.state ? postgresBackend(new StateDb(stage.state)) : fileBackend(project.stateDir);
}

/** Runs fn with the stage's state backend and closes it afterwards, whatever happens. */
export async function withState<T>(project: Project, stage: Stage, fn: (state: StateBackend) => Promise<T>): Promise<T> {
  const state = openState(project, stage);
  try { return await fn(state); } finally { await state.close(); }
}
