/*
 * Release names: made once, by the first stage, from the profile's `releaseName` template; every later
 * stage keeps the name. Seed 003 names a release by its data, date, version and revision
 * (WS221-2010.12.24-0.02-1350); the default names it by date, version and content hash.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const NAME_PLACEHOLDERS = ['data', 'date', 'version', 'rev', 'hash'] as const;
export type NamePlaceholder = (typeof NAME_PLACEHOLDERS)[number];
export const DEFAULT_RELEASE_NAME = '{date}-{version}-{hash}';
/** What a release is called when its service has no database: {data} is never empty. */
export const NO_DATA = 'nodata';

/** What a release directory may be called: safe characters, and never "." or "..". */
export const RELEASE_NAME = /^(?!\.\.?$)[A-Za-z0-9._+-]+$/;
const LITERAL = /^[A-Za-z0-9._+-]*$/;

/**
 * The application's version: a VERSION file, else package.json's version, else the git tag at the
 * source commit (when there is one), else "0".
 */
export function readVersion(dir: string, tag?: string): string {
  const versionFile = join(dir, 'VERSION');
  if (existsSync(versionFile)) return sanitize(readFileSync(versionFile, 'utf8').trim());
  const pkg = join(dir, 'package.json');
  if (existsSync(pkg)) {
    try {
      const v = (JSON.parse(readFileSync(pkg, 'utf8')) as { version?: unknown }).version;
      if (typeof v === 'string') return sanitize(v);
    } catch { /* not JSON: no version from it */ }
  }
  return tag === undefined ? '0' : sanitize(tag);
}

function sanitize(v: string): string {
  return v.replace(/[^A-Za-z0-9._+-]/g, '_').slice(0, 40) || '0';
}

/** UTC, sortable as a string: 2026.11.29-142301. */
export function formatDate(now: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${now.getUTCFullYear()}.${p(now.getUTCMonth() + 1)}.${p(now.getUTCDate())}-${p(now.getUTCHours())}${p(now.getUTCMinutes())}${p(now.getUTCSeconds())}`;
}

export interface NameFacts {
  now: Date;
  version: string;
  /** The content hash (manifest's SHA-256); its first 8 characters go into the name. */
  hash: string;
  /** Short commit of the source; undefined when the source is not from git. */
  rev: string | undefined;
  /** The data version the release starts with, or NO_DATA. */
  data: string;
}

/** Placeholders of a template, in order (with repeats). */
const placeholdersOf = (template: string) => [...template.matchAll(/\{([^{}]*)\}/g)].map((m) => m[1] ?? '');

/** What is wrong with a template, one message per problem; empty when it is usable. */
export function templateProblems(template: string): string[] {
  const problems: string[] = [];
  const allowed = NAME_PLACEHOLDERS.map((p) => `{${p}}`).join(' ');
  for (const p of new Set(placeholdersOf(template))) {
    if (!(NAME_PLACEHOLDERS as readonly string[]).includes(p)) problems.push(`unknown placeholder {${p}} (allowed: ${allowed})`);
  }
  const literal = template.replace(/\{[^{}]*\}/g, '');
  if (!LITERAL.test(literal)) problems.push('only letters, digits, ".", "_", "+" and "-" may stand between the placeholders');
  // Two different contents under one name would make a host reuse the wrong release.
  if (!['date', 'hash', 'rev'].some((p) => placeholdersOf(template).includes(p))) {
    problems.push('expected {date}, {hash} or {rev} in the name, so that different code never gets the same name');
  }
  return problems;
}

export const usesPlaceholder = (template: string, p: NamePlaceholder) => placeholdersOf(template).includes(p);

/** The name of a release; the template was validated with the profile. */
export function renderReleaseName(template: string, facts: NameFacts): string {
  const values: Record<NamePlaceholder, string | undefined> = {
    data: facts.data, date: formatDate(facts.now), version: facts.version, rev: facts.rev, hash: facts.hash.slice(0, 8),
  };
  return template.replace(/\{([a-z]+)\}/g, (_, key: NamePlaceholder) => {
    const value = values[key];
    if (value === undefined) throw new Error(`internal: no value for {${key}}`);
    return value;
  });
}
