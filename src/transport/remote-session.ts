/*
 * The orchestrator's side of one remote session (src/transport/session.ts has the wire format): a
 * channel whose bash runs one command at a time. SshTransport keeps a few per host, opening another
 * only when every open one is busy (commands on one host at the same moment).
 */
import { randomBytes } from 'node:crypto';
import type { ClientChannel } from 'ssh2';
import { HostError } from '../errors.js';
import { encodeRequest, ReplyParser, sessionCommand } from './session.js';
import type { ExecResult } from './transport.js';

/** Output kept per stream; beyond this the start is dropped (the end is what explains a failure). */
const MAX_OUTPUT = 8 * 1024 * 1024;

/** The session never started its loop (no bash or base64 there): the caller runs the command on a channel of its own. */
export class SessionUnavailable extends Error {}

interface Running {
  id: number;
  command: string;
  resolve: (r: ExecResult) => void;
  reject: (e: Error) => void;
  timer?: NodeJS.Timeout;
  timedOut?: boolean;
  pid?: number;
}

export class RemoteSession {
  private readonly token = randomBytes(8).toString('hex');
  private readonly parser = new ReplyParser(this.token);
  private ready = false;
  private ended: Error | undefined;
  private running: Running | undefined;
  private nextId = 1;

  /** The command the channel must be opened with. */
  static command(session: RemoteSession): string { return sessionCommand(session.token); }

  /**
   * @param kill runs a command that kills a timed-out command's process group, on a channel of its own
   * @param lost the connection's own error when it is gone (a session ending with it reports that)
   */
  constructor(
    private readonly host: string,
    private readonly where: string,
    private readonly kill: (pid: number) => void,
    private readonly lost: () => HostError | undefined,
  ) {}

  /** Set by the transport: settles once the channel is open (or failed to open). */
  opened: Promise<void> = Promise.resolve();
  private markStarted: () => void = () => {};
  private markFinished: () => void = () => {};
  /** Settles once the session has ended (its channel closed: the loop's bash has exited, its clean-up done), or never opened. */
  readonly finished = new Promise<void>((resolve) => { this.markFinished = resolve; });
  /** Settles once the session's loop answers (its login shell has done its work), or the session ended. */
  readonly started = new Promise<void>((resolve) => { this.markStarted = resolve; });
  private reserved = false;

  /** Whether a command may be given to this session now (its channel may still be opening). */
  get available(): boolean { return !this.ended && this.running === undefined && !this.reserved; }

  get dead(): boolean { return this.ended !== undefined; }

  /** Claims the session for the caller's next run(). */
  reserve(): this { this.reserved = true; return this; }

  private channel: ClientChannel | undefined;
  private stderrTail = '';

  attach(channel: ClientChannel): void {
    this.channel = channel;
    channel.on('data', (chunk: Buffer) => this.onData(chunk));
    channel.stderr.on('data', (chunk: Buffer) => { this.stderrTail = (this.stderrTail + chunk.toString('utf8')).slice(-2000); });
    let exit: number | undefined;
    channel.on('exit', (code: number | null) => { if (typeof code === 'number') exit = code; });
    channel.on('close', () => this.end(exit));
  }

  /** Fails the session (and its command) as it is: the channel could not be opened. */
  fail(err: Error): void {
    this.ended ??= err;
    this.markStarted();
    if (!this.channel) this.markFinished();
    this.settle((r) => r.reject(err));
  }

  run(command: string, input: string | undefined, timeoutMs: number): Promise<ExecResult> {
    this.reserved = false;
    if (this.ended) return Promise.reject(this.ended);
    if (this.running || !this.channel) return Promise.reject(new Error('internal: remote session busy'));
    const channel = this.channel;
    return new Promise((resolve, reject) => {
      const running: Running = { id: this.nextId++, command, resolve, reject };
      this.running = running;
      running.timer = setTimeout(() => {
        running.timedOut = true;
        if (running.pid !== undefined) this.kill(running.pid);
        // The session stays busy until the killed command's reply arrives; the caller hears now.
        reject(new HostError(this.host, `command timed out after ${timeoutMs} ms: ${command}`));
      }, timeoutMs);
      channel.write(encodeRequest(running.id, command, input));
    });
  }

  close(): void {
    if (this.channel && !this.ended) this.channel.end();
    if (!this.channel) this.markFinished();
  }

  private onData(chunk: Buffer): void {
    let replies;
    try {
      replies = this.parser.push(chunk);
    } catch (err) {
      this.fail(new HostError(this.host, `the remote session on ${this.where} answered something it should not: ${(err as Error).message}`, { cause: err }));
      this.channel?.close();
      return;
    }
    for (const reply of replies) {
      if (reply.kind === 'ready') { this.ready = true; this.markStarted(); continue; }
      const running = this.running;
      if (!running || running.id !== reply.id) continue;
      if (reply.kind === 'started') {
        running.pid = reply.pid;
        if (running.timedOut) this.kill(reply.pid);
        continue;
      }
      clearTimeout(running.timer);
      this.running = undefined;
      if (running.timedOut) continue;
      running.resolve({
        code: reply.code,
        stdout: reply.stdout.subarray(Math.max(0, reply.stdout.length - MAX_OUTPUT)).toString('utf8'),
        stderr: reply.stderr.subarray(Math.max(0, reply.stderr.length - MAX_OUTPUT)).toString('utf8'),
      });
    }
  }

  private end(exit: number | undefined): void {
    this.markStarted();
    this.markFinished();
    if (this.ended) return;
    const lost = this.lost();
    if (lost) this.ended = lost;
    else if (!this.ready) this.ended = new SessionUnavailable(`the remote session on ${this.where} did not start (exit ${exit ?? 'unknown'}): ${this.stderrTail.trim()}`);
    else {
      const during = this.running ? ` while running: ${this.running.command}` : '';
      this.ended = new HostError(this.host, `the remote session on ${this.where} ended (exit ${exit ?? 'unknown'})${during}`, {
        hint: 'the session process was killed on the host or the host is short of memory; live traffic was not touched unless said otherwise above; run again once the host answers',
      });
    }
    this.settle((r) => { if (!r.timedOut) r.reject(this.ended!); });
  }

  private settle(how: (r: Running) => void): void {
    const running = this.running;
    this.running = undefined;
    if (!running) return;
    clearTimeout(running.timer);
    how(running);
  }
}
