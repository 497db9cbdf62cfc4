/*
 * The wait after a write freeze (copy-self): the copy starts only once no request accepted before
 * the freeze is in flight on the live backend, and not at all when one still is at the deadline.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runAction } from '../../src/apply/actions.js';
import type { ApplyContext } from '../../src/apply/context.js';
import type { Balancer } from '../../src/lb/balancer.js';
import { sessionsBalancer as balancer } from './fake-balancer.js';
import { silentLogger } from '../../src/log.js';

const ctx = (lb: Balancer) => ({ balancers: { lb }, logger: silentLogger, warnings: [], reports: [] }) as unknown as ApplyContext;
const action = (deadlineMs: number) => ({ kind: 'settle' as const, loadBalancer: 'lb', backends: ['web_a'], deadlineMs, title: 'settle' });

test('settle returns at the first sample with nothing in flight on the live backend', async () => {
  const lb = balancer([2, 1, 0, 5]);
  await runAction(ctx(lb), action(5_000));
  assert.deepEqual(lb.asked, [['web_a'], ['web_a'], ['web_a']]);
});

test('settle refuses to go on while a request accepted before the freeze is still in flight at the deadline', async () => {
  const lb = balancer([1]);
  const started = Date.now();
  await assert.rejects(runAction(ctx(lb), action(100)), /lb: 1 request\(s\) still in flight on web_a 100 ms after the write freeze; a write among them could commit after the snapshot/);
  assert.ok(Date.now() - started >= 100);
});
