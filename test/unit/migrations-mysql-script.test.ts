/*
 * MySQL migration scripts are cut into statements the way the mysql client cuts them, so that the
 * session never needs multipleStatements and a failure names its statement and line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { splitMysqlScript } from '../../src/data/mysql-script.js';

const sqls = (script: string) => splitMysqlScript(script).map((s) => s.sql);

test('statements end at ; and start on their own line', () => {
  assert.deepEqual(splitMysqlScript('CREATE TABLE a (x int);\n\nALTER TABLE a ADD y int;\nINSERT INTO a VALUES (1, 2)'), [
    { sql: 'CREATE TABLE a (x int)', line: 1 },
    { sql: 'ALTER TABLE a ADD y int', line: 3 },
    { sql: 'INSERT INTO a VALUES (1, 2)', line: 4 },
  ]);
});

test('a ; inside quotes, backquotes and comments does not end a statement', () => {
  const script = [
    "INSERT INTO t VALUES ('a;b', \"c;d\", 'it''s;', 'back\\'slash;');",
    'CREATE TABLE `odd;name` (x int); -- a comment; still a comment',
    '# hash comment; too',
    'SELECT 1 /* inline; comment */ + 1;',
  ].join('\n');
  assert.deepEqual(splitMysqlScript(script), [
    { sql: "INSERT INTO t VALUES ('a;b', \"c;d\", 'it''s;', 'back\\'slash;')", line: 1 },
    { sql: 'CREATE TABLE `odd;name` (x int)', line: 2 },
    { sql: '-- a comment; still a comment\n# hash comment; too\nSELECT 1 /* inline; comment */ + 1', line: 4 },
  ]);
});

test('statements of comments only are dropped; --x without a space is not a comment', () => {
  assert.deepEqual(sqls('-- header\n;\n/* nothing */;\nSELECT 1--1;\n'), ['SELECT 1--1']);
});

test('executable comments /*! ... */ are code', () => {
  assert.deepEqual(sqls('/*!40101 SET NAMES utf8mb4 */;\nSELECT 1;'), ['/*!40101 SET NAMES utf8mb4 */', 'SELECT 1']);
});

test('DELIMITER changes the terminator, for triggers and procedures', () => {
  const script = [
    'CREATE TABLE t (x int);',
    'DELIMITER //',
    'CREATE TRIGGER t_bi BEFORE INSERT ON t FOR EACH ROW',
    'BEGIN',
    '  SET NEW.x = NEW.x + 1;',
    'END //',
    'delimiter ;',
    'INSERT INTO t VALUES (1);',
  ].join('\n');
  assert.deepEqual(splitMysqlScript(script), [
    { sql: 'CREATE TABLE t (x int)', line: 1 },
    { sql: 'CREATE TRIGGER t_bi BEFORE INSERT ON t FOR EACH ROW\nBEGIN\n  SET NEW.x = NEW.x + 1;\nEND', line: 3 },
    { sql: 'INSERT INTO t VALUES (1)', line: 8 },
  ]);
});

test('line numbers count newlines inside strings and comments', () => {
  assert.deepEqual(splitMysqlScript("INSERT INTO t VALUES ('two\nlines');\n/* a\nb */\nSELECT 2;").map((s) => s.line), [1, 5]);
});

test('an empty script has no statement', () => {
  assert.deepEqual(splitMysqlScript('\n  \n-- nothing\n'), []);
});
