import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The application's version: a VERSION file, else package.json's version, else "0". */
export function readVersion(dir: string): string {
  const versionFile = join(dir, 'VERSION');
  if (existsSync(versionFile)) return sanitize(readFileSync(versionFile, 'utf8').trim());
  const pkg = join(dir, 'package.json');
  if (existsSync(pkg)) {
    try {
      const v = (JSON.parse(readFileSync(pkg, 'utf8')) as { version?: unknown }).version;
      if (typeof v === 'string') return sanitize(v);
    } catch { /* not JSON: no version from it */ }
  }
  return '0';
}

function sanitize(v: string): string {
  return v.replace(/[^A-Za-z0-9._+-]/g, '_').slice(0, 40) || '0';
}

/** Release names sort by time and end with the content hash: 2026.11.22-223104-1.0.0-3fa9c2d1. */
export function releaseName(version: string, hash: string, now: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  const date = `${now.getUTCFullYear()}.${p(now.getUTCMonth() + 1)}.${p(now.getUTCDate())}-${p(now.getUTCHours())}${p(now.getUTCMinutes())}${p(now.getUTCSeconds())}`;
  return `${date}-${version}-${hash.slice(0, 8)}`;
}

/** What a release directory may be called: safe characters, and never "." or "..". */
export const RELEASE_NAME = /^(?!\.\.?$)[A-Za-z0-9._+-]+$/;
