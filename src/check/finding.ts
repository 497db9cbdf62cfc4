/* One result of `updateserver check`: what was tried on what, and when it failed, what to do. */

export interface Finding {
  /** What was checked: "profiles", "host web1", "load balancer lb", "database web (slot a)", ... */
  subject: string;
  /** Which property of it: "ssh", "rsync", "disk", "runtime API", ... */
  check: string;
  ok: boolean;
  /** What was found: the evidence when ok, the problem otherwise. */
  detail: string;
  /** The change that makes it ok; only on failures. */
  fix?: string | undefined;
  /**
   * The problem is in the project's own files (profiles, health checks, migrations, the HAProxy
   * template): bad input, exit status 2 like any command given them, rather than 1.
   */
  badInput?: true;
}

export const ok = (subject: string, check: string, detail: string): Finding => ({ subject, check, ok: true, detail });
export const problem = (subject: string, check: string, detail: string, fix: string | undefined): Finding => ({ subject, check, ok: false, detail, fix });
export const inputProblem = (subject: string, check: string, detail: string, fix: string | undefined): Finding => ({ subject, check, ok: false, detail, fix, badInput: true });

/** The errno code (ENOENT, EACCES, ...) anywhere on an error's cause chain. */
export function errnoOf(err: unknown): string | undefined {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}
