/*
 * What users wrote to a slot's `files:` data since it went live (issue 21 item 4). Right before a switch
 * each host records the list of the new slot's files beside its data directory, {root}/files/<slot>.manifest:
 * one line per file, "<path>\t<size>\t<mtime>". When traffic leaves that slot again (rollback, flip, an
 * automatic rollback), its host lists the slot's files the same way, once the slot is stopped, and
 * prints only the lines that differ: the files added, changed and removed since the switch.
 *
 * Size and modification time (to the nanosecond), not a checksum: the list costs one `find`, without
 * reading the data, so that a large Data.fs adds nothing to the write freeze. Every write through the
 * filesystem moves the mtime; only a tool that writes the same number of bytes and then sets the mtime
 * back could hide a change. The copy itself is still verified by SHA-256 (commands/files.ts).
 */
import type { Service, SlotName } from '../config/model.js';
import { filesDir } from './files.js';
import { quote } from './shell.js';

export const manifestFile = (service: Pick<Service, 'root'>, slot: SlotName) => `${filesDir(service, slot)}.manifest`;

/** The sorted list of a slot's files (run in its data directory); a path not there yet lists nothing. */
function listing(paths: readonly string[]): string {
  // A missing path (nothing written there yet) is an empty list, with or without pipefail.
  return `{ find ${paths.map((p) => quote(`./${p}`)).join(' ')} -type f -printf '%p\\t%s\\t%T@\\n' 2>/dev/null || true; } | LC_ALL=C sort`;
}

/** Records the list of a slot's files, written whole (temporary file, then rename). */
export function recordManifest(service: Pick<Service, 'root' | 'files'>, slot: SlotName): string {
  const dir = filesDir(service, slot);
  const file = manifestFile(service, slot);
  return `mkdir -p ${quote(dir)} && cd ${quote(dir)} && { ${listing(service.files!.paths)}; } > ${quote(`${file}.tmp`)} && mv -f ${quote(`${file}.tmp`)} ${quote(file)}`;
}

/**
 * Prints "files-left ok" and then the lines that differ between the list recorded at the switch ("- ...")
 * and the slot's files now ("+ ..."), or "files-left no-manifest" when nothing was recorded (a slot that
 * went live before updateserver recorded one). Never fails for a difference (diff exits 1 for that).
 */
export function compareManifest(service: Pick<Service, 'root' | 'files'>, slot: SlotName): string {
  const dir = filesDir(service, slot);
  const file = manifestFile(service, slot);
  const now = `${file}.now`;
  const compare = [
    `mkdir -p ${quote(dir)} && cd ${quote(dir)} && { ${listing(service.files!.paths)}; } > ${quote(now)}`,
    'echo \'files-left ok\'',
    `{ diff --old-line-format='- %L' --new-line-format='+ %L' --unchanged-line-format='' ${quote(file)} ${quote(now)}; [ $? -le 1 ]; }`,
    `rm -f ${quote(now)}`,
  ].join(' && ');
  // No `exit`: the command may run in the host's long-lived session shell.
  return `if [ -f ${quote(file)} ]; then ${compare}; else echo 'files-left no-manifest'; fi`;
}

export interface FileEntry { path: string; size: number }
export interface FilesDiff {
  added: FileEntry[];
  changed: Array<FileEntry & { sizeBefore: number }>;
  removed: FileEntry[];
}

/** compareManifest's output; undefined for "no-manifest". */
export function parseFilesLeft(stdout: string): FilesDiff | undefined {
  const lines = stdout.split('\n');
  const head = lines.findIndex((l) => l.startsWith('files-left '));
  if (head < 0) throw new Error(`unexpected output of the files comparison: ${JSON.stringify(stdout.slice(0, 200))}`);
  if (lines[head] === 'files-left no-manifest') return undefined;
  const before = new Map<string, number>();
  const after = new Map<string, number>();
  for (const line of lines.slice(head + 1)) {
    const m = /^([-+]) \.\/(.*)\t(\d+)\t[\d.]+$/.exec(line);
    if (!m) continue;
    (m[1] === '-' ? before : after).set(m[2]!, Number(m[3]));
  }
  const diff: FilesDiff = { added: [], changed: [], removed: [] };
  for (const [path, size] of after) {
    const was = before.get(path);
    if (was === undefined) diff.added.push({ path, size });
    else diff.changed.push({ path, size, sizeBefore: was });
  }
  for (const [path, size] of before) if (!after.has(path)) diff.removed.push({ path, size });
  for (const list of [diff.added, diff.changed, diff.removed]) list.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
  return diff;
}
