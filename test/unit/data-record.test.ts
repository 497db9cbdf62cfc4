/*
 * The data version in the release record: what the data step left in a slot's database is kept per
 * slot in the stage's state and in the history line of the run, and shown by status and history.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Stage } from '../../src/config/model.js';
import type { Plan } from '../../src/plan/plan.js';
import { appendRun, recordSwitch } from '../../src/promote/record.js';
import { FileStateStore as StateStore, describeData, type DataRecord } from '../../src/state/store.js';
import { renderStatus } from '../../src/status/status.js';

const COPIED: DataRecord = { database: 'web_beta_b', version: 3, snapshot: { stage: 'dev', slot: 'a', database: 'web_dev_a', tables: 2, rows: 1005 } };

const plan = (live: 'a' | 'b'): Plan => ({
  version: 1, action: 'promote', stage: 'beta', from: 'dev', createdAt: '2026-11-29T12:00:00.000Z', phases: [], liveAfter: { web: live === 'a' ? 'b' : 'a' },
  services: [{ service: 'web', live, target: live === 'a' ? 'b' : 'a', release: 'r2', liveRelease: 'r1', source: 'dev', hosts: ['h1'] }],
} as unknown as Plan);

test('describeData names the version and the snapshot it came from', () => {
  assert.equal(describeData(COPIED), 'version 3, snapshot of dev slot a (1005 rows in 2 tables)');
  assert.equal(describeData({ database: 'web_beta_a', version: null }), 'version none');
});

test('a switch records the new slot\'s data version next to the old slot\'s, and the history line carries it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'updateserver-record-'));
  try {
    const store = new StateStore(dir);
    const stage = { name: 'beta' } as Stage;
    const old: DataRecord = { database: 'web_beta_a', version: 2 };
    await recordSwitch(store, stage, plan('b'), undefined, new Date(), { data: { web: old } });
    await recordSwitch(store, stage, plan('a'), await store.read('beta'), new Date(), { data: { web: COPIED } });
    assert.deepEqual((await store.read('beta'))?.services.web?.data, { a: old, b: COPIED });
    // A run without a data step (a flip) keeps what was recorded.
    await recordSwitch(store, stage, plan('b'), await store.read('beta'), new Date());
    assert.deepEqual((await store.read('beta'))?.services.web?.data, { a: old, b: COPIED });
    await appendRun(store, plan('a'), 'ok', 10, new Date(), undefined, { data: { web: COPIED } });
    const [entry] = await store.history('beta', 1);
    assert.deepEqual(entry?.services.web, { from: 'a', to: 'b', release: 'r2', data: COPIED });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('status shows each slot\'s data version', () => {
  const text = renderStatus({
    stage: 'beta', problems: [], last: undefined,
    services: [{ service: 'web', loadBalancers: { lb: 'b' }, recorded: 'b', hosts: {}, backends: {}, data: { a: { database: 'web_beta_a', version: 2 }, b: COPIED } }],
  });
  assert.match(text, /^ {4}data slot a: web_beta_a version 2$/m);
  assert.match(text, /^ {4}data slot b: web_beta_b version 3, snapshot of dev slot a \(1005 rows in 2 tables\)$/m);
});
