/*
 * The PostgreSQL state store's connection and tables. One pool per command, created lazily (nothing
 * connects until the state is first used) and closed by StateBackend.close(). The tables live under
 * the schema `updateserver` and are created on first use, in one transaction serialised by an
 * advisory lock, so two commands starting at once against a fresh database do not trip each other.
 */
import type pg from 'pg';
import type { StateBackendConfig } from '../../config/model.js';
import { UpdateserverError, describeError } from '../../errors.js';

export const SCHEMA = 'updateserver';

/** The tables, in the order they are created; exact SQL, tested as such. */
export const CREATE_TABLES: readonly string[] = [
  `CREATE SCHEMA IF NOT EXISTS ${SCHEMA}`,
  `CREATE TABLE IF NOT EXISTS ${SCHEMA}.stage_state (stage text PRIMARY KEY, state jsonb NOT NULL, updated timestamptz NOT NULL DEFAULT now())`,
  `CREATE TABLE IF NOT EXISTS ${SCHEMA}.history (id bigserial PRIMARY KEY, stage text NOT NULL, entry jsonb NOT NULL)`,
  `CREATE INDEX IF NOT EXISTS history_stage_id ON ${SCHEMA}.history (stage, id)`,
  `CREATE TABLE IF NOT EXISTS ${SCHEMA}.journal (id bigserial PRIMARY KEY, run text NOT NULL, stage text NOT NULL, seq integer NOT NULL, entry jsonb NOT NULL, UNIQUE (run, seq))`,
  `CREATE INDEX IF NOT EXISTS journal_stage_run ON ${SCHEMA}.journal (stage, run)`,
  `CREATE TABLE IF NOT EXISTS ${SCHEMA}.locks (stage text PRIMARY KEY, holder jsonb NOT NULL)`,
  // A rollout's progress and the operators' continue/abort requests (src/state/rollout-control.ts).
  `CREATE TABLE IF NOT EXISTS ${SCHEMA}.rollout (stage text NOT NULL, kind text NOT NULL, body jsonb NOT NULL, PRIMARY KEY (stage, kind))`,
];

/** The tables' names, as CREATE_TABLES creates them. */
export const STATE_TABLES: readonly string[] = CREATE_TABLES.flatMap((s) => /^CREATE TABLE IF NOT EXISTS \w+\.(\w+)/.exec(s)?.[1] ?? []);

/** Serialises the table creation of commands starting at once (a constant key of our own). */
const CREATE_KEY = "hashtextextended('updateserver.create-tables', 0)";

/** The advisory lock key of a stage's lock: a 64-bit hash of its name, computed by the server. */
export const LOCK_KEY = "hashtextextended('updateserver.lock.' || $1, 0)";

export const clientConfig = (c: StateBackendConfig): pg.ClientConfig => ({
  host: c.host, port: c.port, user: c.user, database: c.database,
  ...(c.password ? { password: c.password.reveal() } : {}),
  connectionTimeoutMillis: 10_000, application_name: 'updateserver',
});

/** A failure of the state store, named by its URL (which never holds the password) with the fix. */
export function stateStoreError(c: StateBackendConfig, err: unknown): UpdateserverError {
  if (err instanceof UpdateserverError) return err;
  return new UpdateserverError(`state store ${c.url}: ${describeError(err)}`, { cause: err, hint: stateStoreFix(c, err) });
}

/** What to do about a failure to reach or use the state store. */
export function stateStoreFix(c: StateBackendConfig, err: unknown): string {
  const code = (err as { code?: string }).code;
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH' || code === 'ETIMEDOUT' || /timeout/i.test(describeError(err))) {
    return `start PostgreSQL on ${c.host}:${c.port} or fix the host and port in the profile's state.postgres`;
  }
  if (code === '28P01' || code === '28000') return `check the user ${c.user} and its password (state.passwordEnv) and pg_hba.conf on ${c.host}`;
  if (code === '3D000') return `create the database: createdb -h ${c.host} -p ${c.port} -U ${c.user} ${c.database}`;
  if (code === '42501') return `let ${c.user} create the tables: GRANT CREATE ON DATABASE ${c.database} TO ${c.user}; or, once they exist, ${grantFix(c.user)}`;
  return 'check the state store named in the profile\'s state.postgres';
}

/** The rights a user needs on tables that exist. */
export const grantFix = (user: string) =>
  `GRANT USAGE ON SCHEMA ${SCHEMA} TO ${user}; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${SCHEMA} TO ${user}; GRANT USAGE ON ALL SEQUENCES IN SCHEMA ${SCHEMA} TO ${user}`;

/**
 * pg is loaded when a stage keeps its state in PostgreSQL, not when the command starts: the others
 * never pay for it (about 30 ms of a promotion's start-up; issue 17).
 */
let driver: Promise<typeof pg> | undefined;
const loadPg = (): Promise<typeof pg> => (driver ??= import('pg').then((m) => m.default));

export class StateDb {
  private pool: pg.Pool | undefined;
  private ready: Promise<void> | undefined;
  constructor(readonly config: StateBackendConfig) {}

  private async getPool(): Promise<pg.Pool> {
    const { Pool } = await loadPg();
    if (!this.pool) {
      this.pool = new Pool({ ...clientConfig(this.config), max: 4 });
      // An idle client losing its connection must not crash the command; the next query reports it.
      this.pool.on('error', () => {});
    }
    return this.pool;
  }

  /** Creates the tables once per command, before the first query. */
  tables(): Promise<void> {
    this.ready ??= this.createTables().catch((err: unknown) => { this.ready = undefined; throw stateStoreError(this.config, err); });
    return this.ready;
  }

  private async createTables(): Promise<void> {
    const client = await (await this.getPool()).connect();
    try {
      // Once they exist, a user with only the right to read and write them is enough: CREATE ... IF NOT
      // EXISTS would still ask for the right to create.
      const found = await client.query<{ n: string }>(`SELECT count(to_regclass($1 || '.' || t)) AS n FROM unnest($2::text[]) t`, [SCHEMA, [...STATE_TABLES]]);
      if (Number(found.rows[0]!.n) === STATE_TABLES.length) return;
      await client.query('BEGIN');
      await client.query(`SELECT pg_advisory_xact_lock(${CREATE_KEY})`);
      for (const sql of CREATE_TABLES) await client.query(sql);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  async query<R extends pg.QueryResultRow = Record<string, unknown>>(text: string, values: unknown[] = []): Promise<pg.QueryResult<R>> {
    await this.tables();
    try {
      return await (await this.getPool()).query<R>(text, values);
    } catch (err) {
      throw stateStoreError(this.config, err);
    }
  }

  /** A client of the pool, for work that must stay on one session (a lock tried and released). */
  async withClient<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    await this.tables();
    const client = await (await this.getPool()).connect().catch((err: unknown) => { throw stateStoreError(this.config, err); });
    try { return await fn(client); } finally { client.release(); }
  }

  /** A connection of its own, outside the pool: the session that holds a running command's lock. */
  async dedicated(): Promise<pg.Client> {
    await this.tables();
    const client = new (await loadPg()).Client(clientConfig(this.config));
    client.on('error', () => {});
    try { await client.connect(); } catch (err) { throw stateStoreError(this.config, err); }
    return client;
  }

  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    this.ready = undefined;
    await pool?.end();
  }
}
