import type { Host } from '../config/model.js';
import { allLimited, eachLimited } from './runner.js';
import { SshTransport } from './ssh.js';
import type { Transport } from './transport.js';

export type Connector = (host: Host) => Promise<Transport>;

/** A transport whose remote sessions start when asked (SshTransport opened with sessions: 'later'). */
interface SessionStarter { startSessions(): Promise<void> }

/**
 * SSH handshakes in flight at once. A handshake is no work on a host (nothing runs there), so it is
 * not bounded by `parallel`; this only keeps a very large fleet from opening every socket at once.
 */
export const HANDSHAKES_AT_ONCE = 64;

/**
 * One connection per host for the whole run. Opening every connection first means an unreachable
 * host or a refused host key stops the run before anything has changed anywhere.
 */
export class TransportPool {
  private readonly open = new Map<string, Transport>();
  private closed = false;
  /** The `parallel` of connectAll: closing is work on the hosts too (each session's clean-up). */
  private limit: number | undefined;
  constructor(private readonly connector: Connector = (h) => SshTransport.connect(h, { sessions: 'later' })) {}

  /**
   * Connects to every host (handshakes up to HANDSHAKES_AT_ONCE at once), then starts each host's remote
   * session, at most `limit` hosts at once (issue 17): a login shell doing its work (~/.bashrc) is work
   * on the host, and the profile's `parallel` bounds the hosts worked on at once. The run's first
   * commands then find every session ready.
   */
  async connectAll(hosts: readonly Host[], limit: number): Promise<void> {
    this.limit = limit;
    const opened: Transport[] = [];
    await allLimited(hosts.filter((h) => !this.open.has(h.name)), Math.max(limit, HANDSHAKES_AT_ONCE), async (h) => {
      const t = await this.connector(h);
      // A connection that completes after the pool was closed (another host failed first) is closed at once.
      if (this.closed) await t.close();
      else {
        this.open.set(h.name, t);
        opened.push(t);
      }
    });
    await allLimited(opened, limit, async (t) => { await (t as Transport & Partial<SessionStarter>).startSessions?.(); });
  }

  get(host: string): Transport {
    const t = this.open.get(host);
    if (!t) throw new Error(`internal: no connection to host ${host}; connectAll() first`);
    return t;
  }

  find(host: string): Transport | undefined {
    return this.open.get(host);
  }

  async closeAll(): Promise<void> {
    this.closed = true;
    const all = [...this.open.values()];
    this.open.clear();
    // At most `parallel` hosts at once, like every other piece of work on them; a close never throws here.
    await eachLimited(all, this.limit ?? Math.max(1, all.length), (t) => t.close());
  }
}
