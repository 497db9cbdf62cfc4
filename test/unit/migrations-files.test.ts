/*
 * Loading migrations (seed 000): a directory of V<version>__<name>.sql files, or one migrations.sql cut
 * by "-- version: <n> <name>" lines, each with an optional baseline B<version>__<name>.sql; and every
 * refusal, as a ConfigError that names the file (and the line, in migrations.sql).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadMigrations, type Migration } from '../../src/data/migrations/files.js';
import { ConfigError, EXIT_BAD_INPUT } from '../../src/errors.js';

/** Compiled to dist/test/unit/, so the repository is three levels up. */
const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'fixtures', 'migrations');
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const brief = (ms: Migration[]) => ms.map((m) => `${m.baseline ? 'B' : 'V'}${m.version} ${m.name}`);

const temp = await mkdtemp(join(tmpdir(), 'ustest-migrations-'));
after(() => rm(temp, { recursive: true, force: true }));
let n = 0;
async function dirWith(files: Record<string, string>): Promise<string> {
  const dir = join(temp, String(n++));
  await mkdir(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}

/** Asserts a ConfigError whose issues name the file (and line), with a message matching. */
async function refused(dir: string, file: string, message: RegExp, line?: number): Promise<void> {
  await assert.rejects(loadMigrations(dir), (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    assert.equal(err.exitCode, EXIT_BAD_INPUT);
    const issue = err.issues.find((i) => i.file === join(dir, file) && message.test(i.message));
    assert.ok(issue, `no issue for ${file} matching ${message}: ${err.message}`);
    if (line !== undefined) assert.equal(issue.line, line);
    assert.match(err.message, new RegExp(file.replace(/[.]/g, '\\.')));
    return true;
  });
}

describe('loadMigrations: layouts', () => {
  test('versioned files: version from the number, name after the double underscore, sorted by version, sha256 of the SQL', async () => {
    const dir = join(FIXTURES, 'versioned');
    const ms = await loadMigrations(dir);
    assert.deepEqual(brief(ms), ['V1 items', 'V2 note', 'V10 add_index']);
    const first = ms[0]!;
    assert.equal(first.sql, 'CREATE TABLE items (id integer PRIMARY KEY, name varchar(100) NOT NULL);\n');
    assert.equal(first.checksum, sha256(first.sql));
    assert.equal(first.file, join(dir, 'V0001__items.sql'));
    assert.equal(first.baseline, false);
  });

  test('one migrations.sql with "-- version: <n> <name>" separators; a version without a name is called v<n>', async () => {
    const dir = join(FIXTURES, 'single');
    const ms = await loadMigrations(dir);
    assert.deepEqual(brief(ms), ['V1 items', 'V2 note', 'V3 v3']);
    assert.equal(ms[1]!.sql, 'ALTER TABLE items ADD COLUMN note varchar(200);\n');
    assert.equal(ms[1]!.checksum, sha256(ms[1]!.sql));
    assert.ok(ms.every((m) => m.file === join(dir, 'migrations.sql')));
  });

  test('a baseline B<version>__<name>.sql is loaded beside the versions it absorbs, first among equal versions', async () => {
    const ms = await loadMigrations(join(FIXTURES, 'baseline'));
    assert.deepEqual(brief(ms), ['V1 items', 'B2 schema', 'V2 note', 'V3 add_index']);
    assert.equal(ms.find((m) => m.baseline)!.file, join(FIXTURES, 'baseline', 'B0002__schema.sql'));
  });

  test('a baseline also goes with one migrations.sql', async () => {
    const ms = await loadMigrations(join(FIXTURES, 'baseline-single'));
    assert.deepEqual(brief(ms), ['V1 items', 'B2 schema', 'V2 note', 'V3 v3']);
  });

  test('a missing directory holds no migrations', async () => {
    assert.deepEqual(await loadMigrations(join(temp, 'no-such-dir')), []);
  });

  test('hidden files are ignored; CRLF line endings and a BOM do not change the checksum', async () => {
    const unix = await dirWith({ 'V1__a.sql': 'CREATE TABLE a (x int);\nCREATE TABLE b (y int);\n', '.gitkeep': '' });
    const windows = await dirWith({ 'V1__a.sql': '\uFEFFCREATE TABLE a (x int);\r\nCREATE TABLE b (y int);\r\n' });
    const [u] = await loadMigrations(unix);
    const [w] = await loadMigrations(windows);
    assert.equal(w!.sql, u!.sql);
    assert.equal(w!.checksum, u!.checksum);
  });
});

describe('loadMigrations: refusals name the file', () => {
  test('the same version twice (V3 and V0003)', async () => {
    const dir = await dirWith({ 'V0003__a.sql': 'SELECT 1;', 'V3__b.sql': 'SELECT 2;' });
    await refused(dir, 'V3__b.sql', /version 3 is defined twice \(also in .*V0003__a\.sql\)/);
  });

  test('the same version twice in migrations.sql, at its line', async () => {
    const dir = await dirWith({ 'migrations.sql': '-- version: 1 a\nSELECT 1;\n-- version: 1 b\nSELECT 2;\n' });
    await refused(dir, 'migrations.sql', /version 1 is defined twice \(also earlier in this file\)/);
  });

  test('two baselines', async () => {
    const dir = await dirWith({ 'B0002__a.sql': 'SELECT 1;', 'B0005__b.sql': 'SELECT 2;' });
    await refused(dir, 'B0005__b.sql', /a second baseline/);
  });

  for (const bad of ['README.md', 'V1_one_underscore.sql', 'v1__lowercase.sql', 'V__no_version.sql', 'V1__bad name.sql', 'V1__x.txt', '0001_init.sql']) {
    test(`a file that is not a migration: ${bad}`, async () => {
      const dir = await dirWith({ 'V0001__ok.sql': 'SELECT 1;', [bad]: 'SELECT 1;' });
      await refused(dir, bad, /not a migration: expected a file named like V0003__add_index\.sql/);
    });
  }

  test('a directory inside the migrations directory', async () => {
    const dir = await dirWith({ 'V0001__ok.sql': 'SELECT 1;' });
    await mkdir(join(dir, 'V0002__folder.sql'));
    await refused(dir, 'V0002__folder.sql', /not a migration/);
  });

  test('a version above the 32-bit version column', async () => {
    const dir = await dirWith({ 'V20240101120000__stamp.sql': 'SELECT 1;' });
    await refused(dir, 'V20240101120000__stamp.sql', /above 2147483647/);
  });

  test('both layouts at once', async () => {
    const dir = await dirWith({ 'V0001__a.sql': 'SELECT 1;', 'migrations.sql': '-- version: 2 b\nSELECT 2;\n' });
    await refused(dir, 'migrations.sql', /either V<version>__<name>\.sql files or one migrations\.sql, not both \(found V0001__a\.sql\)/);
  });

  test('an empty file, and one with only comments', async () => {
    const dir = await dirWith({ 'V0001__empty.sql': '\n  \n', 'V0002__comments.sql': '-- to do\n/* later */\n' });
    await refused(dir, 'V0001__empty.sql', /the migration is empty/);
    await refused(dir, 'V0002__comments.sql', /the migration is empty/);
  });

  test('an empty version in migrations.sql, at its separator line', async () => {
    const dir = await dirWith({ 'migrations.sql': '-- version: 1 a\nSELECT 1;\n-- version: 2 b\n-- nothing yet\n\n-- version: 3 c\nSELECT 3;\n' });
    await refused(dir, 'migrations.sql', /version 2 is empty/, 3);
  });

  test('a mistyped separator is refused instead of gluing two versions together', async () => {
    const dir = await dirWith({ 'migrations.sql': '-- version: 1 a\nSELECT 1;\n-- version: 2 add an index\nSELECT 2;\n' });
    await refused(dir, 'migrations.sql', /expected "-- version: <number> <name>"/, 3);
  });

  test('SQL before the first separator', async () => {
    const dir = await dirWith({ 'migrations.sql': '/* header\n   of the file */\nCREATE TABLE t (x int);\n-- version: 1 a\nSELECT 1;\n' });
    await refused(dir, 'migrations.sql', /SQL before the first "-- version/, 3);
  });

  test('a migrations.sql without any separator', async () => {
    const dir = await dirWith({ 'migrations.sql': '-- just a comment\n' });
    await refused(dir, 'migrations.sql', /holds no migration/);
  });

  test('all problems at once, in one error', async () => {
    const dir = await dirWith({ 'V0001__a.sql': '', 'notes.txt': 'x', 'V1__b.sql': 'SELECT 1;' });
    await assert.rejects(loadMigrations(dir), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.issues.length, 3, err.message);
      return true;
    });
  });
});

describe('comments are told from SQL by one scan', () => {
  test('a "/*" inside a "--" comment does not hide the statement after it', async () => {
    const dir = await dirWith({ 'V0001__note.sql': '-- files are in /srv/*.dat\nCREATE TABLE t (id int);\n' });
    assert.deepEqual(brief(await loadMigrations(dir)), ['V1 note']);
  });
  test('a "--" inside a string is not a comment, and a file of comments only is still empty', async () => {
    const dir = await dirWith({ 'V0001__dash.sql': "INSERT INTO t VALUES ('--');\n" });
    assert.deepEqual(brief(await loadMigrations(dir)), ['V1 dash']);
    await refused(await dirWith({ 'V0001__none.sql': '-- only /* a note\n/* and -- a block */\n# and a hash\n' }), 'V0001__none.sql', /empty/);
  });
});
