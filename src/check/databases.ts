/*
 * Probing the databases of a stage, read-only: the server accepts the profile's user (connecting to
 * the server's own database, since a promotion creates the slot databases), its version, and whether
 * each slot database exists yet.
 */
import { connectionOf, SLOTS, type Stage } from '../config/model.js';
import { describeConnection } from '../data/connection.js';
import { DatabaseError, openDb } from '../data/db.js';
import { describeError } from '../errors.js';
import { ok, problem, type Finding } from './finding.js';

const EXISTS = {
  postgres: 'select datname as name from pg_database where datname = $1',
  mysql: 'select schema_name as name from information_schema.schemata where schema_name = ?',
} as const;

export async function probeDatabases(stage: Stage): Promise<Finding[]> {
  const findings: Finding[] = [];
  for (const service of Object.values(stage.services)) {
    const db = service.database;
    if (db === undefined || db.strategy === 'none') continue;
    const subject = `database ${service.name}`;
    const conn = connectionOf(db, 'a');
    let admin;
    try {
      admin = await openDb(conn, { database: db.engine === 'postgres' ? 'postgres' : '' });
    } catch (err) {
      const fix = err instanceof DatabaseError && err.hint ? err.hint
        : `check that ${db.engine} runs on ${db.host}:${db.port} and accepts connections from this machine (services.${service.name}.database.host/port in ${stage.file})`;
      findings.push(problem(subject, 'connect', describeError(err), fix));
      continue;
    }
    try {
      const [row] = await admin.query<{ v: string }>('select version() as v');
      findings.push(ok(subject, 'connect', `${describeConnection({ ...conn, database: '' })}: ${db.engine} ${String(row?.v ?? '').split(' on ')[0]}`));
      const names = [...new Set(SLOTS.map((s) => db.names[s]))];
      const present: string[] = [];
      for (const name of names) if ((await admin.query(EXISTS[db.engine], [name])).length > 0) present.push(name);
      const missing = names.filter((n) => !present.includes(n));
      findings.push(ok(subject, 'slot databases', `${present.length ? `${present.join(', ')} exist` : ''}${present.length && missing.length ? '; ' : ''}${missing.length ? `${missing.join(', ')} will be created by the first promotion` : ''}`));
    } catch (err) {
      findings.push(problem(subject, 'query', describeError(err), err instanceof DatabaseError ? err.hint : undefined));
    } finally {
      await admin.close();
    }
  }
  return findings;
}
