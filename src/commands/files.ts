/*
 * Data kept in files (issue 18: Data.fs, an SQLite database, an AceDB directory). Each slot has its own
 * data directory, {root}/files/<slot>, holding the service's `files` paths; the app finds it through
 * {files}. The idle slot's copy is made from the live slot's on the same host (copy-self, under the
 * read-only freeze): an optional command runs first in the live slot's data directory and writes a
 * consistent copy into {snapshot} (sqlite3 .backup, a ZODB pack, a checkpoint), else the live
 * directory is the source. rsync then brings the idle slot's own older copy up to date with delta
 * transfer (--no-whole-file: only changed blocks are written), and the copy is verified against its
 * source by size and SHA-256 of every file. The live slot's directory is only read, so a rollback
 * finds it as it was.
 */
import type { Service, SlotName } from '../config/model.js';
import { expand, type SlotContext } from './placeholders.js';
import { quote } from './shell.js';

export const filesDir = (service: Pick<Service, 'root'>, slot: SlotName) => `${service.root}/files/${slot}`;
/** Where the files command writes the consistent copy the idle slot's data is taken from. */
export const snapshotDir = (service: Pick<Service, 'root'>, slot: SlotName) => `${service.root}/files/${slot}.snapshot`;

/** "<bytes> <sha256 of the sorted list of (sha256, path)>" of the paths under $1: one line to compare. */
export const DIGEST = 'digest() { ( cd "$1" && s=$(find . -type f -printf \'%s\\n\' | awk \'{t+=$1} END {print t+0}\') && ' +
  'h=$(find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum | sha256sum | cut -c1-64) && echo "$s $h" ); }';

/**
 * One round trip on a host: take the source (the command's snapshot, or the live directory), rsync
 * each path into the idle slot's directory with delta transfer, verify size and checksums, and print
 * "files <bytes> <sha256>" of the copy. Exits non-zero (the run stops before any switch) when the
 * copy differs from its source.
 */
export function copyFilesSelf(service: Service, from: SlotName, to: SlotName, ctx: SlotContext): string {
  const files = service.files!;
  const src = filesDir(service, from);
  const dst = filesDir(service, to);
  const snap = snapshotDir(service, from);
  const steps = [
    DIGEST,
    `mkdir -p ${quote(src)} ${quote(dst)}`,
    ...files.paths.map((p) => `mkdir -p ${quote(`${src}/${p}`)}`),
    ...(files.command !== undefined
      ? [`rm -rf ${quote(snap)} && mkdir -p ${quote(snap)}`, `( cd ${quote(src)} && ${expand(files.command, { ...ctx, files: src, snapshot: snap })} )`, `from=${quote(snap)}`]
      : [`from=${quote(src)}`]),
    ...files.paths.map((p) => `mkdir -p "$from"/${quote(p)} ${quote(`${dst}/${p}`)} && rsync -a --delete --no-whole-file --checksum "$from"/${quote(p)}/ ${quote(`${dst}/${p}`)}/`),
    // Size and checksums of every file, source against copy: a copy that differs never goes live.
    ...files.paths.map((p) => `a=$(digest "$from"/${quote(p)}) && b=$(digest ${quote(`${dst}/${p}`)}) && ` +
      `{ [ "$a" = "$b" ] || { echo ${quote(`copy of ${p} differs from its source:`)} "$a" "$b" >&2; exit 4; }; } && echo "files ${p} $b"`),
    ...(files.command !== undefined ? [`rm -rf ${quote(snap)}`] : []),
  ];
  return steps.join(' && ');
}

/** Where a stage's files are relayed through on this machine (the previous stage's copy, kept for the next delta). */
export const filesCacheDir = (stateDir: string, fromStage: string, service: string) => `${stateDir}/cache/files/${fromStage}/${service}`;

/** On the source host: run the files command in the live slot's data directory, writing into {snapshot}. */
export function snapshotCommand(root: string, slot: SlotName, command: string, ctx: SlotContext): string {
  const src = filesDir({ root }, slot);
  const snap = snapshotDir({ root }, slot);
  return `rm -rf ${quote(snap)} && mkdir -p ${quote(snap)} && cd ${quote(src)} && ( ${expand(command, { ...ctx, files: src, snapshot: snap })} )`;
}

/** A shell word that prints "<bytes> <sha256>" of a directory on a host, run there over `ssh`. */
export const remoteDigest = (ssh: readonly string[], dir: string) => `$(${ssh.map(quote).join(' ')} ${quote(`${DIGEST}; digest ${quote(dir)}`)})`;
