import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { MANIFEST } from '../../src/commands/release.js';
import { UpdateserverError } from '../../src/errors.js';
import { buildManifest, writeManifest } from '../../src/release/manifest.js';

const base = mkdtempSync(join(tmpdir(), 'updateserver-manifest-'));
after(() => rmSync(base, { recursive: true, force: true }));
let n = 0;

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

/** A release directory with the usual awkward cases. */
function makeRelease(): string {
  const dir = join(base, `release-${n++}`);
  mkdirSync(join(dir, 'lib', 'deep', 'er'), { recursive: true });
  mkdirSync(join(dir, 'empty-dir'));
  writeFileSync(join(dir, 'server.mjs'), 'console.log("hi")\n');
  writeFileSync(join(dir, 'VERSION'), '1.0.0\n');
  writeFileSync(join(dir, 'lib', 'util.js'), 'export {}\n');
  writeFileSync(join(dir, 'lib', 'deep', 'er', 'data.bin'), Buffer.alloc(3 * 1024 * 1024 + 17, 0xab));
  writeFileSync(join(dir, 'name with spaces.txt'), 'spaces\n');
  writeFileSync(join(dir, "it's (weird) $name.txt"), 'quotes\n');
  writeFileSync(join(dir, 'empty'), '');
  // Symlinks travel as symlinks; they are not listed.
  symlinkSync('server.mjs', join(dir, 'link-to-server'));
  symlinkSync('lib', join(dir, 'link-to-lib'));
  return dir;
}

function sha256sumCheck(dir: string, ...flags: string[]) {
  return spawnSync('sha256sum', [...flags, '-c', MANIFEST], { cwd: dir, encoding: 'utf8' });
}

describe('buildManifest', () => {
  test('lists every regular file, sorted, as "<sha256>  ./<path>", skipping symlinks and directories', async () => {
    const dir = makeRelease();
    const m = await buildManifest(dir);
    const paths = ['VERSION', 'empty', "it's (weird) $name.txt", 'lib/deep/er/data.bin', 'lib/util.js', 'name with spaces.txt', 'server.mjs'].sort();
    assert.equal(m.files, 7);
    assert.equal(m.text, paths.map((p) => `${sha256(readFileSync(join(dir, p)))}  ./${p}\n`).join(''));
    assert.equal(m.hash, sha256(m.text));
  });

  test('each hash is what sha256sum prints for the file', async () => {
    const dir = makeRelease();
    const m = await buildManifest(dir);
    const printed = spawnSync('sha256sum', ['./lib/deep/er/data.bin', './empty'], { cwd: dir, encoding: 'utf8' }).stdout;
    for (const line of printed.trim().split('\n')) assert.ok(m.text.includes(`${line}\n`), line);
  });

  test('writeManifest output verifies with a real sha256sum -c (--strict, as on the hosts)', async () => {
    const dir = makeRelease();
    const m = await writeManifest(dir);
    assert.equal(readFileSync(join(dir, MANIFEST), 'utf8'), m.text);
    const r = sha256sumCheck(dir, '--strict');
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal(r.stdout.split('\n').filter((l) => l.endsWith(': OK')).length, 7);
    assert.equal(sha256sumCheck(dir, '--quiet', '--strict').stdout, '');
  });

  test('sha256sum -c catches a changed file and a missing one', async () => {
    const dir = makeRelease();
    await writeManifest(dir);
    writeFileSync(join(dir, 'lib', 'util.js'), 'export {} // changed\n');
    const changed = sha256sumCheck(dir, '--quiet', '--strict');
    assert.notEqual(changed.status, 0);
    assert.equal(changed.stdout, './lib/util.js: FAILED\n');
    writeFileSync(join(dir, 'lib', 'util.js'), 'export {}\n');
    rmSync(join(dir, 'name with spaces.txt'));
    assert.notEqual(sha256sumCheck(dir, '--quiet', '--strict').status, 0);
  });

  test('the manifest file itself is not listed, so writing it does not change the hash', async () => {
    const dir = makeRelease();
    const before = await buildManifest(dir);
    const written = await writeManifest(dir);
    const again = await buildManifest(dir);
    assert.equal(written.hash, before.hash);
    assert.equal(again.hash, before.hash);
    assert.equal(again.text, before.text);
    assert.doesNotMatch(again.text, new RegExp(`\\./${MANIFEST.replace('.', '\\.')}\\n`));
  });

  test('only the top-level manifest is left out: a file of that name deeper down is content', async () => {
    const dir = makeRelease();
    writeFileSync(join(dir, 'lib', MANIFEST), 'not ours\n');
    const m = await buildManifest(dir);
    assert.equal(m.files, 8);
    assert.match(m.text, new RegExp(`  \\./lib/${MANIFEST.replace('.', '\\.')}\\n`));
  });

  test('the hash is stable: the same content anywhere gives the same hash; any change gives another', async () => {
    const dir = makeRelease();
    const first = await buildManifest(dir);
    assert.equal((await buildManifest(dir)).hash, first.hash);
    const copy = join(base, `copy-${n++}`);
    cpSync(dir, copy, { recursive: true, verbatimSymlinks: true });
    assert.deepEqual(await buildManifest(copy), first);

    writeFileSync(join(copy, 'VERSION'), '1.0.1\n');
    assert.notEqual((await buildManifest(copy)).hash, first.hash);
    writeFileSync(join(copy, 'VERSION'), '1.0.0\n');
    assert.equal((await buildManifest(copy)).hash, first.hash);
    writeFileSync(join(copy, 'new-file'), '');
    assert.notEqual((await buildManifest(copy)).hash, first.hash);
  });

  test('a rename changes the hash even when the content does not', async () => {
    const a = join(base, `rename-a-${n++}`);
    const b = join(base, `rename-b-${n++}`);
    mkdirSync(a);
    mkdirSync(b);
    writeFileSync(join(a, 'x'), 'same');
    writeFileSync(join(b, 'y'), 'same');
    assert.notEqual((await buildManifest(a)).hash, (await buildManifest(b)).hash);
  });

  test('more files than one hashing batch: all listed, in order', async () => {
    const dir = join(base, `many-${n++}`);
    mkdirSync(dir);
    const names = Array.from({ length: 75 }, (_, i) => `f${String(i).padStart(3, '0')}`);
    for (const name of [...names].reverse()) writeFileSync(join(dir, name), name);
    const m = await buildManifest(dir);
    assert.equal(m.files, 75);
    assert.equal(m.text, names.map((name) => `${sha256(name)}  ./${name}\n`).join(''));
  });

  test('an empty release has an empty manifest', async () => {
    const dir = join(base, `empty-${n++}`);
    mkdirSync(dir);
    assert.deepEqual(await buildManifest(dir), { text: '', files: 0, hash: sha256('') });
  });

  test('refuses a file with a newline in its name (sha256sum would escape it and the check would differ)', async () => {
    const dir = makeRelease();
    writeFileSync(join(dir, 'lib', 'bad\nname.js'), 'x');
    await assert.rejects(buildManifest(dir), (err: unknown) => {
      assert.ok(err instanceof UpdateserverError);
      assert.equal(err.message, 'cannot release a file whose name contains a newline or backslash: "lib/bad\\nname.js"');
      return true;
    });
    await assert.rejects(writeManifest(dir), UpdateserverError);
  });

  test('refuses a directory with a newline in its name', async () => {
    const dir = makeRelease();
    mkdirSync(join(dir, 'odd\ndir'));
    await assert.rejects(buildManifest(dir), /newline or backslash: "odd\\ndir"/);
  });

  test('refuses a backslash in a name', async () => {
    const dir = makeRelease();
    writeFileSync(join(dir, 'back\\slash'), 'x');
    await assert.rejects(buildManifest(dir), UpdateserverError);
  });

  test('a missing directory is an error', async () => {
    await assert.rejects(buildManifest(join(base, 'does-not-exist')), /ENOENT/);
  });
});
