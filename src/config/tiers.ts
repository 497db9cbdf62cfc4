/*
 * Tiers: `after: [zeo]` says a service's idle slot starts only once zeo's has started and passed its pre
 * checks. Services are put in tiers (tier 0 depends on nothing; tier n on tiers below it); the plan
 * starts and checks tier by tier, and stops the old slots in the reverse order. A cycle has no order
 * and is a profile error that names it.
 */

interface Node { after: readonly string[] }

/** A cycle of `after` among the services, as the names along it (first repeated at the end); undefined when none. */
export function findCycle(services: Readonly<Record<string, Node>>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (name: string): string[] | undefined => {
    if (state.get(name) === 'done' || !Object.hasOwn(services, name)) return undefined;
    if (state.get(name) === 'open') return [...path.slice(path.indexOf(name)), name];
    state.set(name, 'open');
    path.push(name);
    for (const dep of services[name]!.after) {
      const cycle = visit(dep);
      if (cycle) return cycle;
    }
    path.pop();
    state.set(name, 'done');
    return undefined;
  };
  for (const name of Object.keys(services)) {
    const cycle = visit(name);
    if (cycle) return cycle;
  }
  return undefined;
}

/**
 * The given services in tiers, in dependency order: each tier's services depend only on services of
 * earlier tiers (or on services outside `names`). Within a tier the given order is kept.
 */
export function tiersOf(services: Readonly<Record<string, Node>>, names: readonly string[]): string[][] {
  const level = new Map<string, number>();
  const depth = (name: string, seen: ReadonlySet<string>): number => {
    const known = level.get(name);
    if (known !== undefined) return known;
    if (seen.has(name)) throw new Error(`internal: cycle through ${name} (the profile check refuses cycles)`);
    const deps = (Object.hasOwn(services, name) ? services[name]!.after : []).filter((d) => names.includes(d));
    const d = deps.length === 0 ? 0 : 1 + Math.max(...deps.map((x) => depth(x, new Set([...seen, name]))));
    level.set(name, d);
    return d;
  };
  const tiers: string[][] = [];
  for (const name of names) (tiers[depth(name, new Set())] ??= []).push(name);
  return tiers.filter((t) => t !== undefined);
}
