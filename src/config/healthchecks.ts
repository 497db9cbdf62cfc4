/*
 * healthchecks/<name>.yaml: the sanity checks of a service, by phase.
 *   pre   against each host's idle slot directly, before any switch; all must pass on all hosts
 *   post  through every load balancer right after the switch
 *   watch repeated through the load balancers for a window while the old slot still runs; a failure
 *         switches traffic straight back (automatic rollback)
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as z from 'zod';
import { ConfigError } from '../errors.js';
import type { Project } from './model.js';
import { name, SINGLE_LINE, type HttpCheckData } from './schema.js';
import { PLACEHOLDERS, unknownPlaceholders } from '../commands/placeholders.js';
import { readYamlFile } from './yaml-file.js';

const millis = (max: number) => z.int({ error: `expected a duration in milliseconds (integer 0-${max})` }).min(0).max(max);
const HTTP_PATH = /^\/[A-Za-z0-9._~!$&'()*+,;=:@%/?{}-]*$/;
/** A field of a JSON answer: keys (or list indexes) joined by dots, none empty. */
const JSON_PATH = /^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$/;

const retry = {
  /** Attempts before the check fails (the deadline may end it sooner). */
  attempts: z.int().min(1).max(10_000).optional(),
  /** Wait between attempts; grows by `backoff` each time, up to 2 s. */
  intervalMs: millis(60_000).optional(),
  backoff: z.number().min(1).max(10).optional(),
  /** The whole check, all attempts together, fails after this long: a slow start is waited for up to here. */
  deadlineMs: millis(3_600_000).optional(),
  /** One attempt fails after this long. */
  attemptTimeoutMs: millis(600_000).optional(),
};

export const httpSpec = z.strictObject({
  path: z.string().regex(HTTP_PATH, { error: 'expected a URL path starting with "/"' }).default('/health'),
  method: z.enum(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH']).default('GET'),
  headers: z.record(z.string().regex(/^[A-Za-z0-9-]+$/, { error: 'expected a header name' }), z.string()).default({}),
  body: z.string().optional(),
  status: z.array(z.int().min(100).max(599)).min(1).default([200]),
  bodyContains: z.string().optional(),
  bodyMatches: z.string().refine((s) => { try { new RegExp(s); return true; } catch { return false; } }, { error: 'expected a regular expression' }).optional(),
  /** A field of a JSON answer, by dotted path, and the value it must equal. */
  json: z.strictObject({ path: z.string().regex(JSON_PATH, { error: 'expected a dotted path of keys such as build.version' }), equals: z.union([z.string(), z.number(), z.boolean(), z.null()], { error: 'expected a string, a number, true, false or null' }) }).optional(),
  /** Response headers that must have these values; {slot} and {release} name the slot being checked. */
  expectHeaders: z.record(z.string().regex(/^[A-Za-z0-9-]+$/, { error: 'expected a header name' }), z.string()).default({}),
  maxLatencyMs: millis(600_000).optional(),
});

const CHECK_KINDS = ['http', 'tcp', 'command', 'sql'] as const;

export const check = z.strictObject({
  name: name(),
  http: httpSpec.optional(),
  /** The slot's port (pre) or the service's frontend (post, watch) accepts a TCP connection. */
  tcp: z.strictObject({}).optional(),
  /** A command run over SSH on the slot's host exits 0; placeholders as in start commands. */
  command: z.strictObject({
    run: z.string().min(1).regex(SINGLE_LINE, { error: 'expected a single-line command (no line breaks or control characters)' })
      // An unknown {name} would reach the shell as written, where it is a brace expansion, not a value.
      .refine((run) => unknownPlaceholders(run).length === 0, { error: (i) => `unknown placeholder ${unknownPlaceholders(String(i.input)).map((k) => `{${k}}`).join(' ')} (allowed: ${PLACEHOLDERS.map((k) => `{${k}}`).join(' ')})` }),
  }).optional(),
  /** A query on the slot's database returns the expected value (first column of the first row, as text). */
  sql: z.strictObject({ query: z.string().min(1), expect: z.string() }).optional(),
  ...retry,
}).refine((c) => CHECK_KINDS.filter((k) => c[k] !== undefined).length === 1, {
  error: 'expected exactly one of http, tcp, command or sql',
  // The same rule for the JSON Schema, which cannot run the function above.
}).meta({ oneOf: CHECK_KINDS.map((k) => ({ required: [k] })) });

/**
 * A phase's checks, each name once: reports and the failure message name checks, and two checks of one
 * name would make "check up failed" ambiguous.
 */
const phase = () => z.array(check).superRefine((checks, ctx) => {
  const seen = new Map<string, number>();
  checks.forEach((c, i) => {
    const first = seen.get(c.name);
    if (first === undefined) seen.set(c.name, i);
    else ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `check "${c.name}" is already defined in this phase (item ${first}); give each check its own name` });
  });
}).default([]);

export const healthchecksFile = z.strictObject({
  pre: phase(),
  post: phase(),
  watch: z.strictObject({
    /** How long the new slot is watched through the load balancers before the old slot is stopped. */
    windowMs: millis(3_600_000).default(0),
    intervalMs: millis(600_000).default(250),
    checks: phase(),
  }).default({ windowMs: 0, intervalMs: 250, checks: [] }),
});

export type CheckSpec = z.output<typeof check>;
export type HttpSpec = z.output<typeof httpSpec>;
export type HealthChecks = z.output<typeof healthchecksFile>;
export type CheckPhase = 'pre' | 'post' | 'watch';

export const checkKind = (c: CheckSpec): 'http' | 'tcp' | 'command' | 'sql' =>
  c.http ? 'http' : c.tcp ? 'tcp' : c.command ? 'command' : 'sql';

/** Without a health-check file: the profile's `health` check before the switch and through the load balancers after it. */
export function defaultChecks(health: HttpCheckData): HealthChecks {
  const http = { path: health.path, method: 'GET' as const, headers: {}, status: [...health.expectStatus], expectHeaders: {} };
  return {
    pre: [{ name: 'health', http, intervalMs: health.intervalMs, deadlineMs: health.deadlineMs, attemptTimeoutMs: health.attemptTimeoutMs }],
    post: [{ name: 'health', http, attemptTimeoutMs: health.attemptTimeoutMs }],
    watch: { windowMs: 0, intervalMs: 250, checks: [] },
  };
}

export function healthchecksPath(checksName: string): string {
  return join('healthchecks', `${checksName}.yaml`);
}

export async function loadHealthchecks(project: Project, checksName: string, referencedFrom: { file: string; path: string; line?: number | undefined }): Promise<HealthChecks> {
  const file = healthchecksPath(checksName);
  const absolute = join(project.dir, file);
  if (!existsSync(absolute)) {
    throw new ConfigError([{ ...referencedFrom, message: `no such health-check file: ${file}` }], `create ${file} (see docs/profiles.md), or remove the reference`);
  }
  const { data } = await readYamlFile(absolute, file, healthchecksFile, 'pre, post, watch');
  return data;
}
