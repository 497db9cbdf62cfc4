/*
 * After a failed switch or an automatic rollback, the requests the new slot received in the meantime
 * are let finish before it is stopped (found by the reliability suite: a write that reached the new
 * slot in those milliseconds failed with 500 when the stop cut it off).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { drainNew } from '../../src/apply/apply.js';
import type { ApplyContext } from '../../src/apply/context.js';
import type { Balancer } from '../../src/lb/balancer.js';
import { sessionsBalancer as balancer } from './fake-balancer.js';
import type { Plan } from '../../src/plan/plan.js';

function context(balancers: Record<string, Balancer>, drainTimeoutMs: number) {
  const warned: string[] = [];
  const logger = { debug() {}, info() {}, warn(m: string) { warned.push(m); }, error() {} };
  const ctx = { balancers, logger, warnings: [], reports: [], stage: { services: { web: { drainTimeoutMs } } } } as unknown as ApplyContext;
  return { ctx, warned };
}
const plan = { services: [{ service: 'web', live: 'a', target: 'b' }] } as unknown as Plan;

test('waits on every named load balancer until the new slot\'s backend has no request open', async () => {
  const lb = balancer([2, 1, 0]);
  const lb2 = balancer([0]);
  const { ctx, warned } = context({ lb, lb2 }, 5000);
  await drainNew(ctx, plan, ['lb', 'lb2']);
  assert.deepEqual(lb.asked, [['web_b'], ['web_b'], ['web_b']]);
  assert.deepEqual(lb2.asked, [['web_b']]);
  assert.deepEqual(warned, []);
});

test('gives up at the service\'s drainTimeoutMs and says so; a load balancer that cannot be asked is only logged', async () => {
  const lb = balancer([1]);
  const broken = { name: 'lb2', async sessions() { throw new Error('socket gone'); } } as unknown as Balancer;
  const { ctx, warned } = context({ lb, lb2: broken }, 100);
  const started = Date.now();
  await drainNew(ctx, plan, ['lb', 'lb2']);
  assert.ok(Date.now() - started >= 100);
  assert.deepEqual(warned.sort(), [
    'lb2: could not wait for the new slot\'s requests to finish: socket gone',
    'lb: 1 request(s) still open on the new slot after 100 ms; stopping it anyway',
  ]);
});
