/*
 * The SQL of the version table, per engine: seed 000's columns (version, updated, status, comments)
 * plus checksum, applied_by, duration_ms, a baseline flag, and an id that orders the rows ("the
 * last row"). Builders only: runner.ts executes them.
 */
import { createHash } from 'node:crypto';
import type { DatabaseConnection, DatabaseEngine } from '../../config/model.js';
import { ident } from '../connection.js';

export const TABLE = 'updateserver_version';
export const STATUSES = ['begin', 'ok', 'error'] as const;
export type VersionStatus = (typeof STATUSES)[number];

/** PostgreSQL advisory lock key of migrations (advisory locks are per database). */
export const PG_LOCK_KEY = 7_342_120;
/** MySQL named locks are per server: the name carries the database. */
export const MYSQL_LOCK_PREFIX = 'updateserver_migrate';

const COLUMNS = 'id, version, updated, status, comments, checksum, applied_by, duration_ms, baseline';

const p = (engine: DatabaseEngine, n: number) => (engine === 'postgres' ? `$${n}` : '?');
const now = (engine: DatabaseEngine) => (engine === 'postgres' ? 'clock_timestamp()' : 'CURRENT_TIMESTAMP(3)');

export function createTable(engine: DatabaseEngine): string {
  return engine === 'postgres'
    ? `CREATE TABLE IF NOT EXISTS ${TABLE} (id serial PRIMARY KEY, version integer NOT NULL, updated timestamptz NOT NULL DEFAULT clock_timestamp(), status text NOT NULL CHECK (status IN ('begin', 'ok', 'error')), comments text NOT NULL DEFAULT '', checksum text NOT NULL DEFAULT '', applied_by text NOT NULL DEFAULT '', duration_ms integer, baseline boolean NOT NULL DEFAULT false)`
    : `CREATE TABLE IF NOT EXISTS ${TABLE} (id int AUTO_INCREMENT PRIMARY KEY, version int NOT NULL, updated timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), status varchar(5) NOT NULL CHECK (status IN ('begin', 'ok', 'error')), comments text NOT NULL, checksum varchar(64) NOT NULL DEFAULT '', applied_by varchar(200) NOT NULL DEFAULT '', duration_ms int, baseline boolean NOT NULL DEFAULT false) ENGINE=InnoDB`;
}

export function tableExists(engine: DatabaseEngine): string {
  return engine === 'postgres'
    ? `SELECT 1 AS present FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = '${TABLE}'`
    : `SELECT 1 AS present FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '${TABLE}'`;
}

export const selectRows = (): string => `SELECT ${COLUMNS} FROM ${TABLE} ORDER BY id`;

export const selectLast = (): string => `SELECT ${COLUMNS} FROM ${TABLE} ORDER BY id DESC LIMIT 1`;

/** Parameters: version, comments, checksum, applied_by, baseline. PostgreSQL returns the id. */
export function insertBegin(engine: DatabaseEngine): string {
  const q = (n: number) => p(engine, n);
  return `INSERT INTO ${TABLE} (version, status, comments, checksum, applied_by, baseline) VALUES (${q(1)}, 'begin', ${q(2)}, ${q(3)}, ${q(4)}, ${q(5)})${engine === 'postgres' ? ' RETURNING id' : ''}`;
}

/** MySQL: the id of the row that insertBegin just added on this session. */
export const lastInsertId = (): string => 'SELECT LAST_INSERT_ID() AS id';

/** Parameters: comments, duration_ms, id. */
export function setOk(engine: DatabaseEngine): string {
  return `UPDATE ${TABLE} SET status = 'ok', comments = ${p(engine, 1)}, duration_ms = ${p(engine, 2)}, updated = ${now(engine)} WHERE id = ${p(engine, 3)}`;
}

/** Parameters: comments (the error), duration_ms, id. */
export function setError(engine: DatabaseEngine): string {
  return `UPDATE ${TABLE} SET status = 'error', comments = ${p(engine, 1)}, duration_ms = ${p(engine, 2)}, updated = ${now(engine)} WHERE id = ${p(engine, 3)}`;
}

/** After a repair by hand. Parameters: comments, checksum, id; only a row that is not ok yet changes. */
export function setResolved(engine: DatabaseEngine): string {
  return `UPDATE ${TABLE} SET status = 'ok', comments = ${p(engine, 1)}, checksum = ${p(engine, 2)}, updated = ${now(engine)} WHERE id = ${p(engine, 3)} AND status <> 'ok'`;
}

/** MySQL: the session's database, which names the lock. */
export const currentDatabase = (): string => 'SELECT DATABASE() AS name';

/** The MySQL lock name of a database: at most 64 characters, as MySQL requires. */
export function mysqlLockName(database: string): string {
  const name = `${MYSQL_LOCK_PREFIX}:${database}`;
  return name.length <= 64 ? name : `${MYSQL_LOCK_PREFIX}:${createHash('sha1').update(database).digest('hex')}`;
}

const literal = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;

/** Takes the lock if it is free, without waiting. Returns one row { got: true/1 or false/0 }. */
export function tryLock(engine: DatabaseEngine, database: string): string {
  return engine === 'postgres'
    ? `SELECT pg_try_advisory_lock(${PG_LOCK_KEY}) AS got`
    : `SELECT GET_LOCK(${literal(mysqlLockName(database))}, 0) AS got`;
}

/**
 * Waits for the lock at most timeoutMs. PostgreSQL: a script for exec() (lock_timeout set for its own
 * implicit transaction only; a timeout is error 55P03). MySQL: a query returning { got: 1 }, or 0 on timeout.
 */
export function lock(engine: DatabaseEngine, database: string, timeoutMs: number): string {
  return engine === 'postgres'
    ? `SELECT set_config('lock_timeout', '${Math.max(1, Math.round(timeoutMs))}', true); SELECT pg_advisory_lock(${PG_LOCK_KEY})`
    : `SELECT GET_LOCK(${literal(mysqlLockName(database))}, ${Math.max(1, Math.ceil(timeoutMs / 1000))}) AS got`;
}

/** Returns one row { released: true/1 when this session held the lock }. */
export function unlock(engine: DatabaseEngine, database: string): string {
  return engine === 'postgres'
    ? `SELECT pg_advisory_unlock(${PG_LOCK_KEY}) AS released`
    : `SELECT RELEASE_LOCK(${literal(mysqlLockName(database))}) AS released`;
}

/** A first stage's idle slot without its database yet: created on the server's admin database (adminDatabase) before the migrations. */
export function createDatabaseStatement(conn: DatabaseConnection): string {
  return `CREATE DATABASE ${ident(conn.engine, conn.database)}`;
}

/** The database a server's databases are created from: PostgreSQL's `postgres`, MySQL's none. */
export const adminDatabase = (conn: DatabaseConnection): string => (conn.engine === 'postgres' ? 'postgres' : '');
