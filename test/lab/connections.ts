/*
 * Proof that a command opened no connection: a listener that counts connection attempts (standing in
 * for a host that is not in the lab), and the lab hosts' own sshd logs (sshd runs with LogLevel VERBOSE,
 * which logs every accepted TCP connection as "Connection from ...", before any key exchange).
 */
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import type { LabHost } from './lab.js';

export interface ConnectionCounter { readonly count: number; close(): Promise<void> }

/** Listens at address:port and counts every connection made to it (each is closed at once). */
export async function countConnections(address: string, port: number): Promise<ConnectionCounter> {
  let count = 0;
  const server = createServer((s) => { count++; s.destroy(); });
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(port, address, resolve); });
  return {
    get count() { return count; },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The file the host's sshd logs to (test/lab/lab-host.ts: <host dir>/sshd.log, next to srv/). */
export const sshdLogOf = (host: LabHost): string => join(dirname(host.srv), 'sshd.log');

/** TCP connections each host's sshd has accepted so far, by host name. */
export async function sshdConnections(hosts: readonly LabHost[]): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const host of hosts) {
    const log = await readFile(sshdLogOf(host), 'utf8');
    counts[host.name] = log.split('\n').filter((line) => line.includes('Connection from ')).length;
  }
  return counts;
}
