/*
 * The rollback data report for `files:` data (issue 21 item 4): per service and host, the files added,
 * changed and removed in the slot traffic left, since its switch. The hosts' own listings are plan
 * steps (commands/files-manifest.ts: recorded right before each switch, compared once the slot left is
 * stopped); this turns their output, kept by the run (ApplyContext.outputs), into the report's part
 * that goes beside the databases' (data/changes/report.ts): terminal, --json, history, the report file
 * under the state directory and the webhook's counts.
 */
import type { SlotName, Stage } from '../config/model.js';
import { filesDir } from '../commands/files.js';
import { parseFilesLeft, type FileEntry } from '../commands/files-manifest.js';
import type { Plan } from '../plan/plan.js';

export interface FilesLeft {
  service: string;
  host: string;
  /** The slot traffic left, its data directory, and the slot that serves now. */
  slot: SlotName;
  dir: string;
  servingSlot: SlotName;
  added: FileEntry[];
  changed: Array<FileEntry & { sizeBefore: number }>;
  removed: FileEntry[];
  /** Why nothing could be said (no list recorded at its switch, the comparison failed). */
  unknown?: string;
}

export interface FilesOutput { kind: 'files-left'; service: string; slot: SlotName; host: string; stdout: string }

/** One entry per host of each service of the plan that keeps files, from the run's outputs. */
export function filesLeftOf(stage: Stage, plan: Plan, outputs: readonly FilesOutput[], newSlotLeft: boolean): FilesLeft[] {
  const out: FilesLeft[] = [];
  for (const s of plan.services) {
    const service = stage.services[s.service];
    if (!service?.files) continue;
    const left: SlotName = newSlotLeft ? s.target : s.live;
    const serving: SlotName = newSlotLeft ? s.live : s.target;
    for (const host of s.hosts) {
      const entry: FilesLeft = { service: s.service, host, slot: left, dir: filesDir(service, left), servingSlot: serving, added: [], changed: [], removed: [] };
      const output = outputs.find((o) => o.kind === 'files-left' && o.service === s.service && o.host === host && o.slot === left);
      if (!output) {
        entry.unknown = 'the files were not listed (the step failed or did not run: see the run\'s warnings)';
      } else {
        try {
          const diff = parseFilesLeft(output.stdout);
          if (diff) Object.assign(entry, diff);
          else entry.unknown = 'no list of its files was recorded at its switch (it went live before updateserver recorded one), so what changed is unknown';
        } catch (err) {
          entry.unknown = (err as Error).message;
        }
      }
      out.push(entry);
    }
  }
  return out;
}

/** Lines for the terminal: one per service and host, then the paths (the first 20 of each kind). */
export function filesLeftLines(files: readonly FilesLeft[]): string[] {
  const lines: string[] = [];
  for (const f of files) {
    const head = `${f.service}: files of slot ${f.slot} on ${f.host} (${f.dir}) were left behind; slot ${f.servingSlot} serves without what was written to them since it went live`;
    if (f.unknown) { lines.push(`${head}: ${f.unknown}`); continue; }
    const total = f.added.length + f.changed.length + f.removed.length;
    lines.push(`${head}: ${total === 0 ? 'no file was written' : `${f.added.length} added, ${f.changed.length} changed, ${f.removed.length} removed`}`);
    const list = (kind: string, entries: readonly FileEntry[]) => {
      if (entries.length > 0) lines.push(`  ${kind}: ${entries.slice(0, 20).map((e) => e.path).join(', ')}${entries.length > 20 ? `, ... ${entries.length - 20} more` : ''}`);
    };
    list('added', f.added);
    list('changed', f.changed);
    list('removed', f.removed);
  }
  return lines;
}

/** Per service, the webhook's counts (summed over its hosts). */
export function filesCounts(files: readonly FilesLeft[]): Record<string, { added: number; changed: number; removed: number }> {
  const out: Record<string, { added: number; changed: number; removed: number }> = {};
  for (const f of files) {
    const c = (out[f.service] ??= { added: 0, changed: 0, removed: 0 });
    c.added += f.added.length;
    c.changed += f.changed.length;
    c.removed += f.removed.length;
  }
  return out;
}
