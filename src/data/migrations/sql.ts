/*
 * The SQL of the version table (seed 000: version, updated, status, comments; plus checksum,
 * applied_by, duration_ms), per engine. Builders only: the runner executes them.
 */
import type { DatabaseEngine } from '../../config/model.js';

export const TABLE = 'updateserver_version';
/** Key of the advisory lock that serialises migrations of one database. */
export const PG_LOCK_KEY = 7_342_120;
export const MYSQL_LOCK = 'updateserver_migrate';

export function createTable(engine: DatabaseEngine): string {
  return engine === 'postgres'
    ? `CREATE TABLE IF NOT EXISTS ${TABLE} (id serial PRIMARY KEY, version integer NOT NULL, updated timestamptz NOT NULL DEFAULT now(), status text NOT NULL CHECK (status IN ('begin', 'ok', 'error')), comments text NOT NULL DEFAULT '', checksum text NOT NULL DEFAULT '', applied_by text NOT NULL DEFAULT '', duration_ms integer)`
    : `CREATE TABLE IF NOT EXISTS ${TABLE} (id int AUTO_INCREMENT PRIMARY KEY, version int NOT NULL, updated timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), status varchar(8) NOT NULL, comments text, checksum varchar(64) NOT NULL DEFAULT '', applied_by varchar(200) NOT NULL DEFAULT '', duration_ms int)`;
}

export const param = (engine: DatabaseEngine, n: number) => (engine === 'postgres' ? `$${n}` : '?');

export function tableExists(engine: DatabaseEngine): string {
  return engine === 'postgres'
    ? `SELECT 1 AS x FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = '${TABLE}'`
    : `SELECT 1 AS x FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '${TABLE}'`;
}

export const selectRows = () => `SELECT id, version, updated, status, comments, checksum, applied_by, duration_ms FROM ${TABLE} ORDER BY id`;

export function insertBegin(engine: DatabaseEngine): string {
  const p = (n: number) => param(engine, n);
  return `INSERT INTO ${TABLE} (version, status, comments, checksum, applied_by) VALUES (${p(1)}, 'begin', ${p(2)}, ${p(3)}, ${p(4)})`;
}

export function lastId(): string {
  return `SELECT MAX(id) AS id FROM ${TABLE}`;
}

export function setStatus(engine: DatabaseEngine): string {
  const p = (n: number) => param(engine, n);
  return `UPDATE ${TABLE} SET status = ${p(1)}, comments = ${p(2)}, duration_ms = ${p(3)}, updated = ${engine === 'postgres' ? 'now()' : 'CURRENT_TIMESTAMP(3)'} WHERE id = ${p(4)}`;
}

export function lock(engine: DatabaseEngine): string {
  return engine === 'postgres' ? `SELECT pg_advisory_lock(${PG_LOCK_KEY})` : `SELECT GET_LOCK('${MYSQL_LOCK}', 600) AS got`;
}

export function unlock(engine: DatabaseEngine): string {
  return engine === 'postgres' ? `SELECT pg_advisory_unlock(${PG_LOCK_KEY})` : `SELECT RELEASE_LOCK('${MYSQL_LOCK}')`;
}
