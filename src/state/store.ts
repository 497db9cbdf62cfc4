/*
 * What the tool recorded about each stage: which slot is live per service and which release each
 * slot holds, plus an append-only history of runs. StateStore is what every command works with; this
 * file holds the local directory's store, where files are replaced atomically (write, fsync, rename)
 * so a crash never leaves half a state file. The PostgreSQL store is in postgres/store.ts.
 */
import type { WriteMark } from '../data/writes.js';
import type { ChangeReport } from '../data/changes/report.js';
import { mkdir, readFile, rename, writeFile, appendFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import type { SlotName } from '../config/model.js';
import type { PlanVerb } from '../plan/plan.js';

/** What a slot's database holds after a promotion: the data version that goes into the release record. */
export interface DataRecord {
  /** The slot's database. */
  database: string;
  /** Highest migration version applied with status ok; null for a database without one. */
  version: number | null;
  /** The snapshot it was made from (strategies copy and copy-self); absent for shared or a new database. */
  snapshot?: { stage: string; slot: SlotName; database: string; tables: number; rows: number };
  /** Where the database's write counter stood when the data step ended, before it took traffic (src/data/writes.ts). */
  writes?: WriteMark;
}

/** A data record as people read it: `version 3, snapshot of dev slot a (1005 rows in 2 tables)`. */
export function describeData(d: DataRecord): string {
  return `version ${d.version ?? 'none'}${d.snapshot ? `, snapshot of ${d.snapshot.stage} slot ${d.snapshot.slot} (${d.snapshot.rows} rows in ${d.snapshot.tables} tables)` : ''}`;
}

export interface ServiceState {
  live: SlotName;
  /** Release each slot points at, as last recorded. */
  releases: Partial<Record<SlotName, string>>;
  updated: string;
  /** Releases that failed their checks or were rolled back, with the reason: not switched to again without --force. */
  bad?: Record<string, string>;
  /** Data version of each slot's database, as the last promotion into that slot left it. */
  data?: Partial<Record<SlotName, DataRecord>>;
  /** Releases that passed this stage (checked, switched to, kept): what the next stage may receive. */
  passed?: Record<string, ReleaseRecord>;
}

/** What passed a stage, so that the next stage receives exactly that (the pipeline guard). */
export interface ReleaseRecord {
  result: 'passed';
  /** SHA-256 of the release's manifest, which lists the SHA-256 of every file: the code, exactly. */
  codeHash: string;
  /** Checksum of each migration (by version) the slot's database was migrated with, for a service with data. */
  migrations?: Record<string, string>;
  /** The database the slot's data snapshot was copied from, when it was copied. */
  dataSource?: string;
  at: string;
}

export interface StageState {
  stage: string;
  services: Record<string, ServiceState>;
}

export interface HistoryEntry {
  at: string;
  stage: string;
  action: PlanVerb | 'replay';
  result: 'ok' | 'failed' | 'rolled back';
  user: string;
  services: Record<string, { from: SlotName; to: SlotName; release: string; data?: DataRecord }>;
  durationMs: number;
  message?: string;
  /** Per service, the record of the release that passed the stage in this run. */
  passed?: Record<string, ReleaseRecord>;
  /** A rollback, flip or automatic rollback: per table, what was written to the slot left (keys, no rows; src/data/changes/report.ts). */
  changes?: ChangeReport;
  /** `updateserver replay`: the report replayed, the tables left out, and every statement sent, per service. */
  /** tables: per service, the tables whose changes this replay applied (a later replay of the run leaves them out). */
  replay?: { run: string; skip: string[]; statements: Record<string, string[]>; tables?: Record<string, string[]> };
}

/** Recorded state and history of stages, wherever they are kept. */
export interface StateStore {
  read(stage: string): Promise<StageState | undefined>;
  /** Replaces the stage's state as a whole: a reader sees the old state or the new, never half of it. */
  write(state: StageState): Promise<void>;
  appendHistory(entry: HistoryEntry): Promise<void>;
  /** The last `limit` runs of the stage, oldest first. */
  history(stage: string, limit?: number): Promise<HistoryEntry[]>;
}

export class FileStateStore implements StateStore {
  constructor(readonly dir: string) {}

  private file(stage: string) { return join(this.dir, 'state', `${stage}.json`); }
  private historyFile(stage: string) { return join(this.dir, 'history', `${stage}.jsonl`); }

  async read(stage: string): Promise<StageState | undefined> {
    try {
      return JSON.parse(await readFile(this.file(stage), 'utf8')) as StageState;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async write(state: StageState): Promise<void> {
    const file = this.file(state.stage);
    await mkdir(join(this.dir, 'state'), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`);
    const fh = await open(tmp, 'r');
    try { await fh.sync(); } finally { await fh.close(); }
    await rename(tmp, file);
  }

  async appendHistory(entry: HistoryEntry): Promise<void> {
    await mkdir(join(this.dir, 'history'), { recursive: true });
    await appendFile(this.historyFile(entry.stage), `${JSON.stringify(entry)}\n`);
  }

  async history(stage: string, limit = 20): Promise<HistoryEntry[]> {
    try {
      const lines = (await readFile(this.historyFile(stage), 'utf8')).trim().split('\n').filter(Boolean);
      return lines.slice(-limit).map((l) => JSON.parse(l) as HistoryEntry);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }
}
