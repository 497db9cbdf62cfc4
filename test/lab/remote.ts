// Driving lab hosts from tests the way an operator would: the ssh and rsync command-line tools with
// the lab's key and strict host-key checking, and the sample application started detached.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runOrThrow, sleep } from './exec.js';
import type { Lab, LabHost } from './lab.js';

/** test/fixtures/app, found from this module whether it runs from test/lab or dist/test/lab. */
export const sampleAppDir: string = (() => {
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    const candidate = join(dir, 'test', 'fixtures', 'app');
    if (existsSync(join(candidate, 'server.mjs'))) return candidate;
  }
  throw new Error('test/fixtures/app not found above test/lab');
})();

type Keys = Pick<Lab, 'keyFile' | 'knownHosts'>;

/** ssh options for a lab host, as strict as production: known host keys only, no prompts. */
export function sshOptions(lab: Keys, host: Pick<LabHost, 'port'>): string[] {
  return [
    '-i', lab.keyFile,
    '-o', `UserKnownHostsFile=${lab.knownHosts}`,
    '-o', 'StrictHostKeyChecking=yes',
    '-o', 'BatchMode=yes',
    '-o', 'IdentitiesOnly=yes',
    '-p', String(host.port),
  ];
}

/** Runs a shell command as root on a host; resolves with its stdout, rejects with its stderr. */
export function ssh(lab: Keys, host: LabHost, command: string): Promise<string> {
  return runOrThrow('ssh', [...sshOptions(lab, host), `root@${host.address}`, command]);
}

/** rsync -a of a local directory's content to a directory on a host, over the lab's ssh. */
export async function rsyncTo(lab: Keys, host: LabHost, localDir: string, remoteDir: string): Promise<void> {
  const quote = (arg: string) => (/^[\w./=@:+-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`);
  const rsh = ['ssh', ...sshOptions(lab, host)].map(quote).join(' ');
  await runOrThrow('rsync', ['-a', '--delete', '-e', rsh, `${localDir.replace(/\/?$/, '/')}`, `root@${host.address}:${remoteDir.replace(/\/?$/, '/')}`]);
}

export interface AppOptions {
  /** release directory on the host holding server.mjs; default /srv/app */
  dir?: string;
  port: number;
  slot: string;
  release: string;
  /** default <dir>.log */
  logFile?: string;
}

/**
 * Starts the sample app (already copied to opts.dir) on a host, detached from the SSH session so it
 * outlives it, listening on the host's own address; resolves once GET / answers.
 */
export async function startSampleApp(lab: Keys, host: LabHost, opts: AppOptions): Promise<void> {
  const dir = opts.dir ?? '/srv/app';
  const log = opts.logFile ?? `${dir.replace(/\/$/, '')}.log`;
  const args = ['--host', host.address, '--port', String(opts.port), '--slot', opts.slot, '--release', opts.release].join(' ');
  await ssh(lab, host, `setsid sh -c 'cd ${dir} && exec node server.mjs ${args}' </dev/null >${log} 2>&1 &`);
  await waitForHttp(`http://${host.address}:${opts.port}/`);
}

/** Polls url until it answers 2xx; rejects after timeoutMs with the last error or status. */
export async function waitForHttp(url: string, timeoutMs = 10_000): Promise<Response> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (response.ok) return response;
      last = `HTTP ${response.status}`;
      await response.body?.cancel();
    } catch (error) {
      last = (error as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`${url}: not answering after ${timeoutMs} ms (${last})`);
    await sleep(25);
  }
}
