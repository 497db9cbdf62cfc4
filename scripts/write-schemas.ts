/*
 * Writes schema/*.schema.json from the zod schemas (npm run schema). The files are committed, and
 * test/unit/json-schema.test.ts fails when they differ from what this would write.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jsonSchemaText, SCHEMA_FILES, type SchemaName } from '../src/config/json-schema.js';

/** Compiled to dist/scripts/, so the repository is two levels up. */
const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

for (const which of Object.keys(SCHEMA_FILES) as SchemaName[]) {
  const file = join(REPO, SCHEMA_FILES[which].file);
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, jsonSchemaText(which));
  process.stdout.write(`wrote ${SCHEMA_FILES[which].file}\n`);
}
