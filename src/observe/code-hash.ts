/*
 * The hash that names a release's code: SHA-256 of its manifest (which lists every file's SHA-256),
 * read from a host or from the local relay cache. Equal hashes, byte-identical code.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Service } from '../config/model.js';
import { MANIFEST, manifestHash } from '../commands/release.js';
import { HostError } from '../errors.js';
import { run, type Transport } from '../transport/transport.js';

export async function hostCodeHash(transport: Transport, service: Service, release: string): Promise<string> {
  const { stdout } = await run(transport, manifestHash(service, release), { what: `hashing the manifest of ${release}` });
  const hash = /^[0-9a-f]{64}/.exec(stdout.trim())?.[0];
  if (!hash) throw new HostError(transport.host, `sha256sum of the manifest of ${release} said "${stdout.trim()}"`);
  return hash;
}

export async function cachedCodeHash(cacheDir: string): Promise<string> {
  return createHash('sha256').update(await readFile(join(cacheDir, MANIFEST))).digest('hex');
}
