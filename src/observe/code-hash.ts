/*
 * The hash that names a release's code: SHA-256 of its manifest (which lists every file's SHA-256),
 * read from a host or from the local relay cache. Equal hashes, byte-identical code.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Service } from '../config/model.js';
import { MANIFEST, readManifestWithHash } from '../commands/release.js';
import { HostError } from '../errors.js';
import { run, type Transport } from '../transport/transport.js';

/** A release's manifest as a host has it, and its hash (computed there, over the file's exact bytes). */
export async function readHostManifest(transport: Transport, service: Service, release: string): Promise<{ hash: string; text: string }> {
  const { stdout } = await run(transport, readManifestWithHash(service, release), { what: `reading the manifest of ${release}` });
  const newline = stdout.indexOf('\n');
  const hash = /^[0-9a-f]{64}/.exec(stdout.slice(0, newline))?.[0];
  if (!hash) throw new HostError(transport.host, `sha256sum of the manifest of ${release} said "${stdout.slice(0, newline).trim()}"`);
  return { hash, text: stdout.slice(newline + 1) };
}

export async function hostCodeHash(transport: Transport, service: Service, release: string): Promise<string> {
  return (await readHostManifest(transport, service, release)).hash;
}

export async function cachedCodeHash(cacheDir: string): Promise<string> {
  return createHash('sha256').update(await readFile(join(cacheDir, MANIFEST))).digest('hex');
}
