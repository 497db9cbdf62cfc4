/*
 * The exact SQL of the version table per engine: what runs against a real database is what is read here.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  createTable, currentDatabase, insertBegin, lastInsertId, lock, mysqlLockName, selectLast, selectRows, setError, setOk,
  setResolved, tableExists, tryLock, unlock,
} from '../../src/data/migrations/sql.js';

describe('version table SQL: PostgreSQL', () => {
  test('create table: seed 000 columns plus checksum, applied_by, duration_ms, baseline; status restricted', () => {
    assert.equal(createTable('postgres'), "CREATE TABLE IF NOT EXISTS updateserver_version (id serial PRIMARY KEY, version integer NOT NULL, updated timestamptz NOT NULL DEFAULT clock_timestamp(), status text NOT NULL CHECK (status IN ('begin', 'ok', 'error')), comments text NOT NULL DEFAULT '', checksum text NOT NULL DEFAULT '', applied_by text NOT NULL DEFAULT '', duration_ms integer, baseline boolean NOT NULL DEFAULT false)");
  });
  test('table exists', () => {
    assert.equal(tableExists('postgres'), "SELECT 1 AS present FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'updateserver_version'");
  });
  test('insert the begin row, returning its id', () => {
    assert.equal(insertBegin('postgres'), "INSERT INTO updateserver_version (version, status, comments, checksum, applied_by, baseline) VALUES ($1, 'begin', $2, $3, $4, $5) RETURNING id");
  });
  test('set ok / error / resolved; the time of the change, not of the transaction', () => {
    assert.equal(setOk('postgres'), "UPDATE updateserver_version SET status = 'ok', comments = $1, duration_ms = $2, updated = clock_timestamp() WHERE id = $3");
    assert.equal(setError('postgres'), "UPDATE updateserver_version SET status = 'error', comments = $1, duration_ms = $2, updated = clock_timestamp() WHERE id = $3");
    assert.equal(setResolved('postgres'), "UPDATE updateserver_version SET status = 'ok', comments = $1, checksum = $2, updated = clock_timestamp() WHERE id = $3 AND status <> 'ok'");
  });
  test('advisory lock: try, wait with a lock_timeout local to its own transaction, unlock', () => {
    assert.equal(tryLock('postgres', ''), 'SELECT pg_try_advisory_lock(7342120) AS got');
    assert.equal(lock('postgres', '', 600_000), "SELECT set_config('lock_timeout', '600000', true); SELECT pg_advisory_lock(7342120)");
    assert.equal(unlock('postgres', ''), 'SELECT pg_advisory_unlock(7342120) AS released');
  });
});

describe('version table SQL: MySQL/MariaDB', () => {
  test('create table', () => {
    assert.equal(createTable('mysql'), "CREATE TABLE IF NOT EXISTS updateserver_version (id int AUTO_INCREMENT PRIMARY KEY, version int NOT NULL, updated timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), status varchar(5) NOT NULL CHECK (status IN ('begin', 'ok', 'error')), comments text NOT NULL, checksum varchar(64) NOT NULL DEFAULT '', applied_by varchar(200) NOT NULL DEFAULT '', duration_ms int, baseline boolean NOT NULL DEFAULT false) ENGINE=InnoDB");
  });
  test('table exists', () => {
    assert.equal(tableExists('mysql'), "SELECT 1 AS present FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'updateserver_version'");
  });
  test('insert the begin row; its id from the session', () => {
    assert.equal(insertBegin('mysql'), "INSERT INTO updateserver_version (version, status, comments, checksum, applied_by, baseline) VALUES (?, 'begin', ?, ?, ?, ?)");
    assert.equal(lastInsertId(), 'SELECT LAST_INSERT_ID() AS id');
  });
  test('set ok / error / resolved', () => {
    assert.equal(setOk('mysql'), "UPDATE updateserver_version SET status = 'ok', comments = ?, duration_ms = ?, updated = CURRENT_TIMESTAMP(3) WHERE id = ?");
    assert.equal(setError('mysql'), "UPDATE updateserver_version SET status = 'error', comments = ?, duration_ms = ?, updated = CURRENT_TIMESTAMP(3) WHERE id = ?");
    assert.equal(setResolved('mysql'), "UPDATE updateserver_version SET status = 'ok', comments = ?, checksum = ?, updated = CURRENT_TIMESTAMP(3) WHERE id = ? AND status <> 'ok'");
  });
  test('named lock per database (GET_LOCK is per server), timeout in whole seconds', () => {
    assert.equal(currentDatabase(), 'SELECT DATABASE() AS name');
    assert.equal(tryLock('mysql', 'shop_a'), "SELECT GET_LOCK('updateserver_migrate:shop_a', 0) AS got");
    assert.equal(lock('mysql', 'shop_a', 600_000), "SELECT GET_LOCK('updateserver_migrate:shop_a', 600) AS got");
    assert.equal(lock('mysql', 'shop_a', 1500), "SELECT GET_LOCK('updateserver_migrate:shop_a', 2) AS got");
    assert.equal(unlock('mysql', 'shop_a'), "SELECT RELEASE_LOCK('updateserver_migrate:shop_a') AS released");
  });
  test('lock names: quotes escaped, at most 64 characters', () => {
    assert.equal(tryLock('mysql', "o'k\\"), "SELECT GET_LOCK('updateserver_migrate:o''k\\\\', 0) AS got");
    const long = 'x'.repeat(64);
    assert.equal(mysqlLockName(long), 'updateserver_migrate:bb2fa3ee7afb9f54c6dfb5d021f14b1ffe40c163');
    assert.ok(mysqlLockName(long).length <= 64);
  });
});

describe('version table SQL: both engines', () => {
  test('read all rows in order, and the last row', () => {
    assert.equal(selectRows(), 'SELECT id, version, updated, status, comments, checksum, applied_by, duration_ms, baseline FROM updateserver_version ORDER BY id');
    assert.equal(selectLast(), 'SELECT id, version, updated, status, comments, checksum, applied_by, duration_ms, baseline FROM updateserver_version ORDER BY id DESC LIMIT 1');
  });
});
