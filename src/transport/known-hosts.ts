/*
 * known_hosts in OpenSSH's format, read strictly: the tool trusts a host only when the key it offers
 * is listed for that host. Plain and hashed (|1|salt|hash) host fields, [host]:port for ports other
 * than 22, comma-separated patterns with * ? and ! negation, and @revoked markers are understood.
 * @cert-authority lines are ignored (host certificates are not supported yet), so they never vouch.
 */
import { createHash, createHmac } from 'node:crypto';
import { readFileSync, existsSync } from 'node:fs';

export interface KnownHostEntry {
  patterns: string;
  keyType: string;
  key: Buffer;
  revoked: boolean;
  line: number;
}

export function parseKnownHosts(text: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    let fields = line.split(/\s+/);
    let revoked = false;
    if (fields[0]?.startsWith('@')) {
      if (fields[0] === '@revoked') revoked = true;
      else return; // @cert-authority: not supported, never trusted
      fields = fields.slice(1);
    }
    const [patterns, keyType, keyBase64] = fields;
    if (!patterns || !keyType || !keyBase64) return;
    entries.push({ patterns, keyType, key: Buffer.from(keyBase64, 'base64'), revoked, line: i + 1 });
  });
  return entries;
}

/** The name OpenSSH looks up: "host" on port 22, "[host]:port" otherwise. */
export function hostLookupName(address: string, port: number): string {
  return port === 22 ? address : `[${address}]:${port}`;
}

/** Compiled once per pattern: a run checks every host of a fleet against every line of known_hosts. */
const compiled = new Map<string, RegExp>();

function globToRegExp(glob: string): RegExp {
  const cached = compiled.get(glob);
  if (cached) return cached;
  const escaped = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  const re = new RegExp(`^${escaped}$`, 'i');
  compiled.set(glob, re);
  return re;
}

function matchesHashed(field: string, name: string): boolean {
  const [, magic, salt, hash] = field.split('|');
  if (magic !== '1' || salt === undefined || hash === undefined) return false;
  const digest = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
  return digest === hash;
}

export function matchesHost(patterns: string, name: string): boolean {
  if (patterns.startsWith('|')) return matchesHashed(patterns, name);
  let matched = false;
  for (const p of patterns.split(',')) {
    if (p.startsWith('!')) {
      if (globToRegExp(p.slice(1)).test(name)) return false;
    } else if (globToRegExp(p).test(name)) {
      matched = true;
    }
  }
  return matched;
}

/** OpenSSH's fingerprint notation: SHA256:<base64 without padding>. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** The key type is the first string inside the key blob itself. */
export function keyTypeOf(key: Buffer): string {
  if (key.length < 4) return 'unknown';
  const len = key.readUInt32BE(0);
  return key.subarray(4, 4 + len).toString('ascii');
}

export type HostKeyVerdict =
  | { ok: true }
  | { ok: false; reason: 'unknown' | 'changed' | 'revoked'; fingerprint: string; keyType: string; line?: number };

export class KnownHosts {
  constructor(readonly file: string, private readonly entries: readonly KnownHostEntry[]) {}

  static load(file: string): KnownHosts {
    return new KnownHosts(file, existsSync(file) ? parseKnownHosts(readFileSync(file, 'utf8')) : []);
  }

  entriesFor(address: string, port: number): KnownHostEntry[] {
    const name = hostLookupName(address, port);
    return this.entries.filter((e) => matchesHost(e.patterns, name));
  }

  /** Key types listed for the host, so the connection negotiates a key that can be verified. */
  keyTypesFor(address: string, port: number): string[] {
    return [...new Set(this.entriesFor(address, port).filter((e) => !e.revoked).map((e) => e.keyType))];
  }

  verify(address: string, port: number, key: Buffer): HostKeyVerdict {
    const keyType = keyTypeOf(key);
    const base = { fingerprint: fingerprint(key), keyType };
    const revoked = this.entries.find((e) => e.revoked && e.key.equals(key));
    if (revoked) return { ok: false, reason: 'revoked', line: revoked.line, ...base };
    const mine = this.entriesFor(address, port).filter((e) => !e.revoked);
    if (mine.some((e) => e.key.equals(key))) return { ok: true };
    const sameType = mine.find((e) => e.keyType === keyType);
    if (sameType) return { ok: false, reason: 'changed', line: sameType.line, ...base };
    return { ok: false, reason: 'unknown', ...base };
  }
}
