/*
 * A service's migrations, from its directory (seed 000: "in various directories or even in a single
 * file with various separators identifying the version"): either versioned files V<version>__<name>.sql,
 * or one file migrations.sql cut by "-- version: <n> <name>" lines. Either layout may add one baseline
 * B<version>__<name>.sql: the whole schema of that version, applied at once to a database that has no
 * version yet, so that old migrations can be folded into it ("migrate from time to time the alter
 * commands in the base create script and just modify its version").
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, type ConfigIssue } from '../../errors.js';

export interface Migration {
  version: number;
  name: string;
  sql: string;
  /** sha256 (hex) of sql. */
  checksum: string;
  /** The file it comes from: its own, or migrations.sql. */
  file: string;
  baseline: boolean;
}

export const SINGLE_FILE = 'migrations.sql';
/** The version column is a 32-bit integer. */
export const MAX_VERSION = 2_147_483_647;

const FILE = /^([VB])(\d+)__([A-Za-z0-9_-]+)\.sql$/;
const SEPARATOR = /^--[ \t]*version[ \t]*:[ \t]*(\d+)(?:[ \t]+([A-Za-z0-9_-]+))?[ \t]*$/i;
const LOOKS_LIKE_SEPARATOR = /^--[ \t]*version[ \t]*:/i;

export const checksumOf = (sql: string): string => createHash('sha256').update(sql).digest('hex');

/** Line endings and a byte-order mark are not content: a checkout on Windows must not "change" a migration. */
const normalise = (text: string): string => text.replace(/^\uFEFF/, '').replace(/\r\n?/g, '\n');

/** The text with its SQL comments blanked out; lines stay where they were. */
/**
 * The SQL with its comments blanked (line breaks kept, so line numbers hold). One left-to-right scan:
 * whichever of a line comment, a block comment or a quoted string starts first decides, so a `/*` inside
 * a `--` comment, or a `--` inside a string, is not taken for the start of a comment.
 */
function withoutComments(sql: string): string {
  let out = '';
  let i = 0;
  const blank = (text: string) => text.replace(/[^\n]/g, ' ');
  while (i < sql.length) {
    const c = sql[i]!;
    const lineStart = i === 0 || /\s/.test(sql[i - 1]!);
    let end = -1;
    if (c === '/' && sql[i + 1] === '*') {
      const close = sql.indexOf('*/', i + 2);
      end = close < 0 ? sql.length : close + 2;
      out += blank(sql.slice(i, end));
    } else if (lineStart && (c === '#' || (c === '-' && sql[i + 1] === '-'))) {
      const nl = sql.indexOf('\n', i);
      end = nl < 0 ? sql.length : nl;
      out += blank(sql.slice(i, end));
    } else if (c === "'" || c === '"' || c === '`') {
      const close = sql.indexOf(c, i + 1);
      end = close < 0 ? sql.length : close + 1;
      out += sql.slice(i, end);
    }
    if (end >= 0) { i = end; continue; }
    out += c;
    i++;
  }
  return out;
}

/** True when the text has something besides blanks and SQL comments. */
export function hasStatements(sql: string): boolean {
  return withoutComments(sql).trim().length > 0;
}

export async function loadMigrations(dir: string): Promise<Migration[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => !n.startsWith('.')).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') throw new ConfigError([{ file: dir, path: '', message: 'the migrations directory is a file' }]);
    throw err;
  }
  const issues: ConfigIssue[] = [];
  const migrations: Migration[] = [];
  const single = names.includes(SINGLE_FILE);
  if (single && names.some((n) => n.startsWith('V'))) {
    issues.push({ file: join(dir, SINGLE_FILE), path: '', message: `use either V<version>__<name>.sql files or one ${SINGLE_FILE}, not both (found ${names.filter((n) => n.startsWith('V')).join(', ')})` });
  }
  for (const n of names) {
    if (n === SINGLE_FILE) continue;
    const file = join(dir, n);
    const m = FILE.exec(n);
    if (!m || !(await stat(file)).isFile()) {
      issues.push({ file, path: '', message: `not a migration: expected a file named like V0003__add_index.sql (or B0002__baseline.sql for a baseline, or one ${SINGLE_FILE})` });
      continue;
    }
    const version = Number(m[2]);
    if (version > MAX_VERSION) { issues.push({ file, path: '', message: `version ${m[2]} is above ${MAX_VERSION}` }); continue; }
    const sql = normalise(await readFile(file, 'utf8'));
    if (!hasStatements(sql)) issues.push({ file, path: '', message: 'the migration is empty' });
    migrations.push({ version, name: m[3]!, sql, checksum: checksumOf(sql), file, baseline: m[1] === 'B' });
  }
  if (single) migrations.push(...parseSingleFile(join(dir, SINGLE_FILE), normalise(await readFile(join(dir, SINGLE_FILE), 'utf8')), issues));

  const seen = new Map<string, Migration>();
  for (const m of migrations) {
    const key = m.baseline ? 'B' : `V${m.version}`;
    const first = seen.get(key);
    if (!first) { seen.set(key, m); continue; }
    issues.push({
      file: m.file, path: '',
      message: m.baseline ? `a second baseline (the first is ${first.file}): keep one B<version>__<name>.sql`
        : `version ${m.version} is defined twice (also ${first.file === m.file ? `earlier in this file` : `in ${first.file}`})`,
    });
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return migrations.sort((a, b) => a.version - b.version || Number(b.baseline) - Number(a.baseline));
}

/** migrations.sql: "-- version: <n> <name>" starts a version; its SQL runs to the next such line. */
function parseSingleFile(file: string, text: string, issues: ConfigIssue[]): Migration[] {
  const out: Migration[] = [];
  let current: { version: number; name: string; line: number; lines: string[] } | undefined;
  const flush = () => {
    if (!current) return;
    const body = current.lines.join('\n').trim();
    if (!hasStatements(body)) issues.push({ file, path: '', line: current.line, message: `version ${current.version} is empty` });
    const sql = `${body}\n`;
    out.push({ version: current.version, name: current.name, sql, checksum: checksumOf(sql), file, baseline: false });
  };
  const preamble: string[] = [];
  text.split('\n').forEach((line, i) => {
    const sep = SEPARATOR.exec(line.trim());
    if (sep) {
      flush();
      const version = Number(sep[1]);
      if (version > MAX_VERSION) issues.push({ file, path: '', line: i + 1, message: `version ${sep[1]} is above ${MAX_VERSION}` });
      current = { version, name: sep[2] ?? `v${version}`, line: i + 1, lines: [] };
      return;
    }
    if (LOOKS_LIKE_SEPARATOR.test(line.trim())) {
      // A mistyped separator would otherwise glue two versions into one without a word.
      issues.push({ file, path: '', line: i + 1, message: 'expected "-- version: <number> <name>" (name: letters, digits, _ and -)' });
      return;
    }
    if (current) current.lines.push(line);
    else preamble.push(line);
  });
  flush();
  if (hasStatements(preamble.join('\n'))) {
    issues.push({ file, path: '', line: withoutComments(preamble.join('\n')).split('\n').findIndex((l) => l.trim() !== '') + 1, message: 'SQL before the first "-- version: <number> <name>" line' });
  }
  if (out.length === 0 && !issues.some((x) => x.file === file)) issues.push({ file, path: '', message: 'no "-- version: <number> <name>" line: the file holds no migration' });
  return out;
}
