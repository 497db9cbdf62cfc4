/* Git as a source, on a real repository made in a temporary directory (git is a local tool, no server). */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { checkoutRev, exportGitTree, resolveGitSource } from '../../src/release/git.js';
import type { CodeSource, Stage } from '../../src/config/model.js';
import { ConfigError } from '../../src/errors.js';

const base = mkdtempSync(join(tmpdir(), 'updateserver-git-'));
const repo = join(base, 'repo');
const git = (...args: string[]) => execFileSync('git', ['-C', repo, ...args], { encoding: 'utf8', env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@x', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@x' } }).trim();
mkdirSync(repo);
git('init', '-q', '-b', 'main');
writeFileSync(join(repo, 'server.mjs'), 'one\n');
git('add', '.');
git('commit', '-qm', 'one');
git('tag', 'v1.0.0');
const first = git('rev-parse', 'HEAD');
writeFileSync(join(repo, 'server.mjs'), 'two\n');
mkdirSync(join(repo, 'lib'));
writeFileSync(join(repo, 'lib', 'x.js'), 'x\n');
git('add', '.');
git('commit', '-qm', 'two');
git('tag', 'v1.1.0');
git('tag', 'v1.1.0-rc.1');
const second = git('rev-parse', 'HEAD');
after(() => rmSync(base, { recursive: true, force: true }));

const stage = { name: 'dev', file: 'profiles/dev.yaml' } as Stage;
const src = (ref: string): Extract<CodeSource, { kind: 'git' }> => ({ kind: 'git', repo, ref });

describe('resolveGitSource', () => {
  test('a tag: its commit, the short revision and the tag', async () => {
    assert.deepEqual(await resolveGitSource(stage, src('v1.0.0')), { commit: first, rev: first.slice(0, 7), tag: 'v1.0.0' });
  });
  test('a branch or a commit: the tag at that commit, the highest version when there are several', async () => {
    assert.deepEqual(await resolveGitSource(stage, src('main')), { commit: second, rev: second.slice(0, 7), tag: 'v1.1.0' });
    assert.deepEqual(await resolveGitSource(stage, src(first.slice(0, 10))), { commit: first, rev: first.slice(0, 7), tag: 'v1.0.0' });
    assert.equal((await resolveGitSource(stage, src('v1.1.0-rc.1'))).tag, 'v1.1.0-rc.1', 'the ref itself when it is one of the tags');
  });
  test('a commit without a tag has none', async () => {
    writeFileSync(join(repo, 'three'), '3\n');
    git('add', '.');
    git('commit', '-qm', 'three');
    assert.equal((await resolveGitSource(stage, src('main'))).tag, undefined);
    git('reset', '-q', '--hard', 'v1.1.0');
  });
  test('an unknown ref is bad input naming the profile, the ref and the repository', async () => {
    const err = await resolveGitSource(stage, src('v9.9.9')).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, new RegExp(`^profiles/dev.yaml: source.ref: unknown ref "v9.9.9" in git repository ${repo}: `));
    assert.equal(err.exitCode, 2);
    const norepo = await resolveGitSource(stage, { kind: 'git', repo: join(base, 'nothing'), ref: 'main' }).then(() => undefined, (e: unknown) => e);
    assert.ok(norepo instanceof ConfigError);
    assert.match(norepo.message, /unknown ref "main" in git repository .*nothing: .*(cannot change|No such file)/);
  });
});

test('exportGitTree writes the tree of the commit, without .git, and leaves the repository alone', async () => {
  const out = join(base, 'export');
  mkdirSync(out);
  await exportGitTree(repo, first, out);
  assert.deepEqual(readdirSync(out), ['server.mjs']);
  assert.equal(readFileSync(join(out, 'server.mjs'), 'utf8'), 'one\n');
  assert.equal(readFileSync(join(repo, 'server.mjs'), 'utf8'), 'two\n');
});

test('checkoutRev: HEAD of a checkout, +dirty with uncommitted changes, undefined outside git', async () => {
  assert.equal(await checkoutRev(repo), second.slice(0, 7));
  writeFileSync(join(repo, 'lib', 'x.js'), 'changed\n');
  assert.equal(await checkoutRev(join(repo, 'lib')), `${second.slice(0, 7)}+dirty`);
  git('checkout', '-q', '--', '.');
  const plain = join(base, 'plain');
  mkdirSync(plain);
  assert.equal(await checkoutRev(plain), undefined);
});
