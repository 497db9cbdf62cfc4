/*
 * The broken health-check corpus: every case under test/fixtures/healthchecks/broken/<case>/ is laid
 * over a valid project (test/fixtures/healthchecks/base/) and is wrong in exactly one way, mostly in
 * healthchecks/web.yaml. Each goes through the real loader (loadPipeline, as the CLI does) and must be
 * refused with a ConfigError (exit status 2) naming the file, the path and the line of the problem.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { loadPipeline } from '../../src/config/load.js';
import { ConfigError, EXIT_BAD_INPUT } from '../../src/errors.js';
import { HEALTHCHECK_CASES, HEALTHCHECK_CORPUS, healthcheckProject } from './healthchecks-corpus-cases.js';

const loadProd = (dir: string) => loadPipeline({ dir, stateDir: join(dir, '.updateserver') }, 'prod');

test('the base project of the health-check corpus loads (so each case fails for its own reason)', async () => {
  const dir = await healthcheckProject(undefined);
  try {
    const [stage] = await loadProd(dir);
    assert.deepEqual(stage!.services.web!.checks.pre.map((c) => c.name), ['health', 'port']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

for (const c of HEALTHCHECK_CASES) {
  test(`broken health checks ${c.case}: ${c.file} ${c.path || '(file)'} is refused`, async () => {
    assert.ok(existsSync(join(HEALTHCHECK_CORPUS, 'broken', c.case)), `missing fixture ${c.case}`);
    const dir = await healthcheckProject(c.case);
    try {
      const err = await loadProd(dir).then(() => assert.fail(`${c.case}: accepted`), (e: unknown) => e);
      assert.ok(err instanceof ConfigError, `${c.case}: expected a ConfigError, got ${String(err)}`);
      assert.equal(err.exitCode, EXIT_BAD_INPUT);
      const issue = err.issues.find((i) => i.file === c.file && i.path === c.path && i.message.includes(c.message));
      assert.ok(issue, `${c.case}: no issue ${c.file} ${c.path}: ...${c.message}...; got:\n${err.message}`);
      assert.equal(issue.line, c.line, `${c.case}: wrong line; got:\n${err.message}`);
      assert.ok(err.message.includes(`${c.file}${c.line === undefined ? '' : `:${c.line}`}: `), err.message);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}

test('the health-check corpus has a case for every fixture directory and at least 12 cases', async () => {
  const dirs = (await readdir(join(HEALTHCHECK_CORPUS, 'broken'))).sort();
  assert.deepEqual(dirs, HEALTHCHECK_CASES.map((c) => c.case).sort());
  assert.ok(HEALTHCHECK_CASES.length >= 12);
});
