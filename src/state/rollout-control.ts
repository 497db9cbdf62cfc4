/*
 * What a progressive rollout tells other processes, and what they ask of it (issue 20, pause): the run
 * holding the stage's lock writes where its rollout stands (the step, its window's first counters, a
 * pause and its deadline); `updateserver continue|abort <stage>` (the CLI or the console, any machine
 * that shares the state backend) leaves a request that the paused run polls, takes and answers. Two
 * records per stage, each replaced whole: no process ever sees half of one. This file holds the local
 * directory's records (<stateDir>/rollout/<stage>.json and <stage>.request.json); the PostgreSQL ones
 * are in postgres/rollout-control.ts.
 */
import { mkdir, open, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BackendCounters, GateFigures } from '../rollout/gates.js';
import type { RolloutGates } from '../rollout/profile.js';

/** Where a run's rollout of one service stands: written by the gate and the pause as they begin. */
export interface RolloutProgress {
  stage: string;
  service: string;
  /** 1-based step and its share of requests for the new slot. */
  step: number;
  steps: number;
  weight: number;
  /** hold: judged by the gates; paused: waiting for `continue` or `abort` until deadline. */
  state: 'hold' | 'paused';
  /** Names this pause (or step): a request must carry it, so an old request never ends a later pause. */
  id: string;
  since: string;
  deadline?: string;
  pid: number;
  oldBackend: string;
  newBackend: string;
  loadBalancers: string[];
  gates: RolloutGates;
  /** Each load balancer's counters of both backends when the step (or pause) began: the window's start. */
  start: Record<string, { old: BackendCounters; new: BackendCounters }>;
  /** The step's latest judgement's figures over its window so far (absent until the first reading). */
  figures?: GateFigures;
}

/** An operator's answer to a pause. `answered` is set by the run once it took the request. */
export interface RolloutRequest {
  stage: string;
  /** The pause it answers (RolloutProgress.id). */
  id: string;
  action: 'continue' | 'abort';
  user: string;
  at: string;
  /** Where it came from: the command line, or the console. */
  via: 'cli' | 'console';
  answered?: string;
}

export interface RolloutControl {
  writeProgress(p: RolloutProgress): Promise<void>;
  readProgress(stage: string): Promise<RolloutProgress | undefined>;
  /** Leaves a request for the paused run (replacing any earlier one). */
  request(r: RolloutRequest): Promise<void>;
  readRequest(stage: string): Promise<RolloutRequest | undefined>;
  /** Removes the stage's request (taken, or given up by the one who left it). */
  clearRequest(stage: string): Promise<void>;
}

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch (err) {
    // A file being replaced is renamed whole; ENOENT is no record.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Write, fsync, rename: a reader sees the old record or the new one. */
async function writeJson(file: string, value: unknown): Promise<void> {
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  await writeFile(tmp, `${JSON.stringify(value, null, 2)}\n`);
  const fh = await open(tmp, 'r');
  try { await fh.sync(); } finally { await fh.close(); }
  await rename(tmp, file);
}

export class FileRolloutControl implements RolloutControl {
  constructor(readonly stateDir: string) {}
  private dir(): string { return join(this.stateDir, 'rollout'); }
  private progressFile(stage: string): string { return join(this.dir(), `${stage}.json`); }
  private requestFile(stage: string): string { return join(this.dir(), `${stage}.request.json`); }

  async writeProgress(p: RolloutProgress): Promise<void> {
    await mkdir(this.dir(), { recursive: true });
    await writeJson(this.progressFile(p.stage), p);
  }
  readProgress(stage: string): Promise<RolloutProgress | undefined> { return readJson(this.progressFile(stage)); }
  async request(r: RolloutRequest): Promise<void> {
    await mkdir(this.dir(), { recursive: true });
    await writeJson(this.requestFile(r.stage), r);
  }
  readRequest(stage: string): Promise<RolloutRequest | undefined> { return readJson(this.requestFile(stage)); }
  async clearRequest(stage: string): Promise<void> {
    await unlink(this.requestFile(stage)).catch((err: unknown) => { if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err; });
  }
}
