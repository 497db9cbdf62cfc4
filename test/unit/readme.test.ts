/*
 * README.md shows the repository's own files and commands; these checks keep what it shows true when
 * the files change.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_DIR } from '../../src/package-dir.js';

const README = readFileSync(join(PACKAGE_DIR, 'README.md'), 'utf8');
const read = (file: string) => readFileSync(join(PACKAGE_DIR, file), 'utf8');

test('the profile the README shows is profiles/beta.yaml, whole', () => {
  const block = /This is `profiles\/beta\.yaml` from this repository[^\n]*\n[^\n]*\n\n```yaml\n([\s\S]*?)```\n/.exec(README);
  assert.ok(block, 'the README shows profiles/beta.yaml');
  assert.equal(block[1], read('profiles/beta.yaml'));
});

test('the README begins with the two commands, and they are the scripts of package.json that bootstrap first', () => {
  const firstBlock = /```\n([\s\S]*?)```/.exec(README)?.[1] ?? '';
  assert.deepEqual(firstBlock.trim().split('\n').map((l) => l.split('#')[0]!.trim()), ['npm run demo', 'npm test']);
  const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;
  assert.match(scripts.demo!, /^node scripts\/bootstrap\.mjs demo && /);
  assert.match(scripts.test!, /^node scripts\/bootstrap\.mjs test && /);
  assert.match(read('.ci/run'), /\nnpm test\n$/, '.ci/run ends with the README\'s test command');
});
