// Load for zero-failure tests: keep-alive HTTP/1.1 requests on N connections, every outcome counted.
//
// Built on autocannon's client, with its bookkeeping replaced where it is not exact enough for a test
// that asserts "zero failures":
//  - autocannon silently reconnects when the server closes a connection with a request in flight and
//    sends the request again. Here that request counts as an error ("socket hang up"), except in the
//    one case where HTTP clients retry by themselves (RFC 9112 section 9.3.1, what browsers, curl and
//    HAProxy do): an idempotent request on a reused keep-alive connection that closed before any byte
//    of the response arrived. Those are counted in `retried`, and the retry's outcome is counted like
//    any other request. HAProxy 2.6 closes idle keep-alive connections when a reload soft-stops the
//    old worker (2.7 added `option idle-close-on-response`), and under load a request is often on
//    its way on such a connection: without this rule every reload would "fail" a few requests that
//    no real client would ever see fail;
//  - it ignores `Connection: close` and writes the next request on the closing connection, which would
//    count a correct server behaviour (HAProxy's soft stop, a draining app) as a failure; here the
//    client opens a new connection instead, as HTTP/1.1 clients do;
//  - its parser is not reset on reconnect, so a response cut in half corrupts the next one;
//  - stop() only takes effect at the next sample tick (1 s by default); here ticks are 50 ms.
import type { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { isIPv4 } from 'node:net';

export interface LoadResult {
  /** ok + non2xx + errors + timeouts: every request with an outcome (retried ones count once, by their retry) */
  requests: number;
  /** responses with a 2xx status */
  ok: number;
  /** responses with any other status */
  non2xx: number;
  /** requests that got no response: connection refused or reset, closed before or during the response */
  errors: number;
  /** requests without a response within timeoutMs */
  timeouts: number;
  /** idempotent requests lost on a reused keep-alive connection closed before any response byte, then sent again (not failures: every HTTP client retries these) */
  retried: number;
  /** responses by their X-Release header (responses without one are not counted here) */
  byRelease: Record<string, number>;
  durationMs: number;
}

export interface LoadOptions {
  /** default 8 */
  connections?: number;
  /** default GET */
  method?: string;
  /** request body (e.g. for POST /echo) */
  body?: string;
  headers?: Record<string, string>;
  /** hard stop, default 120000 */
  maxDurationMs?: number;
  /** a request without a response after this long counts as a timeout; default 10000, at least 1000 */
  timeoutMs?: number;
}

export interface Load { stop(): Promise<LoadResult>; snapshot(): LoadResult }

/** The part of autocannon's (untyped, CommonJS) client this module hooks into. */
interface Client extends EventEmitter {
  conn: EventEmitter;
  parser: { reinitialize(type: string): void };
  pipelinedRequests: { clear(): void };
  _connect(): void;
  _doRequest(): void;
  _destroyConnection(): void;
  _resetConnection(): void;
}
interface Instance extends EventEmitter { stop(): void }
type Autocannon = (opts: Record<string, unknown>, done: (error: Error | null) => void) => Instance;

const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

interface HeadersInfo { statusCode: number; headers: string[]; shouldKeepAlive: boolean }

export function assertLoopback(url: string): URL {
  const parsed = new URL(url);
  if (parsed.protocol !== 'http:') throw new Error(`load target ${url}: only http:// is supported`);
  if (!isIPv4(parsed.hostname) || !parsed.hostname.startsWith('127.')) {
    throw new Error(`load target ${url}: the host must be an address in 127.0.0.0/8 (no traffic may leave this machine)`);
  }
  return parsed;
}

export function startLoad(url: string, opts: LoadOptions = {}): Load {
  assertLoopback(url);
  const connections = opts.connections ?? 8;
  const maxDurationMs = opts.maxDurationMs ?? 120_000;
  const started = Date.now();
  let finished: number | undefined;
  const method = (opts.method ?? 'GET').toUpperCase();
  const idempotent = ['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'].includes(method);
  const counts = { ok: 0, non2xx: 0, errors: 0, timeouts: 0, retried: 0 };
  const byRelease: Record<string, number> = {};

  const snapshot = (): LoadResult => ({
    requests: counts.ok + counts.non2xx + counts.errors + counts.timeouts,
    ...counts,
    byRelease: { ...byRelease },
    durationMs: (finished ?? Date.now()) - started,
  });

  function instrument(client: Client): void {
    let inflight = 0;
    /** responses completed on the current connection: > 0 means it is a reused keep-alive connection */
    let responsesOnConnection = 0;
    /** bytes received since the request in flight was sent */
    let responseBytes = 0;
    let release: string | undefined;
    let closeAfterResponse = false;
    const original = { connect: client._connect, doRequest: client._doRequest, destroyConnection: client._destroyConnection };

    // The connection is gone with a request in flight; autocannon then sends it again on a new one.
    const lost = () => {
      if (inflight === 0) return;
      if (idempotent && responsesOnConnection > 0 && responseBytes === 0) counts.retried += inflight;
      else counts.errors += inflight;
      inflight = 0;
    };

    client._connect = function connect(this: Client) {
      this.parser.reinitialize('RESPONSE');
      this.pipelinedRequests.clear();
      release = undefined;
      closeAfterResponse = false;
      responsesOnConnection = 0;
      responseBytes = 0;
      original.connect.call(this);
      const conn = this.conn;
      // autocannon counts and reconnects on an error of any of its sockets, even one it has already
      // replaced (after an 'end'); only the current connection's errors concern its request.
      const [onError] = conn.listeners('error') as Array<(error: Error) => void>;
      conn.removeAllListeners('error');
      conn.on('error', (error: Error) => {
        if (this.conn === conn) onError?.call(conn, error);
      });
      // Before autocannon's own listeners, which parse (and may send the next request) or reconnect.
      conn.prependListener('data', (chunk: Buffer) => {
        if (this.conn === conn) responseBytes += chunk.length;
      });
      conn.prependListener('end', () => {
        if (this.conn === conn) lost();
      });
    };
    client._doRequest = function doRequest(this: Client) {
      if (closeAfterResponse) return this._resetConnection();
      return original.doRequest.call(this);
    };
    client._destroyConnection = function destroyConnection(this: Client) {
      // Timeouts are counted by the 'timeout' event; at the final stop, requests are abandoned.
      inflight = 0;
      return original.destroyConnection.call(this);
    };

    client.on('request', () => {
      inflight += 1;
      responseBytes = 0;
    });
    client.on('headers', (info: HeadersInfo | number) => {
      if (typeof info !== 'object') return; // http-parser-js switched to positional callbacks
      const at = info.headers.findIndex((name, i) => i % 2 === 0 && name.toLowerCase() === 'x-release');
      release = at === -1 ? undefined : info.headers[at + 1];
      if (!info.shouldKeepAlive) closeAfterResponse = true;
    });
    client.on('response', (statusCode: number) => {
      inflight = Math.max(0, inflight - 1);
      responsesOnConnection += 1;
      if (statusCode >= 200 && statusCode < 300) counts.ok += 1;
      else counts.non2xx += 1;
      if (release !== undefined) byRelease[release] = (byRelease[release] ?? 0) + 1;
      release = undefined;
    });
    client.on('connError', () => {
      // A reset is the same race as a close when HAProxy closes with our request unread.
      if (inflight === 0) counts.errors += 1;
      else lost();
    });
    client.on('timeout', () => { counts.timeouts += 1; });
  }

  let hardStop: NodeJS.Timeout | undefined;
  let resolveDone: (result: LoadResult) => void = () => undefined;
  const done = new Promise<LoadResult>((resolve) => { resolveDone = resolve; });
  const instance = autocannon({
    url,
    connections,
    pipelining: 1,
    method,
    body: opts.body,
    headers: opts.headers ?? {},
    duration: maxDurationMs / 1000,
    timeout: Math.max(1, (opts.timeoutMs ?? 10_000) / 1000),
    sampleInt: 50,
    setupClient: instrument,
  }, (error) => {
    finished = Date.now();
    clearTimeout(hardStop);
    if (error) counts.errors += 1;
    resolveDone(snapshot());
  });
  // Belt and braces: autocannon's own duration should end it first.
  if (finished === undefined) hardStop = setTimeout(() => instance.stop(), maxDurationMs + 1000);

  let stopping: Promise<LoadResult> | undefined;
  return {
    snapshot,
    stop() {
      stopping ??= (instance.stop(), done);
      return stopping;
    },
  };
}
