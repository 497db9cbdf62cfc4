/*
 * Counts the remote exchanges of a run per host (issue 17): every command sent to a host (exec, one
 * request and its reply) and every stream opened on it (rsync's remote side), by wrapping the real
 * transports (every call goes on to the real connection, as with test/lab/recorder.ts). Sequential
 * exchanges are what a promotion pays per host in round trips (and, without remote sessions, in login
 * shells); the hosts of a stage work in parallel, so the count per host is the figure that matters.
 */
import type { Transport } from '../../src/transport/transport.js';
import type { StreamingTransport } from '../../src/transport/tunnel.js';
import type { Instrument } from '../../src/promote/stage-link.js';

export interface Exchange { kind: 'exec' | 'stream'; command: string }

export class ExchangeCounter {
  readonly byHost = new Map<string, Exchange[]>();

  private add(host: string, e: Exchange): void {
    const list = this.byHost.get(host) ?? [];
    list.push(e);
    this.byHost.set(host, list);
  }

  count(host: string): number {
    return this.byHost.get(host)?.length ?? 0;
  }

  instrument(): Instrument {
    return { transport: (t) => this.transport(t) };
  }

  transport(real: Transport): Transport {
    const streaming = real as Transport & Partial<StreamingTransport>;
    const wrapped: Transport & Partial<StreamingTransport> = {
      host: real.host,
      exec: (command, options) => { this.add(real.host, { kind: 'exec', command }); return real.exec(command, options); },
      openUnixSocket: (path) => real.openUnixSocket(path),
      close: () => real.close(),
    };
    if (streaming.stream) wrapped.stream = (command) => { this.add(real.host, { kind: 'stream', command }); return streaming.stream!(command); };
    return wrapped;
  }

  /** One line per host: its count and the first words of each exchange, for the test's output. */
  report(): string {
    return [...this.byHost.entries()].sort(([a], [b]) => a.localeCompare(b))
      .map(([host, list]) => `${host}: ${list.length} (${list.map((e) => `${e.kind} ${e.command.replace(/\s+/g, ' ').slice(0, 40)}`).join(' | ')})`)
      .join('\n');
  }
}
