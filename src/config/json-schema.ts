/*
 * JSON Schemas of the profile and health-check formats, generated from the very zod schemas the
 * validator uses, so that an editor (yaml-language-server) completes and checks the YAML the way
 * updateserver will. They describe what may be written ("input"): keys with defaults are optional.
 *
 * What a JSON Schema cannot say, and therefore only updateserver checks:
 *  - rules across fields or files (src/config/cross-checks.ts: unknown host references, ports,
 *    directories and sockets used twice, from:/source:, placeholders in commands; a from: naming a
 *    stage without a profile; circular from: chains);
 *  - a stage name, which is the file's name, not its content;
 *  - YAML itself (syntax, duplicate keys), which the editor's YAML parser reports;
 *  - healthchecks: bodyMatches must compile as a JavaScript regular expression;
 *  - environment: a passwordEnv variable must be set when the profile is used.
 * test/unit/json-schema.test.ts walks the broken-profile corpus through both and lists these cases.
 */
import * as z from 'zod';
import { healthchecksFile } from './healthchecks.js';
import { profile } from './schema.js';

export const SCHEMA_DIR = 'schema';

export interface SchemaFile {
  /** Path relative to the repository (and to a project made by `updateserver init`). */
  file: string;
  /** The YAML files it describes, relative to the project directory. */
  describes: string;
  schema: z.ZodType;
  title: string;
}

export const SCHEMA_FILES = {
  profile: { file: `${SCHEMA_DIR}/profile.schema.json`, describes: 'profiles/<stage>.yaml', schema: profile, title: 'updateserver profile (profiles/<stage>.yaml)' },
  healthchecks: { file: `${SCHEMA_DIR}/healthchecks.schema.json`, describes: 'healthchecks/<name>.yaml', schema: healthchecksFile, title: 'updateserver health checks (healthchecks/<name>.yaml)' },
} as const satisfies Record<string, SchemaFile>;

export type SchemaName = keyof typeof SCHEMA_FILES;

export function jsonSchema(which: SchemaName): Record<string, unknown> {
  const { schema, title } = SCHEMA_FILES[which];
  const generated = z.toJSONSchema(schema, { io: 'input', target: 'draft-2020-12' }) as Record<string, unknown>;
  const { $schema, ...rest } = generated;
  return { $schema, title, description: 'Generated from src/config by `npm run schema`; do not edit.', ...rest };
}

/** The file's exact content: stable key order and a final newline, so a stale copy shows as a diff. */
export function jsonSchemaText(which: SchemaName): string {
  return `${JSON.stringify(jsonSchema(which), null, 2)}\n`;
}
