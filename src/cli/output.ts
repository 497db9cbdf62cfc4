/*
 * The only place that prints final results and decides the exit status. Errors are printed with
 * their hint; bad input exits 2, a failed run 1. Colour only on a terminal, never with NO_COLOR
 * (https://no-color.org: set to anything but the empty string) or TERM=dumb, so that output piped into
 * a file or another program, and --json, carry no escape codes.
 */
import { EXIT_FAILED, UpdateserverError, describeError } from '../errors.js';
import { printable } from '../config/text.js';

/**
 * What the command line is doing, for the one line that reports an unforeseen error ("while running
 * `updateserver promote beta`"), and whether the stack trace may be shown (--verbose).
 */
const activity = { what: 'running updateserver', verbose: false };
export function setActivity(what: string, verbose: boolean): void {
  activity.what = what;
  activity.verbose = verbose;
}

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

/** An error the tool did not foresee, as one line: what was being done, the error's first line. */
export function describeUnexpected(err: unknown, what: string = activity.what): string {
  const first = (err instanceof Error ? `${err.name}: ${err.message}` : String(err)).split('\n')[0];
  return `unexpected error while ${what}: ${first}`;
}

/**
 * The one place that reports a failure and chooses its exit status (the README's table: 1, or 2 for
 * bad input). A named error prints its message and hint; anything else is one line naming what was
 * being done. Stack traces only with --verbose. Every text is printed with its control characters
 * escaped: nothing a profile or a host sends can rewrite the terminal.
 * @param extra more top-level fields of the JSON answer (e.g. the failed check's report as `checks`)
 */
export function fail(err: unknown, json: boolean, extra: Record<string, unknown> = {}): number {
  const named = err instanceof UpdateserverError;
  const code = named ? err.exitCode : EXIT_FAILED;
  const hint = named ? err.hint : activity.verbose ? undefined : 'run the command again with --verbose for the stack trace; unless its cause is on this machine (a file, a permission), report it as a defect of updateserver';
  const message = named ? describeError(err) : describeUnexpected(err);
  if (json) {
    printJson({ ok: false, error: { type: err instanceof Error ? err.name : 'Error', message, hint, exitCode: code }, ...extra });
  } else {
    process.stderr.write(`\n${paint(process.stderr, 'red', 'updateserver:')} ${printable(message, { multiLine: true })}\n`);
    if (hint) process.stderr.write(`  ${paint(process.stderr, 'bold', 'what to do:')} ${printable(hint, { multiLine: true })}\n`);
  }
  if (activity.verbose) {
    for (let e: unknown = err; e instanceof Error; e = e.cause) {
      if (!(e instanceof UpdateserverError) && e.stack) process.stderr.write(`${printable(e.stack, { multiLine: true })}\n`);
    }
  }
  return code;
}
