/*
 * The rollback data report: per service, per table, the rows inserted, updated and deleted on the slot
 * traffic left, since it went live, with their primary keys. It goes to the terminal (lines), --json,
 * the run's history line (counts and keys), a file under the state directory (everything, the rows
 * too: what `updateserver replay` applies) and the webhook (counts).
 */
import { mkdir, readFile, readdir, writeFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { DatabaseEngine, SlotName } from '../../config/model.js';
import { UpdateserverError } from '../../errors.js';
import type { LoggedChange } from './log.js';
import type { FilesLeft } from '../files-left.js';

export interface TableChanges {
  table: string;
  inserted: number;
  updated: number;
  deleted: number;
  /** Primary keys (as JSON objects, column -> value) of the rows, per operation; a row changed twice is listed once. */
  keys: { inserted: unknown[]; updated: unknown[]; deleted: unknown[] };
  /** Times the table was truncated (PostgreSQL): the rows it removed are not listed, and replay refuses the table. */
  truncated?: number;
}

export interface ServiceChanges {
  service: string;
  engine: DatabaseEngine;
  /** The slot traffic left, its database, and the slot (and database) that serves now. */
  slot: SlotName;
  database: string;
  servingSlot: SlotName;
  servingDatabase: string;
  tables: TableChanges[];
  /** Tables of the left database without the change-log trigger: their writes, if any, are not in the report. */
  untracked: string[];
  /** Why nothing could be said (no change log installed, the database unreachable...). */
  unknown?: string;
  /** Every change in log order, rows included (the report file only; not in history or the webhook). */
  changes?: LoggedChange[];
}

export interface ChangeReport {
  stage: string;
  runId: string;
  action: string;
  at: string;
  services: ServiceChanges[];
  /** `files:` data: per service and host, the files added, changed and removed (src/data/files-left.ts). */
  files?: FilesLeft[];
}

export type ChangeCounts = Record<string, {
  inserted: number; updated: number; deleted: number; tables: Record<string, { inserted: number; updated: number; deleted: number }>;
  /** `files:` data, summed over the service's hosts. */
  files?: { added: number; changed: number; removed: number };
}>;

/** Per table counts and keys, from the log in order. */
export function summarize(changes: LoggedChange[]): TableChanges[] {
  const byTable = new Map<string, TableChanges>();
  const seen = new Map<string, Set<string>>();
  for (const c of changes) {
    let t = byTable.get(c.table);
    if (!t) byTable.set(c.table, (t = { table: c.table, inserted: 0, updated: 0, deleted: 0, keys: { inserted: [], updated: [], deleted: [] } }));
    if (c.op === 'T') { t.truncated = (t.truncated ?? 0) + 1; continue; }
    const kind = c.op === 'I' ? 'inserted' : c.op === 'U' ? 'updated' : 'deleted';
    t[kind]++;
    const key = `${c.table}\u0000${kind}\u0000${c.pk ?? `#${c.seq}`}`;
    const s = seen.get(kind) ?? new Set<string>();
    seen.set(kind, s);
    if (!s.has(key)) {
      s.add(key);
      t.keys[kind].push(c.pk === null ? null : JSON.parse(c.pk));
    }
  }
  return [...byTable.values()].sort((a, b) => a.table.localeCompare(b.table));
}

export function countsOf(report: ChangeReport): ChangeCounts {
  return Object.fromEntries(report.services.map((s) => {
    const sum = (k: 'inserted' | 'updated' | 'deleted') => s.tables.reduce((n, t) => n + t[k], 0);
    return [s.service, {
      inserted: sum('inserted'), updated: sum('updated'), deleted: sum('deleted'),
      tables: Object.fromEntries(s.tables.map((t) => [t.table, { inserted: t.inserted, updated: t.updated, deleted: t.deleted }])),
    }];
  }));
}

/** The report without the rows: what history and --json carry. */
export function withoutRows(report: ChangeReport): ChangeReport {
  return { ...report, services: report.services.map(({ changes: _rows, ...s }) => s) };
}

const keyText = (k: unknown) => (k === null ? '(no primary key)' : typeof k === 'object' ? Object.values(k as object).map((v) => JSON.stringify(v)).join('/') : JSON.stringify(k));

/** Lines for the terminal: one per service, one per table with its keys (the first 20 of each kind). */
export function reportLines(report: ChangeReport, file: string | undefined): string[] {
  const lines: string[] = [];
  for (const s of report.services) {
    const head = `${s.service}: slot ${s.slot} (database ${s.database}) was left behind; slot ${s.servingSlot} (${s.servingDatabase}) serves without what was written to it since it went live`;
    if (s.unknown) { lines.push(`${head}: ${s.unknown}`); continue; }
    const total = s.tables.reduce((n, t) => n + t.inserted + t.updated + t.deleted, 0);
    const truncated = s.tables.filter((t) => (t.truncated ?? 0) > 0).map((t) => t.table);
    lines.push(`${head}: ${total === 0 && truncated.length === 0 ? 'no row was written' : `${total} row change(s) in ${s.tables.length} table(s)`}${truncated.length ? `; TRUNCATED: ${truncated.join(', ')} (the rows it removed are not listed)` : ''}${s.untracked.length ? `; NOT recorded (no change-log trigger): table(s) ${s.untracked.join(', ')}` : ''}`);
    for (const t of s.tables) {
      const part = (kind: 'inserted' | 'updated' | 'deleted') => {
        const keys = t.keys[kind];
        if (t[kind] === 0) return `${kind} 0`;
        return `${kind} ${t[kind]} [${keys.slice(0, 20).map(keyText).join(', ')}${keys.length > 20 ? `, ... ${keys.length - 20} more` : ''}]`;
      };
      lines.push(`  ${t.table}: ${part('inserted')}, ${part('updated')}, ${part('deleted')}${t.truncated ? `, truncated ${t.truncated} time(s)` : ''}`);
    }
  }
  if (file && report.services.some((s) => s.tables.length > 0)) {
    lines.push(`the rows are in ${file}; to apply them to the database that serves now: updateserver replay ${report.stage} --run ${report.runId} --dry-run`);
  }
  return lines;
}

export const changesDir = (stateDir: string) => join(stateDir, 'changes');
export const reportFile = (stateDir: string, stage: string, runId: string) => join(changesDir(stateDir), `${stage}-${runId}.json`);

/** Written whole (temporary file, then rename): a reader never sees half a report. */
export async function writeReport(stateDir: string, report: ChangeReport): Promise<string> {
  const file = reportFile(stateDir, report.stage, report.runId);
  await mkdir(changesDir(stateDir), { recursive: true });
  await writeFile(`${file}.${process.pid}.tmp`, `${JSON.stringify(report, null, 2)}\n`);
  await rename(`${file}.${process.pid}.tmp`, file);
  return file;
}

export async function readReport(stateDir: string, stage: string, runId: string): Promise<ChangeReport> {
  const file = reportFile(stateDir, stage, runId);
  try {
    return JSON.parse(await readFile(file, 'utf8')) as ChangeReport;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const known = (await readdir(changesDir(stateDir)).catch(() => [] as string[])).filter((f) => f.startsWith(`${stage}-`) && f.endsWith('.json')).map((f) => f.slice(stage.length + 1, -5));
    throw new UpdateserverError(`no rollback data report of ${stage} for run ${runId} (${file} does not exist)`, {
      hint: known.length ? `reports of ${stage}: ${known.slice(-5).join(', ')}` : `a report is written when a rollback or flip leaves a slot that has a change log (strategies copy and copy-self)`,
    });
  }
}
