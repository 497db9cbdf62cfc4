/*
 * Reliability suite (issue 9), faults of the data step: a migration failing, and the database restore
 * failing. beta's database strategy is `copy` (with the TEMPLATE fast path off, so the copy is a real
 * pg_dump | pg_restore): its idle slot gets a snapshot of dev's live database, and its live slot's own
 * database must hold every write acknowledged through HAProxy while the failing run went on; the live
 * database is never the one being restored or migrated.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sql } from '../lab/pg.js';
import { startFaultLab, updateserverWith, withFault, type FaultLab } from './harness.js';

let fl: FaultLab;
let shimDir: string;

before(async () => {
  fl = await startFaultLab({ net: 133, betaHosts: 1, betaStrategy: 'copy', betaDatabaseExtra: '      fastPath: off' });
  // dev's users have written: the dump is a few MB, far more than a pipe buffer holds.
  await sql(fl.dbs.dev, "INSERT INTO writes (k) SELECT 'dev-' || g || '-' || md5(g::text) FROM generate_series(1, 40000) g");
  shimDir = await mkdtemp('/tmp/us-rel-shim-');
});

after(async () => {
  await fl?.stop();
  if (shimDir) await rm(shimDir, { recursive: true, force: true });
});

test('fault: a migration failing — exit 1 naming the migration and the database error; rolled back, live untouched; the fixed migration goes through', async (t) => {
  const file = join(fl.p.project.dir, 'migrations', 'web', 'V0002__add_note.sql');
  const { before } = await withFault(fl, t, {
    release: { version: '1.1.0' },
    inject: () => writeFile(file, 'ALTER TABLE writes ADD COLUMN note text;\nALTER TABLE no_such_table ADD COLUMN x int;\n'),
    expect: {
      exit: 1,
      message: /updateserver: .*migration 2 \(add_note\) failed: .*relation "no_such_table" does not exist.*\(rolled back: the schema is as before\)/,
    },
    heal: () => writeFile(file, 'ALTER TABLE writes ADD COLUMN note text;\n'),
  });
  // The live database never saw the migration; the new one has it.
  const live = fl.dbs[before.slot as 'a' | 'b'];
  assert.deepEqual(await sql(live, "SELECT column_name FROM information_schema.columns WHERE table_name = 'writes' AND column_name = 'note'"), []);
  const now = fl.dbs[(await fl.served()).slot as 'a' | 'b'];
  assert.equal((await sql(now, "SELECT column_name FROM information_schema.columns WHERE table_name = 'writes' AND column_name = 'note'")).length, 1);
});

test('fault: the database restore failing (pg_restore fed a cut-off dump) — exit 1 naming both databases and pg_restore\'s error; live untouched; the next run copies', async (t) => {
  // The real pg_restore, given only the first 64 KiB of the dump: it fails on its own, part-way.
  const shim = join(shimDir, 'pg_restore');
  await writeFile(shim, '#!/bin/sh\n# reliability suite: the real pg_restore, fed a dump cut off after 64 KiB\nhead -c 65536 | /usr/bin/pg_restore "$@"\n');
  await chmod(shim, 0o755);
  await withFault(fl, t, {
    release: { version: '1.2.0' },
    run: (f) => updateserverWith(f.p.project.dir, { PATH: `${shimDir}:${process.env.PATH}` }, 'beta'),
    expect: {
      exit: 1,
      message: new RegExp(`updateserver: .*copying postgres://postgres@127\\.0\\.0\\.1:5432/${fl.dbs.dev} into postgres://postgres@127\\.0\\.0\\.1:5432/us_rel_133_beta_[ab] failed: .*pg_restore exited 1`),
      also: [/pg_restore: error: /],
    },
    heal: async () => {},
  });
});
