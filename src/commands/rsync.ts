/*
 * rsync over OpenSSH for code transfer. rsync's ssh gets the same strict host-key policy and the same
 * known_hosts file as the ssh2 connections, and batch mode so it can never stop to ask a question.
 */
import type { Host } from '../config/model.js';

export function sshCommand(host: Host): string[] {
  const argv = [
    'ssh', '-p', String(host.port),
    '-o', 'BatchMode=yes',
    '-o', 'StrictHostKeyChecking=yes',
    '-o', `UserKnownHostsFile=${host.knownHosts}`,
    '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', `ConnectTimeout=${Math.ceil(host.connectTimeoutMs / 1000)}`,
  ];
  if (host.key !== undefined) argv.push('-i', host.key, '-o', 'IdentitiesOnly=yes');
  return argv;
}

export interface RsyncOptions {
  /** Source and destination in rsync syntax; a remote side is written as `<remote>:<path>`. */
  source: string;
  destination: string;
  /** The host at the remote end; its ssh options are used. */
  remote?: Host;
  /** Unchanged files are hard-linked from this directory (relative paths are relative to the destination). */
  linkDest?: string;
  excludes?: readonly string[];
  /** Transfer exactly the files listed in this local file (paths relative to the source). */
  filesFrom?: string;
  /** A remote shell of our own (the run's SSH connection, see transport/tunnel.ts) instead of OpenSSH. */
  rsh?: string;
  /**
   * A shell command the remote side runs before its rsync (e.g. creating the parent directories):
   * `--rsync-path='<setup> && rsync'`, which saves a round trip of its own.
   */
  remoteSetup?: string;
}

/** A host reached through the tunnel is named by its profile name: the tunnel knows its connection. */
export function tunnelSpec(host: Host, path: string): string {
  return `${host.name}:${path}`;
}

export function remoteSpec(host: Host, path: string): string {
  // An IPv6 address in brackets, or rsync would read "host::module" as daemon syntax.
  const address = host.address.includes(':') ? `[${host.address}]` : host.address;
  return `${host.user}@${address}:${path}`;
}

/**
 * rsync splits its -e string itself: on spaces, honouring single and double quotes but not
 * backslashes, so the POSIX shell's '\'' escape cannot be used here.
 */
export function rsyncShellWord(word: string): string {
  if (/^[A-Za-z0-9_./:=@%+,-]+$/.test(word)) return word;
  if (!word.includes("'")) return `'${word}'`;
  if (!word.includes('"')) return `"${word}"`;
  throw new Error(`cannot pass ${JSON.stringify(word)} to rsync's ssh: it holds both kinds of quote`);
}

export function rsyncArgv(o: RsyncOptions): string[] {
  // Plain -a keeps times and modes, which is what makes the next delta small. --checksum: a file is
  // taken as unchanged (skipped, or hard-linked from --link-dest) only when its content is, never on
  // size and modification time alone, which miss an edit of the same size within the same second.
  const argv = ['rsync', '-a', '--checksum', '--delete', '--stats'];
  if (o.rsh !== undefined) argv.push('-e', o.rsh);
  else if (o.remote) argv.push('-e', sshCommand(o.remote).map(rsyncShellWord).join(' '));
  if (o.remoteSetup !== undefined) argv.push(`--rsync-path=${o.remoteSetup} && rsync`);
  if (o.linkDest !== undefined) argv.push(`--link-dest=${o.linkDest}`);
  for (const e of o.excludes ?? []) argv.push(`--exclude=${e}`);
  if (o.filesFrom !== undefined) argv.push(`--files-from=${o.filesFrom}`);
  argv.push(o.source, o.destination);
  return argv;
}

/** Bytes actually sent, from rsync --stats ("Total bytes sent: 1,234"). */
export function bytesSent(stats: string): number | undefined {
  const m = /Total bytes sent: ([\d,.]+)/.exec(stats);
  return m?.[1] === undefined ? undefined : Number(m[1].replace(/[,.]/g, ''));
}
