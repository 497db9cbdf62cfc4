/*
 * The repository is the example project the demo runs: seed 004's pipeline dev -> beta -> test -> prod,
 * each stage with its own hosts and load balancer, every service with a database and the health checks
 * of healthchecks/web.yaml (one of each kind the sample app answers), and migrations/web/.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPipeline } from '../../src/config/load.js';
import { checkKind } from '../../src/config/healthchecks.js';
import { loadMigrations } from '../../src/data/migrations/files.js';
import { PACKAGE_DIR } from '../../src/package-dir.js';

test('profiles/ holds dev -> beta -> test -> prod; each stage its own hosts, addresses and databases; every check kind', async () => {
  const stateDir = await mkdtemp(join(tmpdir(), 'updateserver-example-'));
  try {
    const pipeline = (await loadPipeline({ dir: PACKAGE_DIR, stateDir }, 'prod')).reverse();
    assert.deepEqual(pipeline.map((s) => [s.name, s.from]), [['dev', undefined], ['beta', 'dev'], ['test', 'beta'], ['prod', 'test']]);
    const addresses = pipeline.flatMap((s) => [...Object.values(s.hosts).map((h) => h.address), ...Object.values(s.loadBalancers).map((lb) => lb.address)]);
    assert.equal(new Set(addresses).size, addresses.length, `every host and load balancer has its own address: ${addresses.join(' ')}`);
    const databases = pipeline.flatMap((s) => Object.values(s.services).flatMap((svc) => [...new Set(Object.values(svc.database?.names ?? {}))]));
    assert.equal(new Set(databases).size, databases.length, 'no two stages share a database');
    for (const stage of pipeline) {
      const web = stage.services.web!;
      assert.equal(web.database?.engine, 'postgres', stage.name);
      assert.deepEqual(new Set(web.checks.pre.map(checkKind)), new Set(['http', 'tcp', 'command', 'sql']), `${stage.name}: pre checks of every kind`);
      assert.ok(web.checks.post.length > 0 && web.checks.watch.checks.length > 0 && web.checks.watch.windowMs > 0, `${stage.name}: post and watch checks`);
      const migrations = await loadMigrations(web.database!.migrations);
      assert.deepEqual(migrations.map((m) => m.version), [1, 2]);
    }
  } finally {
    await rm(stateDir, { recursive: true, force: true });
  }
});
