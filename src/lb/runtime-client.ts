/*
 * One command per connection to the HAProxy runtime API, in non-interactive mode: write the line,
 * read until HAProxy closes the connection. Nothing carries over from one command to the next, and a
 * command that hangs costs one socket, destroyed at the deadline. The connection comes from `connect`,
 * so the same client talks to a local UNIX socket (localSocket) or to a remote one through an SSH
 * stream-local forward (SshTransport.openUnixSocket). (docs/decisions/0002-own-haproxy-runtime-client.md)
 */
import { createConnection } from 'node:net';
import type { Duplex } from 'node:stream';
import { describeError, LoadBalancerError } from '../errors.js';

export type Connect = () => Promise<Duplex>;

export interface RuntimeClientOptions {
  /** The load balancer's name, for messages. */
  name: string;
  connect: Connect;
  /** Deadline for connecting and receiving the whole reply. */
  timeoutMs: number;
}

/**
 * A newline ends a command and ';' starts another, so either would let one call run two commands;
 * other control characters have no business in a command line.
 */
const FORBIDDEN = /[\x00-\x1f\x7f;]/;

/**
 * One argument of a runtime command. HAProxy splits arguments on blanks and reads a backslash as an escape
 * and ';' as the next command, so none of these may appear inside one. Profiles are validated so that
 * names and paths never contain them; reaching the throw is a bug, hence a RangeError.
 */
export function runtimeWord(what: string, value: string): string {
  if (!/^[^\s;\\'"\x00-\x1f\x7f]+$/.test(value)) {
    throw new RangeError(`${what} ${JSON.stringify(value)} cannot be a runtime API argument: it is empty or holds a blank, quote, '\\' or ';'`);
  }
  return value;
}

export class RuntimeClient {
  readonly name: string;
  private readonly connect: Connect;
  private readonly timeoutMs: number;

  constructor(opts: RuntimeClientOptions) {
    this.name = opts.name;
    this.connect = opts.connect;
    this.timeoutMs = opts.timeoutMs;
  }

  /** Sends one command and resolves with HAProxy's whole reply, as text. Does not judge the reply (replies.ts does). */
  command(line: string): Promise<string> {
    if (line.trim() === '' || FORBIDDEN.test(line)) {
      return Promise.reject(new LoadBalancerError(this.name,
        `refused runtime command ${JSON.stringify(line)}: one command per call, without newline, control character or ';'`));
    }
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let stream: Duplex | undefined;
      let settled = false;
      const settle = (err?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        stream?.destroy();
        if (err) reject(err);
        else resolve(Buffer.concat(chunks).toString('utf8'));
      };
      const timer = setTimeout(() => settle(this.timedOut(line, stream !== undefined)), this.timeoutMs);

      // Wrapped so that a connect function that throws instead of rejecting is handled the same way.
      new Promise<Duplex>((ok) => ok(this.connect())).then((s) => {
        // The deadline passed while connecting: nobody waits for this connection any more.
        if (settled) return void s.destroy();
        stream = s;
        s.on('data', (chunk: Buffer | string) => chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk));
        // In non-interactive mode HAProxy closes after the reply: the close is the end of the answer.
        s.once('end', () => settle());
        // A close without an end is a connection lost mid-reply: a truncated `show stat` must not pass for a whole one.
        s.once('close', () => settle(new LoadBalancerError(this.name,
          `connection closed before the reply to "${line}" was complete`)));
        s.on('error', (err: Error) => settle(new LoadBalancerError(this.name,
          `runtime command "${line}" failed: ${err.message}`, { cause: err })));
        // No end(): a half-close is not needed by HAProxy and not every forwarded stream supports it.
        s.write(`${line}\n`);
      }, (err: unknown) => settle(new LoadBalancerError(this.name,
        `${describeError(err)} (command not sent: ${line})`, { cause: err })));
    });
  }

  private timedOut(line: string, connected: boolean): LoadBalancerError {
    if (!connected) {
      return new LoadBalancerError(this.name,
        `runtime command "${line}" timed out after ${this.timeoutMs} ms while connecting (command not sent)`,
        { hint: 'is HAProxy overloaded, or the SSH connection to the load balancer stalled?' });
    }
    return new LoadBalancerError(this.name,
      `runtime command "${line}" timed out after ${this.timeoutMs} ms waiting for the reply`,
      { hint: 'the command was sent and may have taken effect: check with `show stat` / `show map` before retrying' });
  }
}

/** Connects to a runtime API socket on this machine. Errors name the socket and what to do about it. */
export function localSocket(path: string): Connect {
  return () => new Promise((resolve, reject) => {
    const socket = createConnection(path);
    // Kept after connecting, so the socket never lacks an error listener before the client adds its own;
    // a later reject() on the settled promise does nothing.
    socket.on('error', (err: NodeJS.ErrnoException) => reject(new Error(describeSocketError(path, err), { cause: err })));
    socket.once('connect', () => resolve(socket));
  });
}

/** What a failed connect to a local socket means, naming the socket. */
export function describeSocketError(path: string, err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ENOENT':
      return `socket ${path} not found: is HAProxy running and is \`stats socket ${path} ... level admin\` in its config?`;
    case 'EACCES':
    case 'EPERM':
      return `permission denied on socket ${path}: run as a user allowed by its \`stats socket ... mode/user/group\` settings (or as root)`;
    case 'ECONNREFUSED':
      return `nothing listens on socket ${path}: HAProxy has stopped (leaving the socket file behind), is restarting, or the path is not a socket`;
    default:
      return `cannot connect to socket ${path}: ${err.message}`;
  }
}
