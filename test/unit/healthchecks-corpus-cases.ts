/*
 * The broken health-check corpus (test/fixtures/healthchecks/): the cases and what each must be refused
 * with. Shared by the unit test that walks them through the loader and the reliability test that runs
 * a sample through the command line against the lab.
 */
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';

/** Compiled to dist/test/unit/, so the repository is three levels up. */
const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const HEALTHCHECK_CORPUS = join(REPO, 'test', 'fixtures', 'healthchecks');

export interface HealthcheckCase {
  case: string;
  file: string;
  path: string;
  message: string;
  line?: number;
}

export const HC = 'healthchecks/web.yaml';
export const PROFILE = 'profiles/prod.yaml';

export const HEALTHCHECK_CASES: HealthcheckCase[] = [
  // wrong types
  { case: 'type-attempts-string', file: HC, path: 'pre.0.attempts', message: 'expected an integer, found the text "3"', line: 4 },
  { case: 'type-phase-map', file: HC, path: 'pre', message: 'expected a list, found a map', line: 1 },
  { case: 'type-status-scalar', file: HC, path: 'pre.0.http.status', message: 'expected a list, found the integer', line: 3 },
  { case: 'type-window-string', file: HC, path: 'watch.windowMs', message: 'expected a duration in milliseconds', line: 2 },
  { case: 'type-json-equals-list', file: HC, path: 'post.0.http.json.equals', message: 'expected a string, a number, true, false or null', line: 3 },
  // unknown keys, unknown kind
  { case: 'unknown-key-top', file: HC, path: 'checks', message: 'unknown key (allowed here: pre, post, watch)', line: 2 },
  { case: 'unknown-key-check', file: HC, path: 'pre.0.timeout', message: 'unknown key (allowed here: name, http, tcp, command, sql, attempts, intervalMs, backoff, deadlineMs, attemptTimeoutMs)', line: 4 },
  { case: 'unknown-key-http', file: HC, path: 'post.0.http.expectStatus', message: 'unknown key (allowed here: path, method, headers, body, status, bodyContains, bodyMatches, json, expectHeaders, maxLatencyMs)', line: 4 },
  { case: 'unknown-key-watch', file: HC, path: 'watch.interval', message: 'unknown key (allowed here: windowMs, intervalMs, checks)', line: 3 },
  { case: 'unknown-kind', file: HC, path: 'pre.0.grpc', message: 'unknown key (allowed here: name, http, tcp, command, sql,', line: 3 },
  { case: 'no-kind', file: HC, path: 'pre.0', message: 'expected exactly one of http, tcp, command or sql', line: 2 },
  { case: 'two-kinds', file: HC, path: 'pre.0', message: 'expected exactly one of http, tcp, command or sql', line: 2 },
  // values that cannot work
  { case: 'bad-regex', file: HC, path: 'post.0.http.bodyMatches', message: 'expected a regular expression', line: 4 },
  { case: 'bad-json-path', file: HC, path: 'post.0.http.json.path', message: 'expected a dotted path of keys such as build.version', line: 4 },
  { case: 'negative-deadline', file: HC, path: 'pre.0.deadlineMs', message: 'expected a duration in milliseconds (integer 0-3600000)', line: 4 },
  { case: 'negative-window', file: HC, path: 'watch.windowMs', message: 'expected a duration in milliseconds (integer 0-3600000)', line: 2 },
  { case: 'status-out-of-range', file: HC, path: 'pre.0.http.status.1', message: '599', line: 3 },
  { case: 'http-path-relative', file: HC, path: 'pre.0.http.path', message: 'expected a URL path starting with "/"', line: 3 },
  { case: 'method-unknown', file: HC, path: 'pre.0.http.method', message: 'expected one of', line: 3 },
  // duplicates
  { case: 'duplicate-names', file: HC, path: 'pre.1.name', message: 'check "up" is already defined in this phase (item 0)', line: 4 },
  { case: 'duplicate-names-watch', file: HC, path: 'watch.checks.1.name', message: 'check "health" is already defined in this phase (item 0)', line: 6 },
  // shell metacharacters: names and header names never reach a shell; a command's placeholders are checked
  { case: 'name-semicolon', file: HC, path: 'pre.0.name', message: 'expected a name of lowercase letters', line: 2 },
  { case: 'name-subshell', file: HC, path: 'pre.0.name', message: 'expected a name of lowercase letters', line: 2 },
  { case: 'header-name-metachar', file: HC, path: 'post.0.http.headers.X-Probe;id', message: 'invalid name: expected a header name', line: 4 },
  { case: 'command-multiline', file: HC, path: 'pre.0.command.run', message: 'the value holds a line break; only one line is allowed here', line: 3 },
  { case: 'command-unknown-placeholder', file: HC, path: 'pre.0.command.run', message: 'unknown placeholder {root} (allowed: {stage} {service} {host} {address} {slot} {port} {dir} {release} {config} {database} {instance} {files} {snapshot})', line: 3 },
  // not a map of settings, not YAML
  { case: 'empty-file', file: HC, path: '', message: 'expected a map of settings (pre, post, watch); the file is empty' },
  { case: 'top-level-list', file: HC, path: '', message: 'found a list', line: 1 },
  { case: 'yaml-duplicate-key', file: HC, path: 'pre', message: 'the key "pre" is given twice in this map (first on line 1)', line: 2 },
  // across files: the profile and its health-check file
  { case: 'sql-without-database', file: PROFILE, path: 'services.web.checks', message: 'check "users" in healthchecks/web.yaml is an sql check, but service web has no database', line: 17 },
  { case: 'missing-file', file: PROFILE, path: 'services.web.checks', message: 'no such health-check file: healthchecks/api.yaml', line: 17 },
  { case: 'checks-name-traversal', file: PROFILE, path: 'services.web.checks', message: 'expected a name of lowercase letters', line: 17 },
  // issue 15: names every object has, control characters, YAML limits, not a file, house-style messages
  { case: 'names-check-constructor', file: HC, path: 'pre.0.name', message: '"constructor" is the name of a member of every JavaScript object', line: 2 },
  { case: 'names-header-proto', file: HC, path: 'post.0.http.headers.__proto__', message: '"__proto__" is the name of a member of every JavaScript object', line: 4 },
  { case: 'control-header-escape', file: HC, path: 'post.0.http.headers.X-Probe', message: 'the value holds the control character U+001B (ESC)', line: 4 },
  { case: 'control-command-carriage-return', file: HC, path: 'pre.0.command.run', message: 'the value holds the control character U+000D (carriage return)', line: 3 },
  { case: 'yaml-alias-bomb', file: HC, path: '', message: 'aliases (*name) expand to too much data' },
  { case: 'yaml-deep-nesting', file: HC, path: 'pre.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0', message: 'nested deeper than 32 levels', line: 1 },
  { case: 'file-is-directory', file: HC, path: '', message: 'is a directory, not a file' },
  { case: 'message-attempts-zero', file: HC, path: 'pre.0.attempts', message: 'expected an integer of at least 1, found the integer 0', line: 4 },
];

/** Cases whose health-check file is not a file at all (the reliability test lays them over the lab's project its own way). */
export const NOT_A_FILE = new Set(['file-is-directory']);

/** A project: the base, with the case's files laid over it. */
export async function healthcheckProject(name: string | undefined): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'updateserver-hc-corpus-'));
  await cp(join(HEALTHCHECK_CORPUS, 'base'), dir, { recursive: true });
  if (name !== undefined) {
    // A case may put a directory where the base has a file (a "profile" that is not a file): make room.
    if (NOT_A_FILE.has(name)) await rm(join(dir, HC), { force: true });
    await cp(join(HEALTHCHECK_CORPUS, 'broken', name), dir, { recursive: true });
  }
  return dir;
}

