import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { RELEASE_NAME, readVersion, releaseName } from '../../src/release/name.js';

const HASH = '3fa9c2d1e0b7a6f5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1';

describe('releaseName', () => {
  test('is <UTC date>-<UTC time>-<version>-<first 8 of the hash>', () => {
    assert.equal(releaseName('1.0.0', HASH, new Date('2026-11-22T22:31:04.987Z')), '2026.11.22-223104-1.0.0-3fa9c2d1');
  });

  test('pads month, day, hours, minutes and seconds', () => {
    assert.equal(releaseName('2', HASH, new Date('2027-01-02T03:04:05Z')), '2027.01.02-030405-2-3fa9c2d1');
  });

  test('uses UTC, whatever the local time zone', () => {
    // 23:59:59 at UTC-05:00 is already the next day in UTC.
    assert.equal(releaseName('1', HASH, new Date('2026-12-31T23:59:59-05:00')), '2027.01.01-045959-1-3fa9c2d1');
  });

  test('a short hash is used as it is', () => {
    assert.equal(releaseName('1', 'abc', new Date('2026-11-22T22:31:04Z')), '2026.11.22-223104-1-abc');
  });

  test('names sort by time, as strings', () => {
    const times = ['2026-01-09T09:59:59Z', '2026-01-10T00:00:00Z', '2026-02-01T00:00:00Z', '2026-11-22T22:31:04Z', '2027-01-01T00:00:00Z'];
    const names = times.map((t) => releaseName('1.0.0', HASH, new Date(t)));
    assert.deepEqual([...names].reverse().sort(), names);
  });

  test('matches RELEASE_NAME for a sanitised version', () => {
    assert.match(releaseName('1.0.0-rc.1+build.5', HASH, new Date('2026-11-22T22:31:04Z')), RELEASE_NAME);
  });
});

describe('RELEASE_NAME', () => {
  test('accepts release names and refuses anything a shell or a path would read specially', () => {
    for (const ok of ['2026.11.22-223104-1.0.0-3fa9c2d1', 'a', '1.0+x_y-z']) assert.match(ok, RELEASE_NAME);
    for (const bad of ['', 'a b', 'a/b', '../x', 'a;b', "a'b", 'a\nb', '$(x)', 'a*']) assert.doesNotMatch(bad, RELEASE_NAME);
  });

  test('refuses "." and "..", which as releases/<name> would name the releases directory or the service root', () => {
    assert.doesNotMatch('.', RELEASE_NAME);
    assert.doesNotMatch('..', RELEASE_NAME);
  });
});

describe('readVersion', () => {
  const base = mkdtempSync(join(tmpdir(), 'updateserver-version-'));
  after(() => rmSync(base, { recursive: true, force: true }));
  let n = 0;
  const app = (files: Record<string, string>): string => {
    const dir = join(base, `app-${n++}`);
    mkdirSync(dir);
    for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
    return dir;
  };

  test('reads VERSION, trimmed', () => {
    assert.equal(readVersion(app({ VERSION: '  1.2.3\n\n' })), '1.2.3');
  });

  test('VERSION wins over package.json', () => {
    assert.equal(readVersion(app({ VERSION: '2.0.0\n', 'package.json': '{"version":"1.0.0"}' })), '2.0.0');
  });

  test('falls back to package.json\'s version', () => {
    assert.equal(readVersion(app({ 'package.json': '{"name":"web","version":"1.4.0-beta.2"}' })), '1.4.0-beta.2');
  });

  test('is "0" without either, with a package.json without a version, or with one that is not JSON', () => {
    assert.equal(readVersion(app({})), '0');
    assert.equal(readVersion(app({ 'package.json': '{"name":"web"}' })), '0');
    assert.equal(readVersion(app({ 'package.json': '{"version": 3}' })), '0');
    assert.equal(readVersion(app({ 'package.json': 'not json' })), '0');
  });

  test('an empty VERSION is "0"', () => {
    assert.equal(readVersion(app({ VERSION: '\n' })), '0');
  });

  test('replaces characters a release name cannot hold, and keeps at most 40', () => {
    assert.equal(readVersion(app({ VERSION: '1.0 beta/2; rm -rf ~\n' })), '1.0_beta_2__rm_-rf__');
    assert.equal(readVersion(app({ 'package.json': JSON.stringify({ version: "1.0.0'$(id)" }) })), '1.0.0___id_');
    const long = readVersion(app({ VERSION: 'v'.repeat(100) }));
    assert.equal(long, 'v'.repeat(40));
    for (const v of ['1.0 beta/2; rm -rf ~', 'ünïcödé', 'a\tb']) assert.match(readVersion(app({ VERSION: v })), RELEASE_NAME);
  });

  test('the sample app of the fixtures', () => {
    // Compiled to dist/test/unit/: the fixtures stay in test/fixtures/.
    const dir = fileURLToPath(new URL('../../../test/fixtures/app', import.meta.url));
    assert.equal(readVersion(dir), readFileSync(join(dir, 'VERSION'), 'utf8').trim());
  });
});
