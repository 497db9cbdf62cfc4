/*
 * The release mail's words (issue 19): subject and body from the plan and what the run knew, the file
 * changes counted from two manifests; and `vars` in config templates, escaped for the renderer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mailBody, mailSubject, type RunSummary } from '../../src/notify/email.js';
import { commitsBetween, compareManifests } from '../../src/notify/changes.js';
import { varsScript } from '../../src/commands/config-files.js';
import type { Plan } from '../../src/plan/plan.js';

const h = (c: string) => c.repeat(64);
const PLAN = {
  version: 1, action: 'promote', stage: 'prod', from: 'beta', createdAt: '2026-12-04T10:00:00Z', phases: [], liveAfter: { web: 'b' },
  services: [{ service: 'web', live: 'a', target: 'b', release: '2026.12.04-100000-1.4.0-3fa9c2d1', liveRelease: '2026.12.01-090000-1.3.0-00c0ffee', source: 'beta', hosts: ['h1'] }],
} as unknown as Plan;

test('the subject names the stage, each release and the result', () => {
  const base: RunSummary = { plan: PLAN, runId: 'r1', result: 'ok', durationMs: 12_345 };
  assert.equal(mailSubject(base), '[updateserver] prod: web 2026.12.04-100000-1.4.0-3fa9c2d1 promoted');
  assert.equal(mailSubject({ ...base, result: 'rolled back' }), '[updateserver] prod: web 2026.12.04-100000-1.4.0-3fa9c2d1 ROLLED BACK');
  assert.equal(mailSubject({ ...base, plan: { ...PLAN, action: 'rollback' } }), '[updateserver] prod: web 2026.12.04-100000-1.4.0-3fa9c2d1 rolled back');
});

test('the body gives stage, result, duration, run, slots, previous release, data version, changes and the error', () => {
  const body = mailBody({
    plan: PLAN, runId: 'r1', result: 'failed', durationMs: 12_345, error: 'check failed\nsecond line',
    data: { web: { database: 'web_prod_b', version: 7 } },
    changes: [{ service: 'web', from: '2026.12.01-090000-1.3.0-00c0ffee', to: '2026.12.04-100000-1.4.0-3fa9c2d1', files: { added: 2, changed: 3, removed: 1 }, commits: ['3fa9c2d Fix the cart', 'aa11bb2 Faster search'] }],
  });
  for (const line of [
    'Stage:    prod (promote from beta)', 'Result:   failed', 'Duration: 12.3 s', 'Run:      r1 by ',
    '  web: release 2026.12.04-100000-1.4.0-3fa9c2d1', '    slot a -> b; previous release 2026.12.01-090000-1.3.0-00c0ffee',
    '    data version 7 (database web_prod_b)', 'Changes of web since 2026.12.01-090000-1.3.0-00c0ffee:',
    '  files: 2 added, 3 changed, 1 removed', '  commits (2):', '    3fa9c2d Fix the cart', 'Error:', '  check failed', '  second line',
  ]) assert.ok(body.includes(line), `missing "${line}" in:\n${body}`);
});

test('file changes are counted from the two manifests', () => {
  const before = `${h('a')}  app.js\n${h('b')}  lib/x.js\n${h('c')}  old.txt\n`;
  const after = `${h('a')}  app.js\n${h('d')}  lib/x.js\n${h('e')}  new.txt\n${h('f')}  also new.txt\n`;
  assert.deepEqual(compareManifests(before, after), { added: 2, changed: 1, removed: 1 });
  assert.deepEqual(compareManifests(after, after), { added: 0, changed: 0, removed: 0 });
});

test('vars in config templates: any single-line text arrives as written; other braces are left alone', () => {
  const script = varsScript({ url: 'https://x.example/?a=1&b=2|3', path: 'C:\\dir', empty: '' }).join('; ');
  const out = execFileSync('sed', ['-e', script], { input: '{vars.url} {vars.path} [{vars.empty}] {vars.other} {varsXurl}\n', encoding: 'utf8' });
  assert.equal(out, 'https://x.example/?a=1&b=2|3 C:\\dir [] {vars.other} {varsXurl}\n');
});

test('commits between two releases: from the commits their names carry ({rev}, told from {hash} by the repository), as git log --oneline prints them', async () => {
  const { mkdtemp, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const repo = await mkdtemp(join(tmpdir(), 'updateserver-git-'));
  try {
    const git = (...args: string[]) => execFileSync('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@e.x', ...args], { encoding: 'utf8' }).trim();
    git('init', '-q');
    const revs = ['one', 'two', 'three'].map((m) => { git('commit', '-q', '--allow-empty', '-m', m); return git('rev-parse', '--short=7', 'HEAD'); });
    const lines = await commitsBetween(repo, `2026.12.01-090000-1.0.0-${revs[0]}-3fa9c2d1`, `2026.12.04-100000-1.1.0-deadbeef-${revs[2]}`);
    assert.deepEqual(lines, [`${revs[2]} three`, `${revs[1]} two`]);
    assert.equal(await commitsBetween(repo, '2026.12.01-090000-1.0.0', `x-${revs[2]}`), undefined, 'no commit in a name: no list');
  } finally {
    await rm(repo, { recursive: true, force: true });
  }
});
