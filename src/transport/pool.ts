import type { Host } from '../config/model.js';
import { allLimited, eachLimited, limiter } from './runner.js';
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
   * Connects to every host (handshakes up to HANDSHAKES_AT_ONCE at once) and starts each host's remote
   * session as soon as its handshake is done, at most `limit` hosts at once (issue 17): a login shell
   * doing its work (~/.bashrc) is work on the host, and the profile's `parallel` bounds the hosts worked
   * on at once. Starting a session changes nothing on the host (its temporary directory goes with it),
   * so it need not wait for the other handshakes; on a large fleet the two overlap, and the run's first
   * commands find every session ready. A host that fails its handshake still fails the whole call.
   */
  async connectAll(hosts: readonly Host[], limit: number): Promise<void> {
    this.limit = limit;
    const sessions = limiter(limit);
    await allLimited(hosts.filter((h) => !this.open.has(h.name)), Math.max(limit, HANDSHAKES_AT_ONCE), async (h) => {
      const t = await this.connector(h);
      // A connection that completes after the pool was closed (another host failed first) is closed at once.
      if (this.closed) return t.close();
      this.open.set(h.name, t);
      await sessions(async () => { await (t as Transport & Partial<SessionStarter>).startSessions?.(); });
    });
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
