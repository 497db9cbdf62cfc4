import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pendingMigration } from '../../src/data/migrations/steps.js';
import { checksumOf, type Migration } from '../../src/data/migrations/files.js';

const sql = "ALTER TABLE items ADD COLUMN note varchar(10);\n-- a comment\nUPDATE items SET note = 'a;b';\n";
const m: Migration = { version: 4, name: 'note', sql, checksum: checksumOf(sql), file: 'migrations/web/V0004__note.sql', baseline: false };

test('MySQL: the plan shows each statement as the runner sends it, one by one', () => {
  assert.deepEqual(pendingMigration('mysql', m), {
    version: 4, name: 'note', file: 'migrations/web/V0004__note.sql', baseline: false,
    statements: ['ALTER TABLE items ADD COLUMN note varchar(10)', "-- a comment\nUPDATE items SET note = 'a;b'"],
  });
});

test('PostgreSQL: the file is one step (one script in one transaction), not cut where a $$ body could hold a ";"', () => {
  assert.deepEqual(pendingMigration('postgres', m).statements, [sql.trim()]);
});
