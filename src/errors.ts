/*
 * The few named errors of updateserver. Each keeps its cause and, where there is one, the host it
 * happened on, so that the message a user reads says where to look. Only the CLI turns them into an
 * exit status: 2 for bad input (nothing was touched), 1 for a failed run that left live traffic alone.
 */

import { MAX_SHOWN_ISSUES } from './config/limits.js';
import { printable } from './config/text.js';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_BAD_INPUT = 2;

export class UpdateserverError extends Error {
  readonly exitCode: number = EXIT_FAILED;
  /** What the user can do about it, printed under the message. */
  readonly hint: string | undefined;
  constructor(message: string, options?: { cause?: unknown; hint?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.hint = options?.hint;
  }
}

/** One problem in one file, at one path inside it. */
export interface ConfigIssue {
  file: string;
  path: string;
  message: string;
  line?: number;
}

/** One line per issue: whatever a file held, control characters are shown as escapes, never obeyed. */
export function formatIssue(issue: ConfigIssue): string {
  const where = issue.line === undefined ? issue.file : `${issue.file}:${issue.line}`;
  return printable(issue.path ? `${where}: ${issue.path}: ${issue.message}` : `${where}: ${issue.message}`);
}

/** At most a screenful: the first issues, then how many more there are and where. */
export function formatIssues(issues: readonly ConfigIssue[]): string {
  const shown = issues.slice(0, MAX_SHOWN_ISSUES).map(formatIssue);
  const more = issues.length - shown.length;
  if (more > 0) {
    const files = [...new Set(issues.slice(MAX_SHOWN_ISSUES).map((i) => i.file))].join(', ');
    shown.push(printable(`... and ${more} more problem${more === 1 ? '' : 's'} in ${files} (${issues.length} in all; the first ${MAX_SHOWN_ISSUES} are shown)`));
  }
  return shown.join('\n');
}

/** Bad input: profiles, health checks, arguments. Raised before any connection is opened. */
export class ConfigError extends UpdateserverError {
  override readonly exitCode = EXIT_BAD_INPUT;
  readonly issues: readonly ConfigIssue[];
  /** @param cause an unforeseen failure met while reading the input (shown with --verbose) */
  constructor(issues: ConfigIssue[], hint?: string, cause?: unknown) {
    super(formatIssues(issues), { ...(hint === undefined ? {} : { hint }), ...(cause === undefined ? {} : { cause }) });
    this.issues = issues;
  }
}

/** Something went wrong on one host (connection, command, transfer). */
export class HostError extends UpdateserverError {
  readonly host: string;
  constructor(host: string, message: string, options?: { cause?: unknown; hint?: string }) {
    super(`${host}: ${message}`, options);
    this.host = host;
  }
}

/** The host presented a key that known_hosts does not vouch for. Nothing was run on it. */
export class HostKeyError extends HostError {
  readonly fingerprint: string;
  constructor(host: string, message: string, fingerprint: string, hint: string) {
    super(host, message, { hint });
    this.fingerprint = fingerprint;
  }
}

/** A remote or local command exited non-zero. Keeps what it printed. */
export class CommandFailed extends HostError {
  readonly command: string;
  readonly exitStatus: number | null;
  readonly stdout: string;
  readonly stderr: string;
  constructor(host: string, command: string, result: { code: number | null; stdout: string; stderr: string }, what?: string) {
    const tail = (result.stderr.trim() || result.stdout.trim()).split('\n').slice(-5).join('\n');
    super(host, `${what ?? `command failed`} (exit ${result.code ?? 'signal'}): ${command}${tail ? `\n${tail}` : ''}`);
    this.command = command;
    this.exitStatus = result.code;
    this.stdout = result.stdout;
    this.stderr = result.stderr;
  }
}

/** The load balancer refused or failed a runtime command. */
export class LoadBalancerError extends UpdateserverError {
  readonly loadBalancer: string;
  constructor(loadBalancer: string, message: string, options?: { cause?: unknown; hint?: string }) {
    super(`load balancer ${loadBalancer}: ${message}`, options);
    this.loadBalancer = loadBalancer;
  }
}

/** A health check did not pass within its deadline. */
export class HealthCheckFailed extends HostError {
  readonly check: string;
  constructor(host: string, check: string, message: string, options?: { cause?: unknown }) {
    super(host, `health check ${check} failed: ${message}`, options);
    this.check = check;
  }
}

/** Keep the original error when clean-up fails too: the clean-up failure is only attached. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
