/*
 * Checks made before anything is copied, so that a run that cannot finish never starts.
 */
import type { Stage } from '../config/model.js';
import { UpdateserverError } from '../errors.js';
import type { ServiceFacts } from '../plan/build.js';
import { releaseBytes, type SourceRelease } from './source.js';
import { formatBytes } from '../bytes.js';

const MiB = 1024 * 1024;

/** Room a release needs on a host: its full size (hard links may save most of it) plus a margin. */
export function bytesNeeded(releaseSize: number): number {
  return releaseSize + Math.max(Math.ceil(releaseSize / 10), 16 * MiB);
}

export async function checkDiskSpace(stage: Stage, services: readonly string[], facts: Record<string, ServiceFacts>, releases: Record<string, SourceRelease>): Promise<void> {
  const short: string[] = [];
  for (const s of services) {
    const f = facts[s]!;
    const size = releases[s]!.bytes ?? await releaseBytes(releases[s]!.cacheDir);
    const needed = bytesNeeded(size);
    for (const [host, slots] of Object.entries(f.hosts)) {
      if (slots.complete.includes(f.release) || slots.freeBytes === undefined) continue;
      if (slots.freeBytes < needed) {
        short.push(`${host}: ${s} needs ${formatBytes(needed)} (${needed} bytes: release ${formatBytes(size)} + margin) under ${stage.services[s]!.root}, only ${formatBytes(slots.freeBytes)} (${slots.freeBytes} bytes) free`);
      }
    }
  }
  if (short.length > 0) {
    throw new UpdateserverError(`not enough disk space; nothing was copied:\n  ${short.join('\n  ')}`, {
      hint: `free space on those hosts, or remove old releases: updateserver purge ${stage.name}`,
    });
  }
}
