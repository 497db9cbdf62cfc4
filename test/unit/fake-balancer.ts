/* A load balancer for the unit tests of the waits on in-flight requests (settle, draining the new slot). */
import type { Balancer } from '../../src/lb/balancer.js';

/** Its in-flight count follows `counts`, then stays at the last one; `asked` records each query's backends. */
export function sessionsBalancer(counts: number[]): Balancer & { asked: string[][] } {
  const asked: string[][] = [];
  return {
    name: 'lb', asked,
    async sessions(backends: readonly string[]) { asked.push([...backends]); return counts.length > 1 ? counts.shift()! : counts[0]!; },
  } as unknown as Balancer & { asked: string[][] };
}
