/*
 * Shell commands about releases and slot pointers on a host. Layout under a service's root:
 *   releases/<name>/          immutable copies of the code, one per release
 *   <slot dir> -> releases/<name>   the slot's pointer (a symlink, replaced atomically)
 *   run/<slot>.pid, run/<slot>.log  the running slot's process ("<pid> <start time>") and output
 *   run/<slot>/                     the slot's rendered config files (configFiles)
 */
import type { Service, SlotName } from '../config/model.js';
import { quote } from './shell.js';
import { ALIVE, aliveFrom } from './process.js';
import { SLOTS } from '../config/slot.js';
import { instanceSuffix } from '../config/instances.js';

export const MANIFEST = '.updateserver-manifest';
/** Written last, after transfer, verification and build: a release without it is unfinished and may be rewritten. */
export const COMPLETE = '.updateserver-complete';

export const releasesDir = (service: Service) => `${service.root}/releases`;
export const releaseDir = (service: Service, release: string) => `${releasesDir(service)}/${release}`;
export const runDir = (service: Service) => `${service.root}/run`;
/** Instance n's own pid and log: run/a.pid for the first, run/a.2.pid for the second (instances.ts). */
export const pidFile = (service: Service, slot: SlotName, instance = 1) => `${runDir(service)}/${slot}${instanceSuffix(instance)}.pid`;
export const logFile = (service: Service, slot: SlotName, instance = 1) => `${runDir(service)}/${slot}${instanceSuffix(instance)}.log`;
/** {root}/current: a link to the live slot's release on every host (for cron jobs and web server configs). */
export const currentLink = (service: Service) => `${service.root}/current`;
/** The slot's own directory for rendered config files: releases are shared by both slots and never written. */
export const configDir = (service: Service, slot: SlotName) => `${runDir(service)}/${slot}`;

/**
 * The host's side of the world in one round trip. Prints, per slot, "<slot> <release or -> <running 1|0>",
 * then "releases <complete release>...", "partial <unfinished release>..." and "free <bytes available
 * where releases are written>".
 */
export function probeSlots(service: Service, instances = 1): string {
  // Both slot pointers in one program start (find), not a readlink each: a probe runs on every host of
  // a run, and starting a program is the costly part of a command there. Each link prints as
  // " <dir>=<target>" on one line; a slot whose dir is not a link prints nothing (release "-").
  const dirs = SLOTS.map((slot) => service.slots[slot].dir);
  const lines = [`l=$(find ${dirs.map(quote).join(' ')} -maxdepth 0 -type l -printf ' %p=%l' 2>/dev/null)`];
  for (const slot of SLOTS) {
    const dir = service.slots[slot].dir;
    const others = dirs.filter((d) => d !== dir);
    // A slot runs when every one of its instances on the host does.
    const pids = Array.from({ length: instances }, (_, i) => quote(pidFile(service, slot, i + 1)));
    const pid = pids[0]!;
    lines.push(`r=; case $l in *${quote(` ${dir}=`)}*) r=\${l#*${quote(` ${dir}=`)}}; ${others.map((o) => `r=\${r%%${quote(` ${o}=`)}*}; `).join('')}r=\${r##*/};; esac; ` +
      (instances === 1 ? `if [ -f ${pid} ] && ${aliveFrom(pid)}; then up=1; else up=0; fi; `
        : `up=1; for f in ${pids.join(' ')}; do { [ -f "$f" ] && ${aliveFrom('"$f"')}; } || up=0; done; `) +
      `echo "${slot} \${r:--} $up"`);
  }
  const releases = quote(releasesDir(service));
  lines.push(`printf 'releases'; for d in ${releases}/*/; do [ -f "$d${COMPLETE}" ] && { r=\${d%/}; printf ' %s' "\${r##*/}"; }; done; echo`);
  // Unfinished copies (a failed build, an interrupted transfer): never run, removed by retention.
  lines.push(`printf 'partial'; for d in ${releases}/*/; do [ -d "$d" ] && [ ! -f "$d${COMPLETE}" ] && { r=\${d%/}; printf ' %s' "\${r##*/}"; }; done; echo`);
  // Measured where releases are written (which may be a filesystem of its own), or, on a new host, the
  // nearest directory that exists. stat -f gives the blocks available to users and their size (df's
  // "Available"), multiplied by the shell: one program, not df and awk.
  lines.push(`d=${releases}; while [ ! -e "$d" ]; do d=$(dirname "$d"); done; set -- $(stat -f -c '%a %S' "$d") && echo "free $(($1 * $2))"`);
  return [ALIVE, ...lines].join('; ');
}

export function prepareReleaseDirs(service: Service): string {
  return `mkdir -p ${quote(releasesDir(service))} ${quote(runDir(service))}`;
}

/** Runs the service's build step inside the release, then marks the release complete. */
export function finishRelease(service: Service, release: string, build: string | undefined): string {
  const dir = quote(releaseDir(service, release));
  return build === undefined
    ? `: > ${dir}/${COMPLETE}`
    : `cd ${dir} && ( ${build} ) && : > ${COMPLETE}`;
}

/** Removes releases (never called with a slot's release: the caller decides what goes). */
export function removeReleases(service: Service, releases: readonly string[]): string {
  return `cd ${quote(releasesDir(service))} && rm -rf -- ${releases.map(quote).join(' ')}`;
}

/** Checks every file of the release against the manifest that travelled with it. */
export function verifyManifest(service: Service, release: string): string {
  return `cd ${quote(releaseDir(service, release))} && sha256sum --quiet --strict -c ${MANIFEST}`;
}

/** Repoints the slot at a release: a new symlink renamed over the old one, so the pointer is never missing. */
export function pointSlot(service: Service, slot: SlotName, release: string): string {
  const dir = service.slots[slot].dir;
  const tmp = `${dir}.updateserver-new`;
  // The current link moves right after the switch; a path there that is not a link would only be found
  // then, with traffic already moved, so it is refused here, before anything starts.
  const link = currentLink(service);
  const currentGuard = service.currentLink
    ? `if [ -e ${quote(link)} ] && [ ! -L ${quote(link)} ]; then echo ${quote(`${link} exists and is not a symlink; move it away, or set currentLink: false for ${service.name} (updateserver keeps it pointing at the live release)`)} >&2; exit 3; fi; `
    : '';
  return currentGuard + `if [ -e ${quote(dir)} ] && [ ! -L ${quote(dir)} ]; then echo ${quote(`${dir} exists and is not a symlink; move it away (updateserver manages it as a pointer to a release)`)} >&2; exit 3; fi; ` +
    `ln -sfn ${quote(releaseDir(service, release))} ${quote(tmp)} && mv -Tf ${quote(tmp)} ${quote(dir)}`;
}

/** Moves {root}/current to a release (a new link renamed over the old one); without a release, removes it. */
export function pointCurrent(service: Service, release: string | undefined): string {
  const link = currentLink(service);
  if (release === undefined) return `rm -f ${quote(link)}`;
  return `ln -sfn ${quote(releaseDir(service, release))} ${quote(`${link}.updateserver-new`)} && mv -Tf ${quote(`${link}.updateserver-new`)} ${quote(link)}`;
}

/** Links each shared directory {root}/shared/<p> into a release at <p> (created on first use; never copied). */
export function linkShared(service: Service, release: string): string | undefined {
  if (service.shared.length === 0) return undefined;
  const dir = releaseDir(service, release);
  return service.shared.map((p) => {
    const shared = quote(`${service.root}/shared/${p}`);
    const at = quote(`${dir}/${p}`);
    return `mkdir -p ${shared} && mkdir -p "$(dirname ${at})" && rm -rf ${at} && ln -sfn ${shared} ${at}`;
  }).join(' && ');
}

/**
 * A release's manifest on a host, after its SHA-256 (the hash that names its code, which the pipeline
 * guard compares): the first line is `<hash>  -`, the rest the manifest. One round trip for both.
 */
export function readManifestWithHash(service: Service, release: string): string {
  const file = quote(`${releaseDir(service, release)}/${MANIFEST}`);
  return `sha256sum < ${file} && cat ${file}`;
}

/**
 * The previous stage's host in one round trip (issue 17): probeSlots, then "manifest <slot> <hash>"
 * for each slot that points at a release with a manifest (the SHA-256 of its exact bytes). Which slot
 * is live is read from the load balancers at the same time, so both hashes come back; the manifest's
 * text is needed only when the local cache does not already hold a file with that hash.
 */
export function probeSourceSlots(service: Service, instances = 1): string {
  const hashes = SLOTS.map((slot) => {
    const dir = quote(service.slots[slot].dir);
    return `r=$(readlink ${dir} 2>/dev/null); r=\${r##*/}; m=${quote(releasesDir(service))}/"$r"/${MANIFEST}; ` +
      `if [ -n "$r" ] && [ -f "$m" ]; then printf 'manifest ${slot} '; sha256sum < "$m"; fi`;
  });
  return [probeSlots(service, instances), ...hashes].join('; ');
}
