/*
 * Issue 23: what a blocked slot database needs (per strategy) and where a stage's migrations run, as
 * `migrate status` and `check` say them. The same sentences are run end to end in
 * test/integration/data-path.ts on PostgreSQL and MariaDB.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Database, Stage } from '../../src/config/model.js';
import { blockedAdvice } from '../../src/cli/migrate.js';
import { whereMigrationsRun } from '../../src/check/offline.js';

const stage = (strategy: Database['strategy'], from?: string): Stage => ({
  name: 'beta', from,
  services: { web: { name: 'web', database: { engine: 'postgres', strategy, names: { a: 'web_beta_a', b: strategy === 'shared' ? 'web_beta_a' : 'web_beta_b' } } } },
} as unknown as Stage);

test('a copied idle database is fixed in the file, never resolved: the next promotion copies it afresh', () => {
  assert.equal(blockedAdvice(stage('copy', 'dev'), 'web', 'b', false, 4),
    'the next promotion replaces this database with a fresh copy of dev\'s live database, so do not resolve it: fix the migration file (or the data in dev\'s live database) and run again: updateserver beta');
  assert.match(blockedAdvice(stage('copy-self'), 'web', 'b', false, 4), /fresh copy of this stage's live database, so do not resolve it/);
});

test('a kept database (first stage, shared, a live one) is repaired and resolved: seed 000', () => {
  const resolve = 'this database is kept (the next run migrates it as it is): repair it by hand (finish or undo version 4), then: updateserver migrate resolve beta web 4 --slot b';
  assert.equal(blockedAdvice(stage('copy'), 'web', 'b', false, 4), resolve);
  assert.equal(blockedAdvice(stage('shared'), 'web', 'b', false, 4), resolve);
  assert.equal(blockedAdvice(stage('copy', 'dev'), 'web', 'b', true, 4), resolve);
});

test('check says where migrations run, per strategy', () => {
  assert.match(whereMigrationsRun(stage('copy'), 'web'), /^first stage \(strategy copy, nothing to copy from\): each slot keeps its own database \(web_beta_a, web_beta_b\)/);
  assert.match(whereMigrationsRun(stage('copy', 'dev'), 'web'), /a migration runs in the first stage that receives it and later stages inherit its result through the copy, so one added after dev's last promotion runs first in beta/);
  assert.match(whereMigrationsRun(stage('copy-self'), 'web'), /^strategy copy-self: each promotion copies beta's live database/);
  assert.match(whereMigrationsRun(stage('shared'), 'web'), /^strategy shared: both slots use web_beta_a/);
});
