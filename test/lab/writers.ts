/*
 * Clients that write through a load balancer to the sample app's POST /rows (test/fixtures/app), each
 * sending one key after the other on a new connection, until stopped. A 201 is an acknowledged write:
 * its key must be in the database afterwards. A 503 (the read-only freeze) is retried after 20 ms.
 */
export interface WriteResult {
  acked: string[];
  /** Responses by status (or `error <message>` for requests without one). */
  statuses: Record<string, number>;
  /** Acknowledged writes by the slot that made them (X-Slot): both, when the writes spanned a switch. */
  bySlot: Record<string, number>;
  firstRefusal: string | undefined;
}

/** Clients POSTing keys to /rows through HAProxy until stopped; a 201 is an acknowledged write. */
export function startWriters(url: string, prefix: string, clients = 2): { stop(): Promise<WriteResult>; until(done: (r: WriteResult) => boolean, timeoutMs: number): Promise<boolean> } {
  let stopped = false;
  const result: WriteResult = { acked: [], statuses: {}, bySlot: {}, firstRefusal: undefined };
  const count = (k: string) => { result.statuses[k] = (result.statuses[k] ?? 0) + 1; };
  const loop = async (c: number) => {
    for (let i = 0; !stopped; i++) {
      const key = `${prefix}-${c}-${i}`;
      try {
        const res = await fetch(`${url}/rows`, { method: 'POST', body: key, headers: { connection: 'close' }, signal: AbortSignal.timeout(10_000) });
        const body = await res.text();
        count(String(res.status));
        if (res.status === 201) {
          result.acked.push(key);
          const slot = res.headers.get('x-slot') ?? '?';
          result.bySlot[slot] = (result.bySlot[slot] ?? 0) + 1;
        }
        else if (res.status === 503) {
          result.firstRefusal ??= body;
          await new Promise((r) => setTimeout(r, 20));
        }
      } catch (err) {
        count(`error ${(err as Error).message}`);
      }
    }
  };
  const runs = Array.from({ length: clients }, (_, c) => loop(c));
  return {
    async stop() { stopped = true; await Promise.all(runs); return result; },
    /** Waits (polling) until the writes so far satisfy `done`, at most timeoutMs: whether they did. */
    async until(done, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (!done(result) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      return done(result);
    },
  };
}
