/*
 * Where updateserver's own files are (package.json, starter/, lb-templates/, schema/). Found by walking
 * up from this module rather than by a fixed number of `..`: the same code runs as tsc's output
 * (dist/src/...) in the tests and as the bundle (dist/bin/) that the `updateserver` command starts.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findPackageDir(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'lb-templates'))) return dir;
    if (dirname(dir) === dir) throw new Error(`internal: updateserver's package directory (with package.json and lb-templates/) is not above ${from}`);
  }
}

export const PACKAGE_DIR = findPackageDir(dirname(fileURLToPath(import.meta.url)));
