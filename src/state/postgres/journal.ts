/*
 * Journals in PostgreSQL: one row per entry, keyed by run and sequence number. Each entry is committed
 * (one INSERT, autocommit) before the step it announces runs. A run whose start has no finish entry
 * was interrupted; archiving it is adding that finish entry. Only the last 20 finished runs per stage
 * are kept, like the local journal's archive.
 */
import { randomUUID } from 'node:crypto';
import type { Plan } from '../../plan/plan.js';
import { finishEntry, interruptedFrom, startEntry, stepEntry, type Interrupted, type Journal, type JournalEntry, type JournalStore } from '../journal.js';
import { SCHEMA, type StateDb } from './db.js';

const KEEP = 20;

class PgJournal implements Journal {
  private seq = 0;
  constructor(private readonly db: StateDb, readonly run: string, readonly stage: string) {}

  /** Numbered when called, so parallel steps keep the order in which they were announced. */
  write(entry: JournalEntry): Promise<void> {
    return insert(this.db, this.run, this.stage, this.seq++, entry);
  }

  step(phase: string, target: string, title: string, state: 'begin' | 'end' | 'fail', error?: string): Promise<void> {
    return this.write(stepEntry(phase, target, title, state, error));
  }

  async finish(result: string): Promise<void> {
    await this.write(finishEntry(result));
    await prune(this.db, this.stage);
  }
}

async function insert(db: StateDb, run: string, stage: string, seq: number, entry: JournalEntry): Promise<void> {
  await db.query(`INSERT INTO ${SCHEMA}.journal (run, stage, seq, entry) VALUES ($1, $2, $3, $4)`, [run, stage, seq, JSON.stringify(entry)]);
}

async function prune(db: StateDb, stage: string): Promise<void> {
  await db.query(
    `DELETE FROM ${SCHEMA}.journal WHERE stage = $1 AND run IN (
       SELECT run FROM ${SCHEMA}.journal WHERE stage = $1 AND entry->>'type' = 'finish' ORDER BY id DESC OFFSET ${KEEP})`,
    [stage],
  );
}

export class PgJournalStore implements JournalStore {
  constructor(private readonly db: StateDb) {}

  async begin(plan: Plan): Promise<Journal> {
    const j = new PgJournal(this.db, randomUUID(), plan.stage);
    await j.write(startEntry(plan));
    return j;
  }

  async readInterrupted(stage: string): Promise<Interrupted | undefined> {
    const open = await this.db.query<{ run: string }>(
      `SELECT s.run FROM ${SCHEMA}.journal s WHERE s.stage = $1 AND s.seq = 0
         AND NOT EXISTS (SELECT 1 FROM ${SCHEMA}.journal f WHERE f.run = s.run AND f.entry->>'type' = 'finish')
       ORDER BY s.id DESC LIMIT 1`,
      [stage],
    );
    const run = open.rows[0]?.run;
    if (run === undefined) return undefined;
    const entries = await this.db.query<{ entry: JournalEntry }>(`SELECT entry FROM ${SCHEMA}.journal WHERE run = $1 ORDER BY seq`, [run]);
    return interruptedFrom(run, entries.rows.map((r) => r.entry));
  }

  async archive(i: Interrupted, how: string): Promise<void> {
    await this.db.query(
      `INSERT INTO ${SCHEMA}.journal (run, stage, seq, entry) SELECT $1, $2, coalesce(max(seq), 0) + 1, $3 FROM ${SCHEMA}.journal WHERE run = $1`,
      [i.ref, i.start.plan.stage, JSON.stringify(finishEntry(how))],
    );
    await prune(this.db, i.start.plan.stage);
  }
}
