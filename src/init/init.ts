/*
 * `updateserver init [dir]`: a starter project to edit. The files are the repository's own
 * starter/ (two stages, health checks, an example migration, a systemd unit for slots), its HAProxy
 * template and its JSON Schemas, which the starter YAML names on its first line so that an editor
 * completes and checks it. Existing files are never overwritten without --force.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { ConfigError } from '../errors.js';
import { TEMPLATE_FILE } from '../lb/config.js';
import { SCHEMA_FILES } from '../config/json-schema.js';

import { PACKAGE_DIR } from '../package-dir.js';
const STARTER_DIR = join(PACKAGE_DIR, 'starter');

export interface StarterFile {
  /** Absolute path of the file shipped with updateserver. */
  from: string;
  /** Path in the new project. */
  to: string;
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const nested = await Promise.all(entries.map((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)])));
  return nested.flat().sort();
}

/** What init writes, and from where: nothing is generated here, so the starter can be read as it is in the repository. */
export async function starterFiles(): Promise<StarterFile[]> {
  return [
    ...(await filesUnder(STARTER_DIR)).map((f) => ({ from: f, to: relative(STARTER_DIR, f) })),
    { from: join(PACKAGE_DIR, TEMPLATE_FILE), to: TEMPLATE_FILE },
    ...Object.values(SCHEMA_FILES).map((s) => ({ from: join(PACKAGE_DIR, s.file), to: s.file })),
  ];
}

export interface InitResult { dir: string; written: string[]; overwritten: string[] }

export async function initProject(dir: string, options: { force?: boolean } = {}): Promise<InitResult> {
  const files = await starterFiles();
  const existing = files.filter((f) => existsSync(join(dir, f.to))).map((f) => f.to);
  if (existing.length > 0 && !options.force) {
    throw new ConfigError(existing.map((file) => ({ file: join(dir, file), path: '', message: 'exists already; init writes nothing when any of its files exists' })),
      'run init in an empty directory, move these files away, or add --force to overwrite them');
  }
  for (const f of files) {
    await mkdir(dirname(join(dir, f.to)), { recursive: true });
    await copyFile(f.from, join(dir, f.to));
  }
  return { dir, written: files.map((f) => f.to), overwritten: existing };
}
