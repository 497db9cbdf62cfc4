/*
 * The part of `check` that needs no network: the profiles of the pipeline up to the stage, the
 * health-check files they name, the HAProxy template rendered for every load balancer, the first
 * stage's source directory, the migrations, and the project's copies of the JSON Schemas.
 */
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadPipeline } from '../config/load.js';
import type { Project, Stage } from '../config/model.js';
import { jsonSchemaText, SCHEMA_FILES, type SchemaName } from '../config/json-schema.js';
import { loadServiceMigrations, projectPath } from '../config/migration-files.js';
import { MAX_SHOWN_ISSUES } from '../config/limits.js';
import { ConfigError, describeError, formatIssue } from '../errors.js';
import { loadHaproxyTemplate, renderHaproxyConfig } from '../lb/config.js';
import { PACKAGE_DIR } from '../package-dir.js';
import { inputProblem, ok, problem, type Finding } from './finding.js';

export interface OfflineResult {
  findings: Finding[];
  /** The pipeline, target first; undefined when the profiles are not valid (then nothing is probed). */
  pipeline: Stage[] | undefined;
}

export async function checkOffline(project: Project, stageName: string): Promise<OfflineResult> {
  let pipeline: Stage[];
  try {
    pipeline = await loadPipeline(project, stageName);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const fix = err.hint ?? 'correct the file (every key is described in docs/profiles.md)';
    // At most a screenful, as on any other refusal; the rest are counted.
    const shown = err.issues.slice(0, MAX_SHOWN_ISSUES).map((issue) => inputProblem('profiles', 'valid', formatIssue(issue), fix));
    const more = err.issues.length - shown.length;
    if (more > 0) shown.push(inputProblem('profiles', 'valid', `... and ${more} more problems (${err.issues.length} in all)`, fix));
    return { pipeline: undefined, findings: shown };
  }
  const stage = pipeline[0]!;
  const findings: Finding[] = [ok('profiles', 'valid', `${pipeline.map((s) => s.file).reverse().join(' -> ')}: valid, with the health-check files they name`)];
  findings.push(...checkTemplate(project, stage), checkSource(project, pipeline[pipeline.length - 1]!), ...(await checkMigrations(project, stage)), ...(await checkSchemaCopies(project)));
  return { findings, pipeline };
}

function checkTemplate(project: Project, stage: Stage): Finding[] {
  const template = loadHaproxyTemplate(project);
  return Object.values(stage.loadBalancers).map((lb) => {
    try {
      renderHaproxyConfig(stage, lb, { template });
      return ok(`load balancer ${lb.name}`, 'template', `${template.file} renders (updateserver lb render ${stage.name})`);
    } catch (err) {
      // The project's own template is input to correct; the built-in one failing is the tool's defect, not the user's file.
      const own = template.file.startsWith(`${project.dir}/`);
      return own
        ? (err instanceof ConfigError ? inputProblem : problem)(`load balancer ${lb.name}`, 'template', describeError(err), `correct ${projectPath(project, template.file)}: it may use {{name}} values and {{#list}}...{{/list}} sections (docs/decisions/0003-switch-with-a-map.md)`)
        : problem(`load balancer ${lb.name}`, 'template', describeError(err), 'the built-in HAProxy template does not render this profile: report it as a defect of updateserver (with the profile), or put your own template in lb-templates/haproxy.cfg');
    }
  });
}

function checkSource(project: Project, first: Stage): Finding {
  const source = first.source!;
  if (source.kind === 'git') {
    return existsSync(source.repo) ? ok('source', 'git', `${source.repo} at ${source.ref} (stage ${first.name}'s code; the ref is resolved when promoting)`)
      : problem('source', 'git', `${source.repo} does not exist (${first.file}: source.git)`, `point ${first.file}: source.git at the repository holding the code`);
  }
  const dir = source.path;
  const where = `${first.file}: source.path`;
  if (!existsSync(dir)) return problem('source', 'directory', `${dir} does not exist (${where})`, `put the code to release in ${dir}, or point ${where} at it`);
  if (!statSync(dir).isDirectory()) return problem('source', 'directory', `${dir} is not a directory (${where})`, `point ${where} at the directory holding the code`);
  return ok('source', 'directory', `${dir} (stage ${first.name}'s code)`);
}

async function checkMigrations(project: Project, stage: Stage): Promise<Finding[]> {
  const findings: Finding[] = [];
  for (const service of Object.values(stage.services)) {
    if (!service.database) continue;
    const subject = `migrations ${service.name}`;
    try {
      const migrations = await loadServiceMigrations(project, service);
      findings.push(ok(subject, 'files', `${migrations.length} in ${projectPath(project, service.database.migrations)}${migrations.length ? `, up to version ${migrations[migrations.length - 1]!.version}` : ''}`));
      findings.push(ok(subject, 'where they run', whereMigrationsRun(stage, service.name)));
    } catch (err) {
      const fix = 'rename or correct the files: V<version>__<name>.sql, or one migrations.sql cut by "-- version: <n> <name>" lines';
      findings.push(err instanceof ConfigError ? inputProblem(subject, 'files', err.message, fix) : problem(subject, 'files', describeError(err), fix));
    }
  }
  return findings;
}

/** A schema copied by init goes stale when updateserver is upgraded; the editor would then check against old rules. */
async function checkSchemaCopies(project: Project): Promise<Finding[]> {
  const findings: Finding[] = [];
  for (const which of Object.keys(SCHEMA_FILES) as SchemaName[]) {
    const file = SCHEMA_FILES[which].file;
    const copy = join(project.dir, file);
    if (!existsSync(copy)) continue;
    if ((await readFile(copy, 'utf8')) === jsonSchemaText(which)) findings.push(ok('schema', file, 'the same as this updateserver\'s'));
    else findings.push(problem('schema', file, `differs from this updateserver's: an editor would check ${SCHEMA_FILES[which].describes} against other rules`, `cp ${join(PACKAGE_DIR, file)} ${copy}`));
  }
  return findings;
}

/** What the idle slot's database is at a promotion of this stage, and so where a migration runs (docs/profiles.md). */
export function whereMigrationsRun(stage: Stage, service: string): string {
  const db = stage.services[service]!.database!;
  const { a, b } = db.names;
  switch (db.strategy) {
    case 'none': return 'strategy none: no data step, no migration runs';
    case 'shared': return `strategy shared: both slots use ${a}; each promotion migrates it in place while the old code still serves (a migration must suit the old code too)`;
    case 'copy-self': return `strategy copy-self: each promotion copies ${stage.name}'s live database into the idle slot's (${a} / ${b}) while writes are refused, and runs the pending migrations in that copy`;
    case 'copy': return stage.from === undefined
      ? `first stage (strategy copy, nothing to copy from): each slot keeps its own database (${a}, ${b}), created empty at its first promotion and migrated in place at each promotion into it; nothing is copied between the slots, so rows written while one slot served are not in the other`
      : `strategy copy: each promotion copies ${stage.from}'s live database into the idle slot's (${a} / ${b}) and runs in that copy only the migrations ${stage.from}'s live database lacks; a migration runs in the first stage that receives it and later stages inherit its result through the copy, so one added after ${stage.from}'s last promotion runs first in ${stage.name} (promote ${stage.from} first to rehearse it there)`;
  }
}
