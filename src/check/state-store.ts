/*
 * Probing the state store of a stage, read-only: PostgreSQL accepts the user, and the tables under
 * schema updateserver are there and writable, or the user may create them on first use. Nothing is
 * created here; the failure says what to change (start the server, the password, a GRANT).
 */
import pg from 'pg';
import type { Project, Stage, StateBackendConfig } from '../config/model.js';
import { describeError } from '../errors.js';
import { clientConfig, grantFix, SCHEMA, STATE_TABLES as TABLES, stateStoreFix } from '../state/postgres/db.js';
import { ok, problem, type Finding } from './finding.js';

export async function probeStateStore(project: Project, stage: Stage): Promise<Finding> {
  const c = stage.state;
  if (!c) return ok('state store', 'local', `local directory ${project.stateDir} (state: in ${stage.file} puts it in PostgreSQL for a team)`);
  const subject = `state store ${c.url}`;
  const client = new pg.Client(clientConfig(c));
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (err) {
    return problem(subject, 'connect', describeError(err), stateStoreFix(c, err));
  }
  try {
    return await probeTables(client, c, subject);
  } catch (err) {
    return problem(subject, 'query', describeError(err), stateStoreFix(c, err));
  } finally {
    await client.end().catch(() => {});
  }
}

async function probeTables(client: pg.Client, c: StateBackendConfig, subject: string): Promise<Finding> {
  // pg_class, not information_schema: the latter hides tables the user has no right on.
  const present = (await client.query<{ t: string; rw: boolean }>(
    `SELECT c.relname AS t, has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT, INSERT, UPDATE, DELETE') AS rw
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'`, [SCHEMA])).rows;
  const missing = TABLES.filter((t) => !present.some((p) => p.t === t));
  const readOnly = present.filter((p) => TABLES.includes(p.t) && !p.rw).map((p) => p.t);
  if (readOnly.length > 0) {
    return problem(subject, 'tables', `${c.user} may not read and write ${readOnly.map((t) => `${SCHEMA}.${t}`).join(', ')}`, grantFix(c.user));
  }
  if (missing.length === 0) return ok(subject, 'tables', `${SCHEMA}.{${TABLES.join(', ')}} present and writable`);
  // Missing tables are created on first use: in the schema if it exists, else with the schema itself.
  const [may] = (await client.query<{ can: boolean }>(
    `SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)
              THEN has_schema_privilege($1, 'CREATE') ELSE has_database_privilege(current_database(), 'CREATE') END AS can`, [SCHEMA])).rows;
  return may?.can
    ? ok(subject, 'tables', `${missing.join(', ')} will be created under schema ${SCHEMA} by the first command`)
    : problem(subject, 'tables', `${missing.map((t) => `${SCHEMA}.${t}`).join(', ')} do not exist and ${c.user} may not create them`,
      stateStoreFix(c, { code: '42501' }));
}
