/*
 * The slot databases of a dev -> beta pipeline in the integration tests: their names (one prefix per
 * test file, so files never share a database), the `database:` block of a service in the profiles,
 * and the clean-up that drops every database of the prefix, whatever the test created under it.
 */
import { sql as pgSql } from './pg.js';
import { sql as mysqlSql } from './mysql.js';

export type Engine = 'postgres' | 'mysql';
export type SlotNames = { a: string; b: string };

export interface SlotDatabases {
  readonly prefix: string;
  /** The databases of a stage's slots a and b. */
  names(stage: string): SlotNames;
  /**
   * The service's `database:` block, indented as service keys. The strategy defaults to what the
   * pipeline tests use: copy-self in dev (its own live slot), copy in beta (dev's live slot).
   */
  yaml(stage: string, strategy?: string, names?: SlotNames): string;
  /** Drops every database whose name starts with the prefix. */
  dropAll(): Promise<void>;
}

export function slotDatabases(engine: Engine, prefix: string): SlotDatabases {
  const names = (stage: string): SlotNames => ({ a: `${prefix}_${stage}_a`, b: `${prefix}_${stage}_b` });
  return {
    prefix,
    names,
    yaml: (stage, strategy = stage === 'dev' ? 'copy-self' : 'copy', n = names(stage)) => [
      '    database:',
      `      engine: ${engine}`,
      `      strategy: ${strategy}`,
      '      host: 127.0.0.1',
      `      names: { a: ${n.a}, b: ${n.b} }`,
    ].join('\n'),
    async dropAll() {
      if (engine === 'postgres') {
        const rows = await pgSql<{ datname: string }>('postgres', `SELECT datname FROM pg_database WHERE datname LIKE '${prefix}%'`);
        for (const { datname } of rows) await pgSql('postgres', `DROP DATABASE IF EXISTS ${datname} WITH (FORCE)`);
      } else {
        const rows = await mysqlSql<{ n: string }>(undefined, 'SELECT SCHEMA_NAME AS n FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?', [`${prefix}%`]);
        for (const { n } of rows) await mysqlSql(undefined, `DROP DATABASE IF EXISTS \`${n}\``);
      }
    },
  };
}

/** A health-check file for beta: the app's /health, and an sql check that the slot's schema is at `version`. */
export const schemaChecks = (version: string) => `pre:
  - name: health
    http: { path: /health }
  - name: schema
    sql: { query: "SELECT MAX(version) FROM updateserver_version WHERE status = 'ok'", expect: "${version}" }
    deadlineMs: 1000
`;
