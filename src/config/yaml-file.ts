/*
 * Reading a YAML configuration file against a schema: syntax errors, a file that is not a map and
 * every schema issue become ConfigError issues naming the file, the line and the path. Profiles and
 * health-check files are read the same way.
 */
import { readFile } from 'node:fs/promises';
import { LineCounter, parseDocument, isMap, isNode, isScalar, isSeq, type Document } from 'yaml';
import type { z } from 'zod';
import { ConfigError, type ConfigIssue } from '../errors.js';

export interface YamlFile<T> {
  data: T;
  /** Line of the key at a dotted path, for issues found after parsing. */
  lineAt(path: string): number | undefined;
}

export function pathOf(segments: readonly PropertyKey[]): string {
  return segments.map(String).join('.');
}

function keyOrItem(parent: unknown, segment: PropertyKey | undefined): unknown {
  if (isMap(parent)) return parent.items.find((pair) => String(isScalar(pair.key) ? pair.key.value : pair.key) === String(segment))?.key;
  if (isSeq(parent)) return parent.items[Number(segment)];
  return undefined;
}

/**
 * Line of the key (or list item) at a path. A path that is not in the file (a missing key) points at
 * the nearest enclosing key that is, if any.
 */
export function lineOf(doc: Document, lines: LineCounter, segments: readonly PropertyKey[]): number | undefined {
  for (let n = segments.length; n >= (segments.length === 0 ? 0 : 1); n--) {
    const node = n === 0 ? doc.contents : keyOrItem(doc.getIn(segments.slice(0, n - 1) as unknown[], true), segments[n - 1]);
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
    if (d.type === 'object') node = (d.shape as Record<string, unknown>)[String(segment)];
    else if (d.type === 'record') node = d.valueType;
    else if (d.type === 'array') node = d.element;
    else return [];
    if (node === undefined) return [];
  }
  const d = unwrap();
  return d.type === 'object' ? Object.keys(d.shape as Record<string, unknown>) : [];
}

export async function readYamlFile<S extends z.ZodType>(absolute: string, file: string, schema: S, what: string): Promise<YamlFile<z.output<S>>> {
  const text = await readFile(absolute, 'utf8');
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((e): ConfigIssue => ({
      file, path: '', message: `invalid YAML: ${e.message.split('\n')[0]}`, line: lines.linePos(e.pos[0]).line,
    })));
  }
  if (!isMap(doc.contents)) {
    const found = doc.contents === null ? 'the file is empty' : isSeq(doc.contents) ? 'found a list' : 'found a single value';
    throw new ConfigError([{ file, path: '', message: `expected a map of settings (${what}); ${found}`, line: lineOf(doc, lines, []) }]);
  }
  const parsed = schema.safeParse(doc.toJS());
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.flatMap((issue): ConfigIssue[] => {
      const at = (path: readonly PropertyKey[], message: string) => ({ file, path: pathOf(path), message, line: lineOf(doc, lines, path) });
      if (issue.code === 'unrecognized_keys') {
        return issue.keys.map((key) => at([...issue.path, key], `unknown key (allowed here: ${allowedKeysAt(schema, issue.path).join(', ')})`));
      }
      if (issue.code === 'invalid_key') {
        return [at(issue.path, `invalid name: ${issue.issues[0]?.message ?? issue.message}`)];
      }
      return [at(issue.path, issue.message)];
    }));
  }
  return { data: parsed.data, lineAt: (path) => lineOf(doc, lines, path === '' ? [] : path.split('.')) };
}
