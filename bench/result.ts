/*
 * What every benchmark writes: bench/results/<name>.json with its figures, the exact command that
 * produced them (the env knobs it read, with the values used), when, and the load of the machine at
 * the start and the end (the figures of a loaded machine are not the figures of a quiet one).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { REPO } from '../test/lab/pipeline.js';

export const RESULTS_DIR = join(REPO, 'bench', 'results');

/** The env knobs a benchmark reads, each remembered with the value it used, for the command line it reports. */
export class Knobs {
  private readonly used = new Map<string, string>();
  constructor(private readonly env: NodeJS.ProcessEnv = process.env) {}

  text(name: string, fallback: string): string {
    const value = this.env[name] ?? fallback;
    this.used.set(name, value);
    return value;
  }

  number(name: string, fallback: number): number {
    const raw = this.text(name, String(fallback));
    const value = Number(raw);
    if (!Number.isFinite(value) || value < 0) throw new Error(`env ${name}="${raw}": expected a non-negative number`);
    return value;
  }

  numbers(name: string, fallback: string): number[] {
    const raw = this.text(name, fallback);
    const values = raw.split(',').map((s) => Number(s.trim()));
    if (values.length === 0 || values.some((v) => !Number.isInteger(v) || v < 1)) throw new Error(`env ${name}="${raw}": expected a comma-separated list of positive integers`);
    return values;
  }

  values(): Record<string, string> {
    return Object.fromEntries(this.used);
  }

  /** `HOSTS=1,2 RUNS=3 node dist/bench/promote.js`: what to type to measure the same thing again. */
  command(script: string): string {
    return [...[...this.used].map(([k, v]) => `${k}=${v}`), 'node', `dist/bench/${script}.js`].join(' ');
  }
}

export interface BenchResult {
  benchmark: string;
  command: string;
  env: Record<string, string>;
  at: string;
  durationMs: number;
  loadavg: { start: number[]; end: number[] };
  [figures: string]: unknown;
}

/** Call at the start of a benchmark; `done` writes its result file and returns the path. */
export function startResult(name: string, knobs: Knobs): { done(figures: Record<string, unknown>): Promise<string> } {
  const started = Date.now();
  const start = loadavg().map((x) => Math.round(x * 100) / 100);
  return {
    async done(figures) {
      const result: BenchResult = {
        benchmark: name, command: knobs.command(name), env: knobs.values(), at: new Date().toISOString(),
        durationMs: Date.now() - started, loadavg: { start, end: loadavg().map((x) => Math.round(x * 100) / 100) }, ...figures,
      };
      await mkdir(RESULTS_DIR, { recursive: true });
      const file = join(RESULTS_DIR, `${name}.json`);
      await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
      return file;
    },
  };
}

/** Median of the finite values (a failed run's NaN is left out); NaN when there are none. */
export const median = (xs: readonly number[]): number => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
