/*
 * Property-based fuzzing of the validator (issue 15). Starting from valid projects (the starter's
 * profiles, the health-check corpus's base project), each run applies random mutations: keys named like
 * members of every JavaScript object, control characters in keys and values, deep and wide structures,
 * shared values written as YAML aliases (up to an expansion bomb), wrong types. Whatever comes out must
 * either load, or be refused as the README promises: a ConfigError (exit status 2) whose every line reads
 * `file[:line]: [path: ]message`, with no stack trace and no control character, within a second of CPU time.
 * The seed is printed on failure; FUZZ_SEED=<n> replays it, FUZZ_RUNS=<n> runs longer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { parse, stringify } from 'yaml';
import { loadPipeline } from '../../src/config/load.js';
import { ConfigError, EXIT_BAD_INPUT } from '../../src/errors.js';
import type { Stage } from '../../src/config/model.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const RUNS = Number(process.env.FUZZ_RUNS ?? 50);

const PROTOTYPE_NAMES = ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', 'isPrototypeOf', 'propertyIsEnumerable', 'toLocaleString', '__defineGetter__', '__lookupSetter__', 'prototype'];
/** What every object has: a name among these would be found where nothing was declared. */
const OBJECT_MEMBERS = Object.getOwnPropertyNames(Object.prototype);
const CONTROL = ['\0', '\r', '\n', '\x1b[2J', '\x1b]0;owned\x07', '\u2028', '\u2029', '\u0085', '\x7f', '\x9b31m', '\b', '\v', '\f', '\u202e'];

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Descends along `choices` (each picks a child) and replaces what it reaches with `change(old)`. */
function mutateAt(value: Json, choices: readonly number[], change: (old: Json) => Json): Json {
  if (choices.length === 0 || value === null || typeof value !== 'object') return change(value);
  const [c, ...rest] = choices as [number, ...number[]];
  if (Array.isArray(value)) {
    if (value.length === 0) return change(value);
    const i = c % value.length;
    return value.map((v, j) => (j === i ? mutateAt(v, rest, change) : v));
  }
  const keys = Object.keys(value);
  if (keys.length === 0) return change(value);
  const k = keys[c % keys.length]!;
  // Defined as own properties: a "__proto__" key must stay a key, as a file would hold it.
  const out: { [k: string]: Json } = {};
  for (const key of keys) Object.defineProperty(out, key, { value: key === k ? mutateAt(value[key]!, rest, change) : value[key]!, enumerable: true, writable: true, configurable: true });
  return out;
}

const withKey = (v: Json, key: string, inner: Json): Json => {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
  const out = { ...v };
  Object.defineProperty(out, key, { value: inner, enumerable: true, writable: true, configurable: true });
  return out;
};
const renameKey = (v: Json, pick: number, to: string): Json => {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || Object.keys(v).length === 0) return v;
  const keys = Object.keys(v);
  const from = keys[pick % keys.length]!;
  const out: { [k: string]: Json } = {};
  for (const k of keys) Object.defineProperty(out, k === from ? to : k, { value: v[k]!, enumerable: true, writable: true, configurable: true });
  return out;
};
const withControl = (v: Json, ctl: string, at: number): Json => {
  const s = typeof v === 'string' ? v : String(v);
  const i = at % (s.length + 1);
  return s.slice(0, i) + ctl + s.slice(i);
};
const deep = (depth: number, asMap: boolean): Json => {
  let v: Json = 1;
  for (let i = 0; i < depth; i++) v = asMap ? { a: v } : [v];
  return v;
};
const wide = (n: number): Json => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]));
/** The same list used over and over: stringify writes it once with an anchor and aliases after. */
const shared = (levels: number): Json => {
  let v: Json = ['x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'];
  for (let i = 0; i < levels; i++) v = Array.from({ length: 9 }, () => v);
  return v;
};

/** Replaces the n-th string of the document (keys aside), whichever field it is: every field gets its turn. */
function atString(value: Json, n: number, change: (s: string) => Json): Json {
  const paths: number[][] = [];
  // A shared value (an alias) is entered once: the generator must not expand what the validator refuses to.
  const seen = new Set<object>();
  const collect = (v: Json, path: number[]) => {
    if (typeof v === 'string') paths.push(path);
    if (v === null || typeof v !== 'object' || seen.has(v) || paths.length > 10_000) return;
    seen.add(v);
    if (Array.isArray(v)) v.forEach((x, i) => collect(x, [...path, i]));
    else Object.keys(v).forEach((k, i) => collect(v[k]!, [...path, i]));
  };
  collect(value, []);
  if (paths.length === 0) return value;
  return mutateAt(value, paths[n % paths.length]!, (old) => change(String(old)));
}

type Mutation = (v: Json) => Json;
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  // Any string of the file: a control character in it, or a name every object has in its place (a reference).
  { weight: 5, arbitrary: fc.tuple(fc.nat(), fc.constantFrom(...CONTROL), fc.nat()).map(([n, c, i]): Mutation => (v) => atString(v, n, (s) => withControl(s, c, i))) },
  { weight: 5, arbitrary: fc.tuple(fc.nat(), fc.constantFrom(...PROTOTYPE_NAMES)).map(([n, k]): Mutation => (v) => atString(v, n, () => k)) },
  fc.tuple(fc.constantFrom(...PROTOTYPE_NAMES), fc.anything({ maxDepth: 1 })).map(([k, x]): Mutation => (v) => withKey(v, k, (x ?? null) as Json)),
  fc.tuple(fc.nat(), fc.constantFrom(...PROTOTYPE_NAMES)).map(([i, k]): Mutation => (v) => renameKey(v, i, k)),
  fc.constantFrom(...PROTOTYPE_NAMES).map((k): Mutation => () => k),
  fc.constantFrom(...PROTOTYPE_NAMES).map((k): Mutation => () => [k]),
  fc.tuple(fc.constantFrom(...CONTROL), fc.nat()).map(([c, i]): Mutation => (v) => withControl(v, c, i)),
  fc.tuple(fc.nat(), fc.constantFrom(...CONTROL)).map(([i, c]): Mutation => (v) => renameKey(v, i, `k${c}x`)),
  fc.tuple(fc.integer({ min: 5, max: 300 }), fc.boolean()).map(([d, m]): Mutation => () => deep(d, m)),
  fc.integer({ min: 100, max: 3000 }).map((n): Mutation => () => wide(n)),
  fc.integer({ min: 2, max: 7 }).map((n): Mutation => () => shared(n)),
  fc.constantFrom<Json>(null, true, 0, -1, 1.5, 70000, 1e308, '', 'x', [], {}, [[]], { '': 1 }, '{port}', '$(reboot)', '../..').map((x): Mutation => () => x),
  fc.string({ unit: 'binary', maxLength: 40 }).map((s): Mutation => () => s),
);

/** Lines of a refusal must each name a file first; nothing may look like a stack frame or carry a control character. */
function assertRefusal(err: unknown): void {
  assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${err instanceof Error ? err.stack : String(err)}`);
  assert.equal(err.exitCode, EXIT_BAD_INPUT);
  assert.ok(err.issues.length > 0);
  for (const line of err.message.split('\n')) {
    if (line.startsWith('... and ')) continue;
    assert.match(line, /^(profiles|healthchecks)\/[a-z][a-z0-9_-]*\.yaml(:\d+)?: \S/, 'a line that does not start with file[:line]: ');
  }
  assert.doesNotMatch(err.message, /\n\s+at /, 'a stack trace');
  // The house's words, not the schema library's nor the engine's.
  assert.doesNotMatch(err.message, /Invalid input|Invalid option|Too small|Too big|received|Maximum call stack|EISDIR|ReferenceError/, 'a message in foreign words');
  // eslint-disable-next-line no-control-regex
  assert.doesNotMatch(err.message, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029]/, 'a control character reaches the message');
  assert.ok(err.message.split('\n').length <= 21, 'more than a screenful of errors');
}

/**
 * What was accepted is clean: no declared name is a member of every object, and no string anywhere in
 * the loaded stages holds a control character (tab and line feed aside: SQL and request bodies).
 */
function assertAccepted(stages: readonly Stage[]): void {
  const seen = new Set<unknown>();
  const visit = (v: unknown, path: string): void => {
    if (typeof v === 'string') {
      // eslint-disable-next-line no-control-regex
      assert.doesNotMatch(v, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029]/, `accepted a control character at ${path}`);
      return;
    }
    if (v === null || typeof v !== 'object' || seen.has(v)) return;
    seen.add(v);
    for (const [k, x] of Object.entries(v)) {
      assert.doesNotMatch(k, /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/, `accepted a control character in a key at ${path}`);
      visit(x, `${path}.${k}`);
    }
  };
  for (const stage of stages) {
    visit(stage, stage.name);
    for (const names of [Object.keys(stage.hosts), Object.keys(stage.services), Object.keys(stage.loadBalancers)]) {
      for (const n of names) assert.ok(!OBJECT_MEMBERS.includes(n), `accepted the name "${n}"`);
    }
    for (const service of Object.values(stage.services)) {
      for (const h of service.hosts) assert.ok(Object.hasOwn(stage.hosts, h), `service ${service.name} names the undeclared host "${h}"`);
      const checks = [...service.checks.pre, ...service.checks.post, ...service.checks.watch.checks];
      for (const c of checks) assert.ok(!OBJECT_MEMBERS.includes(c.name), `accepted the check name "${c.name}"`);
    }
    for (const lb of Object.values(stage.loadBalancers)) if (lb.host !== undefined) assert.ok(Object.hasOwn(stage.hosts, lb.host), `load balancer ${lb.name} names the undeclared host "${lb.host}"`);
  }
}

interface Seed { name: string; project: string; stage: string; file: string }

async function fuzz(seed: Seed): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'updateserver-fuzz-'));
  try {
    await cp(seed.project, dir, { recursive: true });
    const original = parse(await readFile(join(seed.project, seed.file), 'utf8')) as Json;
    const property = fc.asyncProperty(
      fc.array(fc.tuple(fc.array(fc.nat({ max: 50 }), { maxLength: 6 }), mutation), { minLength: 1, maxLength: 3 }),
      async (steps) => {
        let value = original;
        for (const [path, change] of steps) value = mutateAt(value, path, change);
        let text: string;
        try {
          text = typeof value === 'object' && value !== null ? stringify(value, { aliasDuplicateObjects: true }) : String(value);
        } catch {
          return; // a value YAML cannot write (the generator's limit, not the validator's)
        }
        await writeFile(join(dir, seed.file), text);
        // CPU time rather than wall time: the bound is on the validator's work, which other processes
        // on a shared machine (the other test files, parallel suites) do not change.
        const started = process.cpuUsage();
        const outcome = await loadPipeline({ dir, stateDir: join(dir, '.updateserver') }, seed.stage).then((stages) => ({ stages }), (e: unknown) => ({ error: e ?? new Error('rejected with nothing') }));
        const used = process.cpuUsage(started);
        const ms = (used.user + used.system) / 1000;
        if ('error' in outcome) assertRefusal(outcome.error);
        else assertAccepted(outcome.stages);
        assert.ok(ms < 1000, `took ${Math.round(ms)} ms of CPU`);
      },
    );
    try {
      await fc.assert(property, { seed: SEED, numRuns: RUNS, endOnFailure: true, includeErrorInReport: true });
    } catch (err) {
      // The seed first, so that the failure can be replayed: FUZZ_SEED=<seed> npm run test:unit.
      const cause = err instanceof Error && err.cause instanceof Error ? `\n${err.cause.message}` : '';
      throw new Error(`validator fuzz (${seed.name}) failed with seed ${SEED} (replay: FUZZ_SEED=${SEED})\n${err instanceof Error ? err.message : String(err)}${cause}`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test(`fuzzed starter profile: loads or is refused with exit 2 and file: path, within 1 s (seed ${SEED})`, () =>
  fuzz({ name: 'starter profile', project: join(REPO, 'starter'), stage: 'prod', file: 'profiles/prod.yaml' }));

test(`fuzzed health-check file: loads or is refused with exit 2 and file: path, within 1 s (seed ${SEED})`, () =>
  fuzz({ name: 'health checks', project: join(REPO, 'test', 'fixtures', 'healthchecks', 'base'), stage: 'prod', file: 'healthchecks/web.yaml' }));

test(`fuzzed first-stage profile (source, releaseName): loads or is refused the same way (seed ${SEED})`, () =>
  fuzz({ name: 'first stage', project: join(REPO, 'starter'), stage: 'dev', file: 'profiles/dev.yaml' }));
