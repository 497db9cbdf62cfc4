/*
 * The plan's steps for data kept in files (copy-self): the read-only freeze of the HTTP frontends that
 * carry writes to the service (its own, and those of the tiers that start after it: a ZEO server's
 * writes come through its clients), the copy on each host, and the end of the freeze. The copy itself
 * is commands/files.ts.
 */
import type { Service, SlotName, Stage } from '../config/model.js';
import { readonlyKey } from '../config/slot.js';
import { copyFilesSelf } from '../commands/files.js';
import type { Action } from './plan.js';
import { slotContext, persistMap } from './build.js';

/**
 * The services in the run whose HTTP frontend writes reach `name` through: itself, and every service
 * that starts after it, directly or through another.
 */
export function freezeTargets(stage: Stage, name: string, inRun: readonly string[]): string[] {
  const reach = new Set([name]);
  for (let grew = true; grew;) {
    grew = false;
    for (const s of inRun) {
      if (!reach.has(s) && stage.services[s]!.after.some((d) => reach.has(d))) { reach.add(s); grew = true; }
    }
  }
  return [...reach].filter((s) => stage.services[s]?.listen !== undefined && stage.services[s]!.mode === 'http');
}

export function filesActions(stage: Stage, service: Service, live: SlotName, target: SlotName, release: string, stopIdle: (host: string) => string, frozen: readonly string[]) {
  const freeze = new Map<string, Action[]>();
  const unfreeze = new Map<string, Action[]>();
  const data = new Map<string, Action[]>();
  for (const lb of Object.values(stage.loadBalancers)) {
    if (frozen.length === 0) break;
    freeze.set(lb.name, [
      ...frozen.map((s): Action => ({ kind: 'set-map', loadBalancer: lb.name, file: lb.mapFile, entries: { [readonlyKey(s)]: 'on' }, title: `freeze writes to ${s} (read-only) while ${service.name}'s files are copied` })),
      persistMap(lb.mapFile, lb.name),
      {
        kind: 'settle', loadBalancer: lb.name, backends: frozen.map((s) => stage.services[s]!.slots[live].backend), deadlineMs: service.drainTimeoutMs,
        title: `wait for the requests to ${frozen.join(', ')} accepted before the freeze`,
      },
    ]);
    unfreeze.set(lb.name, [
      ...frozen.map((s): Action => ({ kind: 'set-map', loadBalancer: lb.name, file: lb.mapFile, entries: { [readonlyKey(s)]: 'off' }, title: `end the write freeze of ${s}` })),
      persistMap(lb.mapFile, lb.name),
    ]);
  }
  const files = service.files!;
  for (const h of service.hosts) {
    const ctx = slotContext(stage, service, stage.hosts[h]!, live, release);
    data.set(h, [
      { kind: 'exec', host: h, command: stopIdle(h), title: `stop idle slot ${service.name}/${target} on ${h} if running` },
      {
        kind: 'exec', host: h, command: copyFilesSelf(service, live, target, ctx),
        title: `${files.command ? `run "${files.command}" in ${service.name}/${live}'s files, ` : ''}copy ${files.paths.join(', ')} of ${service.name}/${live} into ${target} (rsync delta), verify size and SHA-256${frozen.length === 0 ? ' (no HTTP frontend to freeze: the command must make the copy consistent)' : ''}`,
      },
    ]);
  }
  return { freeze, unfreeze, data };
}
