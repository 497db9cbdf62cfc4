/*
 * Reading a YAML configuration file against a schema: syntax errors, a file that is not a map and
 * every schema issue become ConfigError issues naming the file, the line and the path. Profiles and
 * health-check files are read the same way.
 * The work is bounded (src/config/limits.ts): the file's size is checked before it is read, aliases
 * are counted, nesting is limited, and duplicate keys are found with one set per map (the yaml
 * library's own check compares each key with every other: quadratic in the size of a map).
 */
import { readFile, stat } from 'node:fs/promises';
import { LineCounter, parseDocument, isAlias, isMap, isNode, isPair, isScalar, isSeq, type Document, type Node, type YAMLMap } from 'yaml';
import type * as z from 'zod';
import { ConfigError, describeError, type ConfigIssue } from '../errors.js';
import { MAX_ALIASES, MAX_DEPTH, MAX_FILE_BYTES } from './limits.js';
import { controlCharacterIn, describeChar } from './text.js';
import { houseMessage } from './messages.js';
import { reservedNameMessage } from './schema.js';

const OBJECT_MEMBERS = new Set(Object.getOwnPropertyNames(Object.prototype));

export interface YamlFile<T> {
  data: T;
  /** Line of the key at a dotted path, for issues found after parsing. */
  lineAt(path: string): number | undefined;
}

export function pathOf(segments: readonly PropertyKey[]): string {
  return segments.map(String).join('.');
}

const keyText = (key: unknown): string => String(isScalar(key) ? key.value : key);

/** Each map's pairs by their key's text, built once per map: finding a key's line stays linear in the file. */
const pairIndex = new WeakMap<YAMLMap, Map<string, { key: unknown; value: unknown }>>();
function pairOf(map: YAMLMap, segment: string): { key: unknown; value: unknown } | undefined {
  let index = pairIndex.get(map);
  if (index === undefined) {
    index = new Map();
    for (const pair of map.items) if (!index.has(keyText(pair.key))) index.set(keyText(pair.key), pair);
    pairIndex.set(map, index);
  }
  return index.get(segment);
}

function keyOrItem(parent: unknown, segment: PropertyKey | undefined): unknown {
  if (isMap(parent)) return pairOf(parent, String(segment))?.key;
  if (isSeq(parent)) return parent.items[Number(segment)];
  return undefined;
}

function nodeAt(doc: Document, segments: readonly PropertyKey[]): unknown {
  let node: unknown = doc.contents;
  for (const segment of segments) {
    if (isMap(node)) node = pairOf(node, String(segment))?.value;
    else if (isSeq(node)) node = node.items[Number(segment)];
    else return undefined;
    if (isAlias(node)) return undefined;
  }
  return node;
}

/**
 * Line of the key (or list item) at a path. A path that is not in the file (a missing key) points at
 * the nearest enclosing key that is, if any.
 */
export function lineOf(doc: Document, lines: LineCounter, segments: readonly PropertyKey[]): number | undefined {
  for (let n = segments.length; n >= (segments.length === 0 ? 0 : 1); n--) {
    const node = n === 0 ? doc.contents : keyOrItem(nodeAt(doc, segments.slice(0, n - 1)), segments[n - 1]);
    if (isNode(node) && node.range) return lines.linePos(node.range[0]).line;
  }
  return undefined;
}

/** The keys a strict object of the schema allows at a path, for "unknown key" messages. */
export function allowedKeysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let node: unknown = schema;
  const def = (n: unknown) => (n as { _zod: { def: Record<string, unknown> & { type: string } } })._zod.def;
  const unwrap = () => {
    for (;;) {
      const d = def(node);
      if (d.type === 'optional' || d.type === 'default' || d.type === 'nullable' || d.type === 'prefault') node = d.innerType;
      else if (d.type === 'pipe') node = d.in;
      else return d;
    }
  };
  for (const segment of path) {
    const d = unwrap();
    if (d.type === 'object') {
      const shape = d.shape as Record<string, unknown>;
      node = Object.hasOwn(shape, String(segment)) ? shape[String(segment)] : undefined;
    } else if (d.type === 'record') node = d.valueType;
    else if (d.type === 'array') node = d.element;
    else return [];
    if (node === undefined) return [];
  }
  const d = unwrap();
  return d.type === 'object' ? Object.keys(d.shape as Record<string, unknown>) : [];
}

/** The file's text, refused before it is read when it is not a regular file or is larger than the bound. */
async function readBounded(absolute: string, file: string): Promise<string> {
  const refuse = (message: string, hint?: string): never => { throw new ConfigError([{ file, path: '', message }], hint); };
  let size: number;
  try {
    const st = await stat(absolute);
    if (st.isDirectory()) refuse('is a directory, not a file', `replace ${file} by a YAML file`);
    if (!st.isFile()) refuse('is not a regular file (a device, a pipe or a socket)', `replace ${file} by a YAML file`);
    size = st.size;
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    return refuse(`cannot be read: ${(err as NodeJS.ErrnoException).code ?? describeError(err)}`);
  }
  if (size > MAX_FILE_BYTES) refuse(`is ${size} bytes; a configuration file may hold at most ${MAX_FILE_BYTES} bytes (256 KiB)`);
  const text = await readFile(absolute, 'utf8').catch((err: unknown) => refuse(`cannot be read: ${(err as NodeJS.ErrnoException).code ?? describeError(err)}`));
  // The file may have grown between stat and read.
  if (Buffer.byteLength(text) > MAX_FILE_BYTES) refuse(`is larger than ${MAX_FILE_BYTES} bytes (256 KiB), the most a configuration file may hold`);
  return text;
}

/**
 * The values that may span lines: SQL (refresh.after, a check's query and expected value) and what an
 * HTTP check sends or looks for in a body. Everything else (names, paths, commands, headers, URLs) is one line.
 */
const MULTI_LINE_KEYS = new Set(['body', 'bodyContains', 'query', 'expect', 'equals']);
function multiLine(path: readonly PropertyKey[]): boolean {
  const last = path[path.length - 1];
  const parent = path[path.length - 2];
  return MULTI_LINE_KEYS.has(String(last)) || (parent === 'after' && path[path.length - 3] === 'refresh');
}

/**
 * What the schema cannot see, found by one walk of the document: a key given twice in one map (named),
 * a key that is not a plain scalar, a control character in any key or value, nesting deeper than the
 * bound. Aliases are not followed here (their targets are walked where they are defined).
 */
function walk(doc: Document, lines: LineCounter, file: string): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const at = (node: unknown, path: readonly PropertyKey[], message: string) => {
    const range = isNode(node) ? node.range : undefined;
    issues.push({ file, path: pathOf(path), message, line: range ? lines.linePos(range[0]).line : lineOf(doc, lines, path) });
  };
  const checkText = (node: Node, path: readonly PropertyKey[], what: string) => {
    if (!isScalar(node) || typeof node.value !== 'string') return;
    const c = controlCharacterIn(node.value);
    if (c !== undefined) at(node, path, `${what} holds the control character ${describeChar(c)}; only printable text is allowed`);
    else if (node.value.includes('\n') && (what === 'the key' || !multiLine(path))) at(node, path, `${what} holds a line break; only one line is allowed here`);
  };
  // An explicit stack rather than recursion: the depth bound is reported, never a stack overflow.
  const stack: Array<{ node: unknown; path: PropertyKey[] }> = [{ node: doc.contents, path: [] }];
  while (stack.length > 0) {
    const { node, path } = stack.pop()!;
    if (!isNode(node) || isAlias(node)) continue;
    if (isScalar(node)) { checkText(node, path, 'the value'); continue; }
    if (path.length >= MAX_DEPTH) {
      at(node, path, `nested deeper than ${MAX_DEPTH} levels; no setting is that deep`);
      continue;
    }
    if (isMap(node)) {
      const seen = new Map<string, number>();
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        if (pair.key !== null && !isScalar(pair.key)) {
          at(pair.key, path, 'a key must be a plain name, not a map, a list or an alias');
          continue;
        }
        const key = keyText(pair.key);
        const keyPath = [...path, key];
        if (isScalar(pair.key)) checkText(pair.key, keyPath, 'the key');
        // "__proto__" would be dropped or become a prototype on the way to data; "constructor" would
        // be found in every map. Neither is ever a setting: refused as a key wherever it appears.
        if (OBJECT_MEMBERS.has(key)) at(pair.key, keyPath, reservedNameMessage(key));
        const line = pair.key?.range ? lines.linePos(pair.key.range[0]).line : undefined;
        const first = seen.get(key);
        if (first !== undefined) at(pair.key, keyPath, `the key "${key}" is given twice in this map (first on line ${first}); keep one`);
        else seen.set(key, line ?? 0);
        stack.push({ node: pair.value, path: keyPath });
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => stack.push({ node: item, path: [...path, i] }));
    }
  }
  return issues.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
}

function parse(text: string, file: string): { doc: Document; lines: LineCounter } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: false });
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((e): ConfigIssue => ({
      file, path: '', line: lines.linePos(e.pos[0]).line,
      // The parser reports running out of stack as a syntax error: say what it means.
      message: /call stack/i.test(e.message) ? `nested too deeply to read (no setting is deeper than ${MAX_DEPTH} levels)` : `invalid YAML: ${e.message.split('\n')[0]}`,
    })));
  }
  return { doc, lines };
}

function toData(doc: Document, file: string): unknown {
  try {
    return doc.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (err) {
    if (err instanceof ReferenceError) {
      throw new ConfigError([{ file, path: '', message: `aliases (*name) expand to too much data (more than ${MAX_ALIASES} uses of aliases); write the values out` }]);
    }
    throw err;
  }
}

export async function readYamlFile<S extends z.ZodType>(absolute: string, file: string, schema: S, what: string): Promise<YamlFile<z.output<S>>> {
  const text = await readBounded(absolute, file);
  try {
    const { doc, lines } = parse(text, file);
    if (!isMap(doc.contents)) {
      const found = doc.contents === null ? 'the file is empty' : isSeq(doc.contents) ? 'found a list' : 'found a single value';
      throw new ConfigError([{ file, path: '', message: `expected a map of settings (${what}); ${found}`, line: lineOf(doc, lines, []) }]);
    }
    const walked = walk(doc, lines, file);
    if (walked.length > 0) throw new ConfigError(walked);
    const parsed = schema.safeParse(toData(doc, file), { error: houseMessage });
    if (!parsed.success) {
      throw new ConfigError(parsed.error.issues.flatMap((issue): ConfigIssue[] => {
        const at = (path: readonly PropertyKey[], message: string) => ({ file, path: pathOf(path), message, line: lineOf(doc, lines, path) });
        if (issue.code === 'unrecognized_keys') {
          const allowed = allowedKeysAt(schema, issue.path).join(', ');
          return issue.keys.map((key) => at([...issue.path, key], `unknown key (allowed here: ${allowed})`));
        }
        if (issue.code === 'invalid_key') {
          return [at(issue.path, `invalid name: ${issue.issues[0]?.message ?? issue.message}`)];
        }
        return [at(issue.path, issue.message)];
      }));
    }
    return { data: parsed.data, lineAt: (path) => lineOf(doc, lines, path === '' ? [] : path.split('.')) };
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    // The parser or the schema gave up in an unforeseen way (a stack overflow on pathological input):
    // still bad input, named by its file, never a stack trace.
    const message = err instanceof RangeError ? 'is nested too deeply or too large to read' : `could not be read as YAML: ${describeError(err)}`;
    throw new ConfigError([{ file, path: '', message }], undefined, err);
  }
}
