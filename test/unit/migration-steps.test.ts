import assert from 'node:assert/strict';
import { test } from 'node:test';
import { beginValues, pendingMigration } from '../../src/data/migrations/steps.js';
import { checksumOf, type Migration } from '../../src/data/migrations/files.js';

const sql = "ALTER TABLE items ADD COLUMN note varchar(10);\n-- a comment\nUPDATE items SET note = 'a;b';\n";
const m: Migration = { version: 4, name: 'note', sql, checksum: checksumOf(sql), file: 'migrations/web/V0004__note.sql', baseline: false };

test('MySQL: the plan shows each statement as the runner sends it, one by one', () => {
  assert.deepEqual(pendingMigration('mysql', m), {
    version: 4, name: 'note', file: 'migrations/web/V0004__note.sql', baseline: false,
    statements: ['ALTER TABLE items ADD COLUMN note varchar(10)', "-- a comment\nUPDATE items SET note = 'a;b'"], lines: [1, 3],
    checksum: m.checksum, label: 'note',
    rows: {
      begin: "INSERT INTO updateserver_version (version, status, comments, checksum, applied_by, baseline) VALUES (?, 'begin', ?, ?, ?, ?)",
      ok: "UPDATE updateserver_version SET status = 'ok', comments = ?, duration_ms = ?, updated = CURRENT_TIMESTAMP(3) WHERE id = ?",
      error: "UPDATE updateserver_version SET status = 'error', comments = ?, duration_ms = ?, updated = CURRENT_TIMESTAMP(3) WHERE id = ?",
    },
  });
  assert.deepEqual(beginValues(pendingMigration('mysql', m), 'ann@updateserver'), [4, 'note', m.checksum, 'ann@updateserver', false]);
});

test('PostgreSQL: the file is one step (one script in one transaction), not cut where a $$ body could hold a ";"', () => {
  assert.deepEqual(pendingMigration('postgres', m).statements, [sql.trimEnd()], 'only its end trimmed: an error\'s line counts from the start of the file');
});
