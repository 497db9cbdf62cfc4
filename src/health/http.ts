/*
 * One HTTP request for a health check, on node:http. got would do, but loading it costs a promotion
 * 60-200 ms of start-up on a 2-core machine (measured: bench/README.md, "Start-up"), and a check needs
 * none of what it adds: no retries (p-retry does those, against the check's deadline), no redirects,
 * no decompression, one request per attempt on a fresh connection.
 */
import { request } from 'node:http';

export interface HttpAnswer {
  statusCode: number;
  /** Lower-case names, as node:http gives them. */
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** From sending the request to the end of the body. */
  totalMs: number;
}

export interface HttpRequest {
  method: string;
  headers: Record<string, string>;
  body?: string;
  /** For the whole exchange: connecting, sending, the answer and its body. */
  timeoutMs: number;
  signal?: AbortSignal;
}

export function httpRequest(url: string, options: HttpRequest): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = request(url, {
      method: options.method,
      headers: { connection: 'close', ...options.headers },
      // A fresh connection per attempt: an answer must come from the slot as it is now.
      agent: false,
      ...(options.signal ? { signal: options.signal } : {}),
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', fail);
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), totalMs: Math.round(performance.now() - started) });
      });
    });
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${options.timeoutMs} ms`)), Math.max(1, options.timeoutMs));
    function fail(err: Error): void {
      clearTimeout(timer);
      reject(err);
    }
    req.on('error', fail);
    req.end(options.body);
  });
}
