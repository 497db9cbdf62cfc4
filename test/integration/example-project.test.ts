/*
 * The repository is the example project: a clone of its committed HEAD holds everything the demo's
 * pipeline needs (profiles/ for dev, beta, test and prod, healthchecks/, migrations/web/,
 * lb-templates/, the sample app). From the clone's own files: `check --offline` passes for every
 * stage, the lab built from its profiles passes the online check, and releases go dev -> beta -> test
 * -> prod through every kind of health check, under load without a failed request; a broken release is
 * rolled back by its post-switch check. Lab net 180: the only change to the clone is its addresses
 * of hosts and load balancers (127.0.0.x -> 127.0.180.x) and database names (demo_ -> it180_), so it never meets a running demo.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cp, mkdtemp, readFile, readdir, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLoad } from '../lab/load.js';
import { REPO } from '../lab/pipeline.js';
import { sampleApp, startProjectLab, type ProjectLab } from '../lab/project-lab.js';
import { updateserver, type CliResult } from './cli.js';

const NET = 180;
const STAGES = ['dev', 'beta', 'test', 'prod'];

/** The clone's profiles moved to this test's lab net and database names; nothing else changes. */
async function relocate(project: string): Promise<void> {
  for (const file of await readdir(join(project, 'profiles'))) {
    const path = join(project, 'profiles', file);
    const text = await readFile(path, 'utf8');
    const moved = text.replace(/\baddress: 127\.0\.0\.(\d+)\b/g, `address: 127.0.${NET}.$1`).replace(/\bdemo_/g, `it${NET}_`);
    assert.notEqual(moved, text, `${file} names lab addresses`);
    await writeFile(path, moved);
  }
}

const ok = (r: CliResult, what: string) => assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);

test('a clone of the repository is a complete project: check --offline for every stage, then dev -> beta -> test -> prod from its own files', { timeout: 240_000 }, async () => {
  const tmp = await realpath(await mkdtemp(join(tmpdir(), 'updateserver-clone-')));
  const project = join(tmp, 'clone');
  let lab: ProjectLab | undefined;
  try {
    execFileSync('git', ['clone', '--quiet', REPO, project], { stdio: 'pipe' });
    for (const dir of ['profiles', 'healthchecks', 'migrations/web', 'lb-templates', 'test/fixtures/app']) {
      assert.ok((await readdir(join(project, dir))).length > 0, `the clone has ${dir}/`);
    }
    assert.deepEqual((await readdir(join(project, 'profiles'))).sort(), STAGES.map((s) => `${s}.yaml`).sort());
    await relocate(project);
    const stateDir = join(project, '.updateserver');
    lab = await startProjectLab({ dir: project, stateDir }, 'prod');
    assert.deepEqual(Object.keys(lab.stages), STAGES);
    const app = join(project, '.lab', 'app');
    await cp(join(project, 'test', 'fixtures', 'app'), app, { recursive: true });
    const run = (...args: string[]) => updateserver(project, ...args, '--state-dir', stateDir);

    for (const stage of STAGES) {
      const offline = await run('check', stage, '--offline');
      ok(offline, `check ${stage} --offline`);
      assert.match(offline.stdout, /profiles\s+valid/);
      assert.match(offline.stdout, /migrations web\s+files\s+2 in /);
    }
    ok(await run('check', 'prod'), 'check prod (online)');
    // The first command a newcomer types, before anything was released: what to do, not a stack trace.
    const early = await run('prod', '--dry-run');
    assert.equal(early.code, 1, early.stderr);
    assert.match(early.stderr, /test has no live web database yet \(postgres:\/\/postgres@127\.0\.0\.1:5432\/it180_web_test_a does not exist\), so prod has nothing to copy\n\s+what to do: promote test first: updateserver test/);

    // Release 1.0.0 down the whole pipeline; every check kind of healthchecks/web.yaml runs.
    for (const stage of STAGES) {
      const r = await run(stage);
      ok(r, `updateserver ${stage}`);
      for (const check of ['pre check health', 'pre check port', 'pre check release-files', 'pre check schema', 'post check new-slot-serves', 'post check echo', 'post check frontend']) {
        assert.match(r.stderr, new RegExp(`${check} on [^\\n]*: ok`), `${stage}: ${check}`);
      }
    }
    assert.equal((await sampleApp(lab.url('prod'))).version, '1.0.0');

    // 1.1.0 down the pipeline; prod's promotion under load loses no request.
    await writeFile(join(app, 'VERSION'), '1.1.0\n');
    for (const stage of ['dev', 'beta', 'test']) ok(await run(stage), `updateserver ${stage} (1.1.0)`);
    const load = startLoad(lab.url('prod'), { connections: 4 });
    await new Promise((r) => setTimeout(r, 300));
    const promoted = await run('prod');
    await new Promise((r) => setTimeout(r, 300));
    const result = await load.stop();
    ok(promoted, 'updateserver prod (1.1.0)');
    assert.equal(result.non2xx + result.errors + result.timeouts, 0, JSON.stringify(result));
    assert.ok(result.requests > 50, `load ran: ${result.requests} requests`);
    assert.equal((await sampleApp(lab.url('prod'))).version, '1.1.0');

    // A release whose POST /echo is gone passes the pre checks but not the post ones: back by itself.
    const server = join(app, 'server.mjs');
    const code = await readFile(server, 'utf8');
    await writeFile(server, code.replace("url.pathname === '/echo'", "url.pathname === '/echo/v2'"));
    await writeFile(join(app, 'VERSION'), '1.2.0\n');
    const broken = await run('dev');
    assert.equal(broken.code, 1, broken.stderr);
    assert.match(broken.stderr, /post check echo on lb[^\n]*FAILED/);
    assert.match(broken.stderr, /automatic rollback/);
    assert.equal((await sampleApp(lab.url('dev'))).version, '1.1.0');

    const status = await run('status', 'prod');
    ok(status, 'status prod');
    assert.match(status.stdout, /web: live slot a/);
  } finally {
    await lab?.stop();
    await rm(tmp, { recursive: true, force: true });
  }
});
