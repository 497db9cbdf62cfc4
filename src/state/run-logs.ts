/*
 * The JSON log of each run (<state dir>/logs/<stage>-<action>-<run id>.jsonl). Like the journal archive,
 * only the latest runs of each stage are kept: a machine that promotes every few minutes would
 * otherwise fill its disk with logs nobody reads.
 */
import { readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';

/** Run logs kept per stage (the journal keeps 20 finished runs; logs are what an investigation reads first). */
export const RUN_LOGS_KEPT = 50;

const ACTIONS = ['promote', 'flip', 'rollback', 'refresh'] as const;
const LOG_NAME = new RegExp(`^(.+)-(${ACTIONS.join('|')})-(\\d{4}-\\d\\d-\\d\\dT[0-9-]+Z)\\.jsonl$`);

export const runLogsDir = (stateDir: string) => join(stateDir, 'logs');

export function runLogFile(stateDir: string, stage: string, action: typeof ACTIONS[number], runId: string): string {
  return join(runLogsDir(stateDir), `${stage.replace(/[^a-z0-9_-]/g, '_')}-${action}-${runId}.jsonl`);
}

/** Removes the oldest run logs of each stage beyond `keep`; other files in the directory are left alone. */
export async function pruneRunLogs(stateDir: string, keep = RUN_LOGS_KEPT): Promise<string[]> {
  const files = await readdir(runLogsDir(stateDir)).catch((): string[] => []);
  const byStage = new Map<string, Array<{ file: string; runId: string }>>();
  for (const file of files) {
    const m = LOG_NAME.exec(file);
    if (!m) continue;
    const list = byStage.get(m[1]!) ?? [];
    list.push({ file, runId: m[3]! });
    byStage.set(m[1]!, list);
  }
  const removed: string[] = [];
  for (const list of byStage.values()) {
    list.sort((a, b) => (a.runId < b.runId ? -1 : a.runId > b.runId ? 1 : 0));
    for (const { file } of list.slice(0, Math.max(0, list.length - keep))) {
      await unlink(join(runLogsDir(stateDir), file)).then(() => removed.push(file), () => {});
    }
  }
  return removed;
}
