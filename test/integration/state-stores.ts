/*
 * The two state stores under one contract (test/integration/state-contract.test.ts): a local
 * directory, and the lab's PostgreSQL in the database us_state_contract. A store is named by a
 * "kind:location" string, so that a child process (state-child.ts) opens the very same store.
 */
import type { StateBackendConfig } from '../../src/config/model.js';
import type { Plan } from '../../src/plan/plan.js';
import { PLAN_VERSION } from '../../src/plan/plan.js';
import { fileBackend, postgresBackend, type StateBackend } from '../../src/state/backend.js';
import { StateDb } from '../../src/state/postgres/db.js';

export const CONTRACT_DB = 'us_state_contract';

export const pgConfig = (database: string): StateBackendConfig => ({
  kind: 'postgres', url: `postgres://postgres@127.0.0.1:5432/${database}`, host: '127.0.0.1', port: 5432, user: 'postgres', database, password: undefined,
});

/** "local:/tmp/dir" or "postgres:us_state_contract". */
export function openStore(name: string): StateBackend {
  const [kind, location] = [name.slice(0, name.indexOf(':')), name.slice(name.indexOf(':') + 1)];
  if (kind === 'local') return fileBackend(location);
  if (kind === 'postgres') return postgresBackend(new StateDb(pgConfig(location)));
  throw new Error(`unknown store ${name}`);
}

/** A plan as the journal keeps it; its steps do not matter to the store. */
export const samplePlan = (stage: string): Plan => ({
  version: PLAN_VERSION, action: 'promote', stage, from: 'dev', createdAt: new Date().toISOString(), services: [], phases: [], liveAfter: {},
});
