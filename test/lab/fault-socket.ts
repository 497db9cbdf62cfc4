/*
 * A UNIX socket in front of an HAProxy runtime socket that passes every command through except those
 * matching a pattern, which it refuses: with an error text the way HAProxy refuses ("Permission
 * denied"), or by closing the connection without a word (the command is lost, as with a proxy or an
 * SSH forward that dies). It makes one load balancer fail in the middle of a switch while everything
 * asked of it before (show map, show stat, set server ... health) still works.
 *
 * Point a load balancer's `socket` in the profile at `path` (startPipeline's `betaSockets`); the real
 * HAProxy keeps listening on its own socket, `target`. Like HAProxy's non-interactive mode, one command
 * per connection: the first line decides, and HAProxy's close ends the answer.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { rm } from 'node:fs/promises';

/** How a refused command is answered: this text (then the connection is closed), or 'close': nothing at all. */
export type FaultAnswer = string | 'close';

export interface FaultRule {
  /** Commands (their first line, without the newline) to refuse; undefined: refuse nothing. */
  refuse?: RegExp | undefined;
  /** Default "Permission denied\n\n", HAProxy's own refusal of a command above the socket's level. */
  answer?: FaultAnswer;
}

export interface FaultSocket {
  /** The proxy's socket: the one to name in the profile. */
  readonly path: string;
  /** The real runtime socket every other command goes to. */
  readonly target: string;
  /** Commands refused so far, in order. */
  readonly refused: string[];
  /** Commands passed through so far, in order. */
  readonly passed: string[];
  /** Changes what is refused from the next connection on. */
  set(rule: FaultRule): void;
  close(): Promise<void>;
}

export const PERMISSION_DENIED = 'Permission denied\n\n';

export async function startFaultSocket(path: string, target: string, rule: RegExp | FaultRule = {}): Promise<FaultSocket> {
  let current: FaultRule = rule instanceof RegExp ? { refuse: rule } : rule;
  const refused: string[] = [];
  const passed: string[] = [];
  const open = new Set<Socket>();

  const server: Server = createServer((client) => {
    open.add(client);
    client.on('close', () => open.delete(client));
    client.on('error', () => {});
    const { refuse, answer = PERMISSION_DENIED } = current;
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const newline = buffered.indexOf(0x0a);
      if (newline === -1) return;
      client.off('data', onData);
      client.pause();
      const command = buffered.subarray(0, newline).toString('utf8').replace(/\r$/, '');
      if (refuse?.test(command)) {
        refused.push(command);
        if (answer === 'close') client.destroy();
        else client.end(answer);
        return;
      }
      passed.push(command);
      const upstream = createConnection(target);
      open.add(upstream);
      // HAProxy's close ends the answer: the pipe passes it on once everything is written.
      upstream.on('close', () => open.delete(upstream));
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      upstream.once('connect', () => {
        upstream.write(buffered);
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
    };
    client.on('data', onData);
  });
  await rm(path, { force: true });
  await new Promise<void>((ok, fail) => { server.once('error', fail); server.listen(path, () => { server.off('error', fail); ok(); }); });
  return {
    path, target, refused, passed,
    set(next: FaultRule) { current = next; },
    close: () => new Promise((ok) => {
      for (const s of open) s.destroy();
      server.close(() => ok());
    }),
  };
}
