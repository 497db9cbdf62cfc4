/*
 * The only place that prints final results and decides the exit status. Errors are printed with
 * their hint; bad input exits 2, a failed run 1. Colour only on a terminal, never with NO_COLOR
 * (https://no-color.org: set to anything but the empty string) or TERM=dumb, so that output piped into
 * a file or another program, and --json, carry no escape codes.
 */
import { EXIT_FAILED, UpdateserverError, describeError } from '../errors.js';

export interface Terminal { isTTY?: boolean }

export function wantsColor(stream: Terminal, env: NodeJS.ProcessEnv = process.env): boolean {
  return stream.isTTY === true && !env.NO_COLOR && env.TERM !== 'dumb';
}

const SGR = { red: 31, green: 32, bold: 1 } as const;

/** The text in a colour when `stream` shows colours, else the text alone. */
export function paint(stream: Terminal, color: keyof typeof SGR, text: string, env: NodeJS.ProcessEnv = process.env): string {
  return wantsColor(stream, env) ? `\x1b[${SGR[color]}m${text}\x1b[0m` : text;
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** @param extra more top-level fields of the JSON answer (e.g. the failed check's report as `checks`) */
export function fail(err: unknown, json: boolean, extra: Record<string, unknown> = {}): number {
  const code = err instanceof UpdateserverError ? err.exitCode : EXIT_FAILED;
  const hint = err instanceof UpdateserverError ? err.hint : undefined;
  if (json) {
    printJson({ ok: false, error: { type: err instanceof Error ? err.name : 'Error', message: describeError(err), hint, exitCode: code }, ...extra });
  } else {
    process.stderr.write(`\n${paint(process.stderr, 'red', 'updateserver:')} ${describeError(err)}\n`);
    if (hint) process.stderr.write(`  ${paint(process.stderr, 'bold', 'what to do:')} ${hint}\n`);
    if (!(err instanceof UpdateserverError) && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  }
  return code;
}
