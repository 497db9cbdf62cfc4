/*
 * The journal of a run: its plan, then every step as it begins and ends, appended and flushed as
 * they happen. A run that dies (even kill -9) leaves it behind; the next run reads it to say what
 * happened and to clean up (--abandon) or clean up and run again (--resume) without touching live.
 */
import { appendFileSync, closeSync, fsyncSync, openSync } from 'node:fs';
import { mkdir, readFile, rename, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { hostname, userInfo } from 'node:os';
import type { Plan } from '../plan/plan.js';

export type JournalEntry =
  | { type: 'start'; at: string; pid: number; user: string; machine: string; plan: Plan }
  | { type: 'step'; at: string; phase: string; target: string; title: string; state: 'begin' | 'end' | 'fail'; error?: string }
  | { type: 'finish'; at: string; result: string };

export class Journal {
  private constructor(readonly file: string) {}

  static dir(stateDir: string): string { return join(stateDir, 'journal'); }
  static fileFor(stateDir: string, stage: string): string { return join(Journal.dir(stateDir), `${stage}.jsonl`); }

  static async begin(stateDir: string, plan: Plan): Promise<Journal> {
    await mkdir(Journal.dir(stateDir), { recursive: true });
    const j = new Journal(Journal.fileFor(stateDir, plan.stage));
    j.write({ type: 'start', at: new Date().toISOString(), pid: process.pid, user: userInfo().username, machine: hostname(), plan });
    return j;
  }

  /** Synchronous and fsynced: the entry is on disk before the step it announces runs. */
  write(entry: JournalEntry): void {
    const fd = openSync(this.file, 'a');
    try {
      appendFileSync(fd, `${JSON.stringify(entry)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  step(phase: string, target: string, title: string, state: 'begin' | 'end' | 'fail', error?: string): void {
    this.write({ type: 'step', at: new Date().toISOString(), phase, target, title, state, ...(error ? { error } : {}) });
  }

  /** The run ended (well or not, but by itself): the journal is archived beside the others. */
  async finish(result: string): Promise<void> {
    this.write({ type: 'finish', at: new Date().toISOString(), result });
    await rename(this.file, this.file.replace(/\.jsonl$/, `.${Date.now()}.done.jsonl`));
    await pruneArchive(join(this.file, '..'), 20);
  }
}

async function pruneArchive(dir: string, keep: number): Promise<void> {
  const done = (await readdir(dir)).filter((f) => f.endsWith('.done.jsonl')).sort();
  for (const f of done.slice(0, Math.max(0, done.length - keep))) await unlink(join(dir, f)).catch(() => {});
}

/** An interrupted run: its plan and how far it got. */
export interface Interrupted {
  file: string;
  start: Extract<JournalEntry, { type: 'start' }>;
  steps: Array<Extract<JournalEntry, { type: 'step' }>>;
  /** Phases that began. */
  phases: Set<string>;
  lastStep: Extract<JournalEntry, { type: 'step' }> | undefined;
}

export async function readInterrupted(stateDir: string, stage: string): Promise<Interrupted | undefined> {
  const file = Journal.fileFor(stateDir, stage);
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
  const start = entries.find((e): e is Extract<JournalEntry, { type: 'start' }> => e.type === 'start');
  if (!start) return undefined;
  const steps = entries.filter((e): e is Extract<JournalEntry, { type: 'step' }> => e.type === 'step');
  return { file, start, steps, phases: new Set(steps.map((s) => s.phase)), lastStep: steps[steps.length - 1] };
}

export async function archiveInterrupted(i: Interrupted, how: string): Promise<void> {
  const fd = openSync(i.file, 'a');
  try { appendFileSync(fd, `${JSON.stringify({ type: 'finish', at: new Date().toISOString(), result: how })}\n`); } finally { closeSync(fd); }
  await rename(i.file, i.file.replace(/\.jsonl$/, `.${Date.now()}.done.jsonl`));
}
