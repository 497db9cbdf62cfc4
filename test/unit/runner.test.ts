import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { allLimited, eachLimited, limiter } from '../../src/transport/runner.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A fn that records how many calls are in flight at once, and the order calls start and end in. */
function tracked<T>(body: (item: number) => Promise<T>) {
  const state = { inFlight: 0, peak: 0, started: [] as number[], finished: [] as number[] };
  const fn = async (item: number): Promise<T> => {
    state.inFlight++;
    state.peak = Math.max(state.peak, state.inFlight);
    state.started.push(item);
    try {
      return await body(item);
    } finally {
      state.inFlight--;
      state.finished.push(item);
    }
  };
  return { state, fn };
}

const items = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('eachLimited', () => {
  for (const limit of [1, 2, 3, 5]) {
    test(`never has more than ${limit} call(s) in flight, and reaches ${limit}`, async () => {
      // Uneven durations, so that workers pick items up at different times.
      const { state, fn } = tracked(async (i) => { await sleep(5 + ((i * 7) % 4) * 5); return i * 10; });
      const results = await eachLimited(items(12), limit, fn);
      assert.equal(state.peak, limit);
      assert.equal(state.inFlight, 0);
      assert.deepEqual(results, items(12).map((i) => ({ status: 'fulfilled', value: i * 10 })));
    });
  }

  test('a limit larger than the list runs everything at once', async () => {
    const { state, fn } = tracked(async () => sleep(10));
    await eachLimited(items(4), 16, fn);
    assert.equal(state.peak, 4);
  });

  test('limit 1 runs the items in turn, in order', async () => {
    const { state, fn } = tracked(async (i) => sleep(i % 2 === 0 ? 10 : 1));
    await eachLimited(items(6), 1, fn);
    assert.deepEqual(state.started, items(6));
    assert.deepEqual(state.finished, items(6));
  });

  test('items start in list order', async () => {
    const { state, fn } = tracked(async (i) => sleep(20 - i));
    await eachLimited(items(10), 3, fn);
    assert.deepEqual(state.started, items(10));
  });

  test('results are in item order, whatever order the calls end in', async () => {
    const results = await eachLimited(['slow', 'fast', 'medium'], 3, async (s) => {
      await sleep({ slow: 30, fast: 1, medium: 10 }[s] ?? 0);
      return s.toUpperCase();
    });
    assert.deepEqual(results.map((r) => r.status === 'fulfilled' && r.value), ['SLOW', 'FAST', 'MEDIUM']);
  });

  test('every item runs even when some fail; failures are collected with their reasons', async () => {
    const boom = new Error('h2 unreachable');
    const { state, fn } = tracked(async (i) => {
      await sleep(2);
      if (i === 1) throw boom;
      if (i === 3) throw new Error('h4 failed');
      return `ok ${i}`;
    });
    const results = await eachLimited(items(6), 2, fn);
    assert.deepEqual([...state.finished].sort(), items(6));
    assert.equal(results.length, 6);
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    assert.equal(results[1]?.status === 'rejected' && results[1].reason, boom);
    assert.equal(results[3]?.status === 'rejected' && (results[3].reason as Error).message, 'h4 failed');
  });

  test('a function that throws synchronously is a failure of its item, not of the run', async () => {
    const results = await eachLimited([1, 2, 3], 2, (i) => {
      if (i === 2) throw new Error('sync');
      return Promise.resolve(i);
    });
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
  });

  test('an empty list resolves to an empty list without calling fn', async () => {
    let calls = 0;
    assert.deepEqual(await eachLimited([], 4, async () => { calls++; }), []);
    assert.equal(calls, 0);
  });

  test('a limit below 1 still runs every item, one at a time', async () => {
    for (const limit of [0, -3]) {
      const { state, fn } = tracked(async () => sleep(1));
      const results = await eachLimited(items(3), limit, fn);
      assert.equal(results.length, 3);
      assert.equal(state.peak, 1);
    }
  });
});

describe('allLimited', () => {
  test('resolves with the values in item order', async () => {
    assert.deepEqual(await allLimited(['h1', 'h2', 'h3'], 2, async (h) => { await sleep(h === 'h1' ? 15 : 1); return `${h}!`; }), ['h1!', 'h2!', 'h3!']);
  });

  test('respects the limit', async () => {
    const { state, fn } = tracked(async () => sleep(5));
    await allLimited(items(9), 3, fn);
    assert.equal(state.peak, 3);
  });

  test('throws the first failure in item order, not the first in time', async () => {
    const first = new Error('item 1 (fails late)');
    const second = new Error('item 3 (fails early)');
    await assert.rejects(allLimited(items(5), 5, async (i) => {
      if (i === 1) { await sleep(30); throw first; }
      if (i === 3) { await sleep(1); throw second; }
      return i;
    }), (err) => err === first);
  });

  test('throws only once every item has settled, so no step is left half-running', async () => {
    const { state, fn } = tracked(async (i) => {
      await sleep(i === 0 ? 1 : 20);
      if (i === 0) throw new Error('first item fails at once');
      return i;
    });
    await assert.rejects(allLimited(items(6), 2, fn), /first item fails at once/);
    assert.equal(state.inFlight, 0);
    assert.deepEqual([...state.finished].sort(), items(6));
  });

  test('rethrows the failure itself (same object, any type)', async () => {
    const reason = { code: 'not-an-error' };
    await assert.rejects(allLimited([1], 1, async () => { throw reason; }), (err) => err === reason);
  });

  test('an empty list resolves to an empty list', async () => {
    assert.deepEqual(await allLimited([], 3, async () => 1), []);
  });
});

test('limiter: work arriving over time runs at most `limit` at once, every piece runs, and a failure frees its place', async () => {
  const run = limiter(2);
  let now = 0;
  let most = 0;
  const piece = (ms: number, fail = false) => run(async () => {
    now += 1;
    most = Math.max(most, now);
    await new Promise((r) => setTimeout(r, ms));
    now -= 1;
    if (fail) throw new Error('piece failed');
    return ms;
  });
  const results = await Promise.allSettled([piece(20), piece(5, true), piece(10), piece(1), piece(1)]);
  assert.equal(most, 2);
  assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled']);
  assert.equal(now, 0);
});
