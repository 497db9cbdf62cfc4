/*
 * The journal of a run: its plan, then every step as it begins and ends, recorded durably before the
 * step it announces runs. A run that dies (even kill -9) leaves it behind; the next run reads it to
 * say what happened and to clean up (--abandon) or clean up and run again (--resume) without touching
 * live. JournalStore is what commands work with; this file holds the local directory's journal (one
 * fsynced JSONL file per stage); the PostgreSQL one is in postgres/journal.ts.
 */
import { appendFileSync, closeSync, fsyncSync, openSync } from 'node:fs';
import { mkdir, open, readFile, rename, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { hostname, userInfo } from 'node:os';
import type { Plan } from '../plan/plan.js';

export type JournalEntry =
  | { type: 'start'; at: string; pid: number; user: string; machine: string; plan: Plan }
  | { type: 'step'; at: string; phase: string; target: string; title: string; state: 'begin' | 'end' | 'fail'; error?: string }
  | { type: 'finish'; at: string; result: string };

export type StepEntry = Extract<JournalEntry, { type: 'step' }>;
export type StartEntry = Extract<JournalEntry, { type: 'start' }>;

/** The journal of one run being applied. */
export interface Journal {
  /** Resolves once the entry is durable: the caller runs the step only after that. */
  step(phase: string, target: string, title: string, state: 'begin' | 'end' | 'fail', error?: string): Promise<void>;
  /**
   * An entry is durable only with every entry recorded before it (one file, appended in order). The
   * run then need not wait for a step's end entry before announcing the host's next step: that entry's
   * durability implies the end's (issue 17: one fsync wait per step instead of two).
   */
  readonly ordered?: boolean;
  /** The run ended (well or not, but by itself): the journal is archived. */
  finish(result: string): Promise<void>;
}

/** An interrupted run: its plan and how far it got. */
export interface Interrupted {
  /** Where its journal is: a file, or a run id in PostgreSQL. */
  ref: string;
  start: StartEntry;
  steps: StepEntry[];
  /** Phases that began. */
  phases: Set<string>;
  lastStep: StepEntry | undefined;
}

/** The journals of every stage, wherever they are kept. */
export interface JournalStore {
  begin(plan: Plan): Promise<Journal>;
  /** The stage's run that began and never finished, if any. */
  readInterrupted(stage: string): Promise<Interrupted | undefined>;
  /** Marks the interrupted run as dealt with (how) and archives it. */
  archive(i: Interrupted, how: string): Promise<void>;
}

export const startEntry = (plan: Plan): StartEntry => ({ type: 'start', at: new Date().toISOString(), pid: process.pid, user: userInfo().username, machine: hostname(), plan });
export const stepEntry = (phase: string, target: string, title: string, state: 'begin' | 'end' | 'fail', error?: string): StepEntry =>
  ({ type: 'step', at: new Date().toISOString(), phase, target, title, state, ...(error ? { error } : {}) });
export const finishEntry = (result: string): JournalEntry => ({ type: 'finish', at: new Date().toISOString(), result });

/** Reads a run's entries into what the next run needs; undefined without a start entry. */
export function interruptedFrom(ref: string, entries: JournalEntry[]): Interrupted | undefined {
  const start = entries.find((e): e is StartEntry => e.type === 'start');
  if (!start) return undefined;
  const steps = entries.filter((e): e is StepEntry => e.type === 'step');
  return { ref, start, steps, phases: new Set(steps.map((s) => s.phase)), lastStep: steps[steps.length - 1] };
}

/** Synchronous and fsynced: the entry is on disk before the step it announces runs. */
function appendSynced(file: string, entry: JournalEntry): void {
  const fd = openSync(file, 'a');
  try {
    appendFileSync(fd, `${JSON.stringify(entry)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

class FileJournal implements Journal {
  /** Batches are written and fsynced one after another, each with the entries queued before it. */
  readonly ordered = true;
  /** Entries waiting for the next write and fsync, with the callers waiting for them to be durable. */
  private queue: Array<{ line: string; durable: () => void; failed: (err: unknown) => void }> = [];
  private flushing: Promise<void> | undefined;
  constructor(readonly file: string) {}

  step(phase: string, target: string, title: string, state: 'begin' | 'end' | 'fail', error?: string): Promise<void> {
    return new Promise((durable, failed) => {
      this.queue.push({ line: `${JSON.stringify(stepEntry(phase, target, title, state, error))}\n`, durable, failed });
      this.flushing ??= this.flush();
    });
  }

  /**
   * Group commit (issue 17): the entries queued while the previous write and fsync were under way go
   * to disk in one write and one fsync, off the event loop. Each caller still runs its step only once
   * its entry is durable, in the order they were queued. With 200 hosts a run journals thousands of
   * steps, many at the same moment; one synchronous fsync each blocked the whole orchestrator for
   * seconds (24 s of a 50 s run on a busy disk).
   */
  private async flush(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0);
        try {
          const fh = await open(this.file, 'a');
          try {
            await fh.appendFile(batch.map((e) => e.line).join(''));
            await fh.sync();
          } finally {
            await fh.close();
          }
          for (const e of batch) e.durable();
        } catch (err) {
          for (const e of batch) e.failed(err);
        }
      }
    } finally {
      this.flushing = undefined;
    }
  }

  async finish(result: string): Promise<void> {
    await this.flushing;
    appendSynced(this.file, finishEntry(result));
    await rename(this.file, this.file.replace(/\.jsonl$/, `.${Date.now()}.done.jsonl`));
    await pruneArchive(join(this.file, '..'), 20);
  }
}

async function pruneArchive(dir: string, keep: number): Promise<void> {
  const done = (await readdir(dir)).filter((f) => f.endsWith('.done.jsonl')).sort();
  for (const f of done.slice(0, Math.max(0, done.length - keep))) await unlink(join(dir, f)).catch(() => {});
}

/** <stateDir>/journal/<stage>.jsonl while a run is under way; archived as <stage>.<ms>.done.jsonl. */
export class FileJournalStore implements JournalStore {
  constructor(readonly stateDir: string) {}

  private dir(): string { return join(this.stateDir, 'journal'); }
  fileFor(stage: string): string { return join(this.dir(), `${stage}.jsonl`); }

  async begin(plan: Plan): Promise<Journal> {
    await mkdir(this.dir(), { recursive: true });
    const j = new FileJournal(this.fileFor(plan.stage));
    appendSynced(j.file, startEntry(plan));
    return j;
  }

  async readInterrupted(stage: string): Promise<Interrupted | undefined> {
    const file = this.fileFor(stage);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const entries: JournalEntry[] = [];
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      // The last line may be cut short by the crash; what was written whole is enough.
      try { entries.push(JSON.parse(line) as JournalEntry); } catch { break; }
    }
    return interruptedFrom(file, entries);
  }

  async archive(i: Interrupted, how: string): Promise<void> {
    const fd = openSync(i.ref, 'a');
    try { appendFileSync(fd, `${JSON.stringify(finishEntry(`${how}`))}\n`); } finally { closeSync(fd); }
    await rename(i.ref, i.ref.replace(/\.jsonl$/, `.${Date.now()}.done.jsonl`));
  }
}
