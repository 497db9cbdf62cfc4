/*
 * A release's manifest: every regular file with its SHA-256, in sha256sum's format so that any host
 * can check a copy with `sha256sum -c` and no tool of ours. Its own hash names the content.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MANIFEST } from '../commands/release.js';
import { UpdateserverError } from '../errors.js';

async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function listFiles(root: string, dir = ''): Promise<string[]> {
  const entries = await readdir(join(root, dir), { withFileTypes: true });
  const files: string[] = [];
  for (const e of entries) {
    const rel = dir === '' ? e.name : `${dir}/${e.name}`;
    if (/[\n\\]/.test(rel)) throw new UpdateserverError(`cannot release a file whose name contains a newline or backslash: ${JSON.stringify(rel)}`);
    if (e.isDirectory()) files.push(...await listFiles(root, rel));
    else if (e.isFile() && rel !== MANIFEST) files.push(rel);
    // Symlinks travel as symlinks (rsync -a); their targets are checked where they are files of the release.
  }
  return files;
}

export interface Manifest {
  text: string;
  files: number;
  /** SHA-256 of the manifest text: equal content, equal hash. */
  hash: string;
}

export async function buildManifest(dir: string): Promise<Manifest> {
  const files = (await listFiles(dir)).sort();
  const lines: string[] = [];
  // Bounded parallelism: hashing is I/O bound, and thousands of open files would hit ulimit.
  for (let i = 0; i < files.length; i += 32) {
    const chunk = files.slice(i, i + 32);
    const sums = await Promise.all(chunk.map((f) => sha256(join(dir, f))));
    chunk.forEach((f, j) => lines.push(`${sums[j]}  ./${f}`));
  }
  const text = lines.length === 0 ? '' : `${lines.join('\n')}\n`;
  return { text, files: files.length, hash: createHash('sha256').update(text).digest('hex') };
}

export async function writeManifest(dir: string): Promise<Manifest> {
  const manifest = await buildManifest(dir);
  await writeFile(join(dir, MANIFEST), manifest.text);
  return manifest;
}
