/*
 * Migrations of a service, from its directory (seed 000): versioned files V<version>__<name>.sql, or
 * one file migrations.sql with "-- version: <n> <name>" separators; and an optional baseline
 * B<version>__<name>.sql that creates the schema of that version at once on an empty database, so
 * old migrations can be folded into it.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, type ConfigIssue } from '../../errors.js';

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
  file: string;
  baseline: boolean;
}

const FILE = /^([VB])(\d+)__([A-Za-z0-9_-]+)\.sql$/;
const SEPARATOR = /^--\s*version:\s*(\d+)\s*([A-Za-z0-9_-]*)\s*$/;
const checksum = (sql: string) => createHash('sha256').update(sql).digest('hex');

export async function loadMigrations(dir: string): Promise<Migration[]> {
  if (!existsSync(dir)) return [];
  const names = (await readdir(dir)).filter((n) => !n.startsWith('.')).sort();
  const issues: ConfigIssue[] = [];
  const migrations: Migration[] = [];
  const single = names.includes('migrations.sql');
  const versioned = names.filter((n) => n !== 'migrations.sql');
  if (single && versioned.some((n) => n.startsWith('V'))) {
    issues.push({ file: join(dir, 'migrations.sql'), path: '', message: 'use either V<version>__<name>.sql files or one migrations.sql, not both' });
  }
  for (const n of versioned) {
    const m = FILE.exec(n);
    if (!m) { issues.push({ file: join(dir, n), path: '', message: 'expected a name like V0003__add_index.sql (or B0002__baseline.sql for a baseline)' }); continue; }
    const sql = await readFile(join(dir, n), 'utf8');
    if (!sql.trim()) issues.push({ file: join(dir, n), path: '', message: 'the migration is empty' });
    migrations.push({ version: Number(m[2]), name: m[3]!, sql, checksum: checksum(sql), file: join(dir, n), baseline: m[1] === 'B' });
  }
  if (single) {
    const file = join(dir, 'migrations.sql');
    let current: { version: number; name: string; lines: string[]; line: number } | undefined;
    const flush = () => {
      if (!current) return;
      const sql = current.lines.join('\n').trim();
      if (!sql) issues.push({ file, path: '', line: current.line, message: `version ${current.version} is empty` });
      migrations.push({ version: current.version, name: current.name || `v${current.version}`, sql: `${sql}\n`, checksum: checksum(`${sql}\n`), file, baseline: false });
    };
    (await readFile(file, 'utf8')).split('\n').forEach((line, i) => {
      const sep = SEPARATOR.exec(line);
      if (sep) { flush(); current = { version: Number(sep[1]), name: sep[2] ?? '', lines: [], line: i + 1 }; return; }
      if (current) current.lines.push(line);
      else if (line.trim() && !line.trim().startsWith('--')) issues.push({ file, path: '', line: i + 1, message: 'SQL before the first "-- version: <n>" line' });
    });
    flush();
  }
  const seen = new Map<string, string>();
  for (const m of migrations) {
    const key = `${m.baseline ? 'B' : 'V'}${m.version}`;
    if (seen.has(key)) issues.push({ file: m.file, path: '', message: `version ${m.version} is defined twice (also in ${seen.get(key)})` });
    seen.set(key, m.file);
  }
  if (migrations.filter((m) => m.baseline).length > 1) issues.push({ file: dir, path: '', message: 'at most one baseline (B<version>__<name>.sql)' });
  if (issues.length > 0) throw new ConfigError(issues);
  return migrations.sort((a, b) => a.version - b.version || Number(b.baseline) - Number(a.baseline));
}
