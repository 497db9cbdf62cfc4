import type { Duplex } from 'node:stream';
import { CommandFailed } from '../errors.js';

export interface ExecOptions {
  timeoutMs?: number;
  /** Written to the command's standard input, which is then closed. */
  input?: string;
}

export interface ExecResult {
  /** null when the command was killed by a signal or timed out. */
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The one place where commands run on a host. Implementations: ssh (ssh2, one connection per host),
 * local (child_process, for the orchestrator's own machine) and printer (dry run: records, runs nothing).
 */
export interface Transport {
  /** The host's name from the profile: every error and log line carries it. */
  readonly host: string;
  /** Runs a shell command. Resolves with a non-zero code rather than throwing; see run(). */
  exec(command: string, options?: ExecOptions): Promise<ExecResult>;
  /** Opens a stream to a UNIX socket on the host (the HAProxy runtime API of a remote load balancer). */
  openUnixSocket(path: string): Promise<Duplex>;
  close(): Promise<void>;
}

/** exec() that throws CommandFailed (with host, command and output) on a non-zero exit. */
export async function run(transport: Transport, command: string, options?: ExecOptions & { what?: string }): Promise<ExecResult> {
  const result = await transport.exec(command, options);
  if (result.code !== 0) throw new CommandFailed(transport.host, command, result, options?.what);
  return result;
}
