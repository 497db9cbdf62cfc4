/*
 * A service's migration files are input like its profile: a misnamed file or a version defined twice
 * is refused before the first connection (exit 2), and named by its path in the project, as every
 * other message names files.
 */
import { isAbsolute, relative, sep } from 'node:path';
import { loadMigrations, type Migration } from '../data/migrations/files.js';
import { ConfigError, type ConfigIssue } from '../errors.js';
import type { Project, Service, Stage } from './model.js';

/** A path as the user would write it: relative to the project when inside it. */
export function projectPath(project: Project, file: string): string {
  const rel = relative(project.dir, file);
  return rel === '' ? '.' : rel.startsWith('..') || isAbsolute(rel) ? file : rel;
}

/** The service's migrations; a ConfigError names its files relative to the project. */
export async function loadServiceMigrations(project: Project, service: Service): Promise<Migration[]> {
  if (!service.database) return [];
  try {
    return await loadMigrations(service.database.migrations);
  } catch (err) {
    const where = projectPath(project, service.database.migrations);
    if (!(err instanceof ConfigError)) throw new ConfigError([{ file: where, path: '', message: `cannot be read: ${(err as NodeJS.ErrnoException).code ?? String(err)}` }]);
    // Messages name other files too ("also in ..."): those are shown relative to the project as well.
    const inProject = `${project.dir}${sep}`;
    throw new ConfigError(err.issues.map((i) => ({ ...i, file: projectPath(project, i.file), message: i.message.split(inProject).join('') })), err.hint);
  }
}

/** Every problem of the migration files of these services (all of the stage's by default), at once. */
export async function checkMigrationFiles(project: Project, stage: Stage, services: readonly string[] = Object.keys(stage.services)): Promise<void> {
  const issues: ConfigIssue[] = [];
  for (const name of services) {
    const service = stage.services[name];
    if (!service?.database || service.database.strategy === 'none') continue;
    await loadServiceMigrations(project, service).catch((err: unknown) => {
      if (!(err instanceof ConfigError)) throw err;
      issues.push(...err.issues);
    });
  }
  if (issues.length > 0) throw new ConfigError(issues, 'rename or correct the files: V<version>__<name>.sql, or one migrations.sql cut by "-- version: <n> <name>" lines');
}
