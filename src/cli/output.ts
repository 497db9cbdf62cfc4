/*
 * The only place that prints final results and decides the exit status. Errors are printed with
 * their hint; bad input exits 2, a failed run 1.
 */
import { EXIT_FAILED, UpdateserverError, describeError } from '../errors.js';

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
    process.stderr.write(`\nupdateserver: ${describeError(err)}\n`);
    if (hint) process.stderr.write(`  what to do: ${hint}\n`);
    if (!(err instanceof UpdateserverError) && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  }
  return code;
}
