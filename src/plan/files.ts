/*
 * The plan's steps for data kept in files (copy-self): the read-only freeze of the HTTP frontends that
 * carry writes to the service (its own, and those of the tiers that start after it: a ZEO server's
 * writes come through its clients), the copy on each host, and the end of the freeze. The copy itself
 * is commands/files.ts.
 */
import type { Host, Service, SlotName, Stage } from '../config/model.js';
import { readonlyKey } from '../config/slot.js';
import { copyFilesSelf, DIGEST, filesDir, remoteDigest, snapshotCommand, snapshotDir } from '../commands/files.js';
import { remoteSpec, rsyncArgv, sshCommand } from '../commands/rsync.js';
import { quote } from '../commands/shell.js';
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

/** Where the previous stage's files are read: its live slot on its first host of the service. */
export interface FilesSource { stage: string; host: Host; root: string; slot: SlotName }

/**
 * files strategy copy: the previous stage's live slot's data, relayed through this machine's cache
 * (kept, so that the next pull is a delta too) to each host's idle slot. Every step is a command of
 * the plan: the source's command (over OpenSSH: the source is another stage's host), the pull, the
 * push to each host, and a comparison of size and SHA-256 of source, cache and every copy.
 */
export function filesCopyActions(stage: Stage, service: Service, source: FilesSource, target: SlotName, cacheDir: string, stopIdle: (host: string) => string): Map<string, Action[]> {
  const data = new Map<string, Action[]>();
  const files = service.files!;
  const srcSsh = [...sshCommand(source.host), `${source.host.user}@${source.host.address}`];
  const from = files.command !== undefined ? snapshotDir({ root: source.root }, source.slot) : filesDir({ root: source.root }, source.slot);
  const what = `${files.paths.join(', ')} of ${source.stage}'s ${service.name}/${source.slot}`;
  const actions: Action[] = [];
  if (files.command !== undefined) {
    const ctx = { stage: source.stage, service: service.name, host: source.host.name, address: source.host.address, slot: source.slot, port: 0, dir: '', release: '', config: '' };
    actions.push({ kind: 'local', host: source.host.name, route: 'openssh', argv: [...srcSsh, snapshotCommand(source.root, source.slot, files.command, ctx)], title: `run "${files.command}" in ${source.stage}'s ${service.name}/${source.slot} files on ${source.host.name}` });
  }
  actions.push({ kind: 'local', argv: ['mkdir', '-p', ...files.paths.map((p) => `${cacheDir}/${p}`)], title: `prepare the local cache ${cacheDir}` });
  for (const p of files.paths) {
    actions.push({ kind: 'local', host: source.host.name, route: 'openssh', argv: rsyncArgv({ source: remoteSpec(source.host, `${from}/${p}/`), destination: `${cacheDir}/${p}/`, remote: source.host }), title: `pull ${p} of ${source.stage}'s ${service.name}/${source.slot} into the local cache (rsync delta)` });
  }
  for (const h of service.hosts) {
    const host = stage.hosts[h]!;
    const dst = filesDir(service, target);
    actions.push({ kind: 'exec', host: h, command: stopIdle(h), title: `stop idle slot ${service.name}/${target} on ${h} if running` });
    for (const p of files.paths) {
      actions.push({ kind: 'local', host: h, route: 'openssh', argv: rsyncArgv({ source: `${cacheDir}/${p}/`, destination: remoteSpec(host, `${dst}/${p}/`), remote: host, remoteSetup: `mkdir -p ${quote(`${dst}/${p}`)}` }), title: `push ${p} into ${service.name}/${target} on ${h} (rsync delta)` });
    }
  }
  // Size and SHA-256 of every file: source, cache and each host's copy must agree, or nothing starts.
  const checks = files.paths.flatMap((p) => [
    `s=${remoteDigest(srcSsh, `${from}/${p}`)} && c=$(digest ${quote(`${cacheDir}/${p}`)}) && [ "$s" = "$c" ] || { echo ${quote(`${p}: the local copy differs from ${source.stage}'s:`)} "$s" "$c" >&2; exit 4; }`,
    ...service.hosts.map((h) => {
      const host = stage.hosts[h]!;
      return `t=${remoteDigest([...sshCommand(host), `${host.user}@${host.address}`], `${filesDir(service, target)}/${p}`)} && [ "$t" = "$c" ] || { echo ${quote(`${p}: the copy on ${h} differs from its source:`)} "$t" "$c" >&2; exit 4; }`;
    }),
    `echo "files ${p} $c"`,
  ]);
  actions.push({ kind: 'local', argv: ['bash', '-c', [DIGEST, ...checks].join('; ')], title: `verify ${what} against every copy: size and SHA-256 of each file` });
  data.set(service.name, actions);
  return data;
}
