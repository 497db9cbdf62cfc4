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

/** Like Promise.all, but waits for every promise to settle before throwing the first failure. */
export async function settleAll<T>(promises: ReadonlyArray<Promise<T> | undefined>): Promise<Array<T | undefined>> {
  const settled = await Promise.allSettled(promises.map((p) => p ?? Promise.resolve(undefined)));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((r) => (r as PromiseFulfilledResult<T | undefined>).value);
}
