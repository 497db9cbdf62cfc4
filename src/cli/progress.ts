/*
 * The progress of a run as the operator watches it, fed by the apply loop's step events. On a
 * terminal: the plan's step list with each host's state (pending, running, done, failed), redrawn in
 * place. Anywhere else (a CI log, a pipe): one plain line per finished step, nothing redrawn, so
 * logs stay readable. Colour only on a terminal and never with NO_COLOR set (https://no-color.org).
 */
import type { StepEvent } from '../apply/context.js';
import type { Plan } from '../plan/plan.js';

/** The part of a stream the display uses; process.stderr is one, a test passes a fake. */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
}

export type ItemState = 'pending' | 'running' | 'done' | 'failed';

interface Row { phase: string; target: string; total: number; ended: number; state: ItemState; current: string }

const COLORS: Record<ItemState, string> = { pending: '\x1b[2m', running: '\x1b[33m', done: '\x1b[32m', failed: '\x1b[31m' };
const RESET = '\x1b[0m';

export class Progress {
  private readonly rows: Row[] = [];
  private readonly titles = new Map<string, string>();
  private drawn = 0;
  private readonly tty: boolean;
  private readonly color: boolean;

  constructor(plan: Plan, private readonly stream: ProgressStream, env: Record<string, string | undefined> = process.env) {
    this.tty = stream.isTTY === true;
    this.color = this.tty && (env.NO_COLOR ?? '') === '' && env.TERM !== 'dumb';
    for (const phase of plan.phases) {
      if (phase.items.length === 0) continue;
      this.titles.set(phase.name, phase.title);
      for (const item of phase.items) this.rows.push({ phase: phase.name, target: item.target, total: item.actions.length, ended: 0, state: 'pending', current: '' });
    }
    if (this.tty) this.draw();
  }

  /** The state of each host (or load balancer) of each phase, for tests and the final summary. */
  states(): Array<{ phase: string; target: string; state: ItemState }> {
    return this.rows.map((r) => ({ phase: r.phase, target: r.target, state: r.state }));
  }

  readonly onStep = (e: StepEvent): void => {
    const row = this.rows.find((r) => r.phase === e.phase && r.target === e.target);
    if (!row) return;
    if (e.state === 'begin') {
      row.state = 'running';
      row.current = e.title;
    } else if (e.state === 'end') {
      row.ended += 1;
      row.current = e.title;
      row.state = row.ended >= row.total ? 'done' : 'running';
    } else {
      row.state = 'failed';
      row.current = `${e.title}: ${e.error ?? 'failed'}`;
    }
    if (this.tty) this.draw();
    else if (e.state !== 'begin') this.stream.write(`${e.state === 'end' ? 'done  ' : 'FAILED'} ${e.phase} ${e.target}: ${e.title}${e.state === 'fail' ? `: ${e.error ?? ''}` : ''}\n`);
  };

  private paint(state: ItemState, text: string): string {
    return this.color ? `${COLORS[state]}${text}${RESET}` : text;
  }

  /** The whole list, replacing the one drawn before (cursor up over it, clear to the end of the screen). */
  private draw(): void {
    const lines: string[] = [];
    let phase = '';
    for (const r of this.rows) {
      if (r.phase !== phase) {
        phase = r.phase;
        lines.push(this.titles.get(phase) ?? phase);
      }
      const detail = r.state === 'pending' ? '' : `  ${r.ended}/${r.total}${r.state === 'done' ? '' : `  ${r.current.split('\n')[0]}`}`;
      lines.push(`  ${this.paint(r.state, r.state.padEnd(7))} ${r.target}${detail}`);
    }
    const up = this.drawn > 0 ? `\x1b[${this.drawn}A\r\x1b[J` : '';
    this.stream.write(`${up}${lines.join('\n')}\n`);
    this.drawn = lines.length;
  }
}
