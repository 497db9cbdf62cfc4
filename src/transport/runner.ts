/*
 * How many hosts are worked on at once. `parallel: 1` in a profile updates each machine in turn
 * (seed 001); larger values bound SSH concurrency on big fleets.
 */

export interface HostOutcome<T> { host: string; ok: boolean; value?: T; error?: unknown }

/** Runs fn for every item with at most `limit` in flight. Every item runs to completion; failures are collected, not short-circuited. */
export async function eachLimited<I, T>(items: readonly I[], limit: number, fn: (item: I) => Promise<T>): Promise<PromiseSettledResult<T>[]> {
  const results: PromiseSettledResult<T>[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        results[i] = { status: 'fulfilled', value: await fn(items[i] as I) };
      } catch (reason) {
        results[i] = { status: 'rejected', reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}

/** Like eachLimited but throws the first failure (in item order) once all have settled, so no step is left half-running. */
export async function allLimited<I, T>(items: readonly I[], limit: number, fn: (item: I) => Promise<T>): Promise<T[]> {
  const settled = await eachLimited(items, limit, fn);
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((r) => (r as PromiseFulfilledResult<T>).value);
}

/**
 * A bound shared by work that arrives over time: `run(fn)` starts fn when fewer than `limit` are in
 * flight, else when one ends.
 */
export function limiter(limit: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: Array<() => void> = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    if (active >= Math.max(1, limit)) await new Promise<void>((go) => waiting.push(go));
    else active += 1;
    try {
      return await fn();
    } finally {
      // The slot passes straight to the next waiter, or is given back.
      const next = waiting.shift();
      if (next) next();
      else active -= 1;
    }
  };
}

/** Like Promise.all, but waits for every promise to settle before throwing the first failure. */
export async function settleAll<T>(promises: ReadonlyArray<Promise<T> | undefined>): Promise<Array<T | undefined>> {
  const settled = await Promise.allSettled(promises.map((p) => p ?? Promise.resolve(undefined)));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((r) => (r as PromiseFulfilledResult<T | undefined>).value);
}
