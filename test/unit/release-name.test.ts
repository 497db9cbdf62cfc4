import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { DEFAULT_RELEASE_NAME, NO_DATA, RELEASE_NAME, readVersion, renderReleaseName, templateProblems, usesPlaceholder } from '../../src/release/name.js';

const HASH = '3fa9c2d1e0b7a6f5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1';

/** The default template, as a release of a source without git and without a database is named. */
const releaseName = (version: string, hash: string, now: Date) => renderReleaseName(DEFAULT_RELEASE_NAME, { now, version, hash, rev: undefined, data: NO_DATA });
const AT = new Date('2026-11-29T14:23:01Z');
const FACTS = { now: AT, version: '1.4.0', hash: HASH, rev: '9f3c2ab', data: '221' };

describe('releaseName (the default template)', () => {
  test('is <UTC date>-<UTC time>-<version>-<first 8 of the hash>', () => {
    assert.equal(DEFAULT_RELEASE_NAME, '{date}-{version}-{hash}');
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

describe('renderReleaseName: each placeholder', () => {
  test('{date} is the UTC time, sortable', () => assert.equal(renderReleaseName('{date}', FACTS), '2026.11.29-142301'));
  test('{version} is the version as read', () => assert.equal(renderReleaseName('v{version}-{hash}', FACTS), 'v1.4.0-3fa9c2d1'));
  test('{rev} is the short commit', () => assert.equal(renderReleaseName('{rev}', FACTS), '9f3c2ab'));
  test('{hash} is the first 8 of the content hash', () => assert.equal(renderReleaseName('{hash}', FACTS), '3fa9c2d1'));
  test('{data} is the data version, or nodata', () => {
    assert.equal(renderReleaseName('WS{data}-{rev}', FACTS), 'WS221-9f3c2ab');
    assert.equal(renderReleaseName('{data}-{hash}', { ...FACTS, data: NO_DATA }), 'nodata-3fa9c2d1');
  });
  test('seed 003\'s shape, {data}-{date}-{version}-{rev}, repeated placeholders and literal text', () => {
    assert.equal(renderReleaseName('{data}-{date}-{version}-{rev}', FACTS), '221-2026.11.29-142301-1.4.0-9f3c2ab');
    assert.equal(renderReleaseName('web_{rev}.{rev}+{hash}', FACTS), 'web_9f3c2ab.9f3c2ab+3fa9c2d1');
    assert.match(renderReleaseName('{data}-{date}-{version}-{rev}', FACTS), RELEASE_NAME);
  });
  test('{rev} without a revision is a bug of the caller, not a name with a hole', () => {
    assert.throws(() => renderReleaseName('{date}-{rev}', { ...FACTS, rev: undefined }), /no value for \{rev\}/);
  });
});

describe('templateProblems', () => {
  test('accepts the default and seed 003\'s template', () => {
    assert.deepEqual(templateProblems(DEFAULT_RELEASE_NAME), []);
    assert.deepEqual(templateProblems('{data}-{date}-{version}-{rev}'), []);
    assert.deepEqual(templateProblems('{rev}'), []);
  });
  test('names an unknown placeholder and lists the allowed ones', () => {
    assert.deepEqual(templateProblems('{date}-{commit}'), ['unknown placeholder {commit} (allowed: {data} {date} {version} {rev} {hash})']);
    assert.deepEqual(templateProblems('{date}-{Version}-{}'), [
      'unknown placeholder {Version} (allowed: {data} {date} {version} {rev} {hash})',
      'unknown placeholder {} (allowed: {data} {date} {version} {rev} {hash})',
    ]);
  });
  test('refuses literal text a directory name cannot hold', () => {
    for (const bad of ['{date} {hash}', '{date}/{hash}', '{hash};rm', '{date}-{hash}$x', '{date}{', 'x}{hash}']) {
      assert.ok(templateProblems(bad).some((p) => /only letters, digits/.test(p)), bad);
    }
  });
  test('refuses a template that could give two contents one name', () => {
    assert.deepEqual(templateProblems('{data}-{version}'), ['expected {date}, {hash} or {rev} in the name, so that different code never gets the same name']);
  });
  test('usesPlaceholder', () => {
    assert.equal(usesPlaceholder('{date}-{rev}', 'rev'), true);
    assert.equal(usesPlaceholder('{date}-{hash}', 'rev'), false);
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

  test('the git tag comes after VERSION and package.json', () => {
    assert.equal(readVersion(app({}), 'v2.1.0'), 'v2.1.0');
    assert.equal(readVersion(app({ 'package.json': '{"name":"web"}' }), 'v2.1.0'), 'v2.1.0');
    assert.equal(readVersion(app({ 'package.json': '{"version":"1.0.0"}' }), 'v2.1.0'), '1.0.0');
    assert.equal(readVersion(app({ VERSION: '3\n' }), 'v2.1.0'), '3');
    assert.equal(readVersion(app({}), 'release/2 beta'), 'release_2_beta');
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
