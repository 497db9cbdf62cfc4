/*
 * Characters that must not travel from a configuration file (or an argument) to a shell, a file or a
 * terminal: C0 controls but tab and line feed, DEL, C1 controls (U+0085 NEL among them), the Unicode
 * line and paragraph separators, and the bidirectional overrides that make text read differently from
 * what it is. A single-line field refuses line feed and carriage return too.
 */

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;
// eslint-disable-next-line no-control-regex
const CONTROL_ALL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;
// eslint-disable-next-line no-control-regex
const UNPRINTABLE_ALL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;

const NAMES: Record<number, string> = {
  0x00: 'NUL', 0x07: 'BEL', 0x08: 'BS', 0x0a: 'line feed', 0x0b: 'VT', 0x0c: 'form feed', 0x0d: 'carriage return',
  0x1b: 'ESC', 0x7f: 'DEL', 0x85: 'NEL', 0x9b: 'CSI', 0x2028: 'line separator', 0x2029: 'paragraph separator',
};

/** "U+001B (ESC)": how a message names a character the reader cannot see. */
export function describeChar(c: string): string {
  const code = c.codePointAt(0)!;
  const hex = `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
  const name = NAMES[code] ?? (code < 0x20 || (code >= 0x7f && code <= 0x9f) ? 'control character' : 'invisible formatting character');
  return `${hex} (${name})`;
}

/** The first forbidden character of a value, if any (tab and line feed are allowed: SQL, bodies). */
export function controlCharacterIn(s: string): string | undefined {
  return CONTROL.exec(s)?.[0];
}

/**
 * The text with every control character shown as an escape (\x1b, \u2028), so that a message or a
 * plan written to a terminal prints what a file holds instead of obeying it. Line feeds and tabs are
 * kept only when asked (multi-line output such as a rendered plan).
 */
export function printable(s: string, options: { multiLine?: boolean } = {}): string {
  const re = options.multiLine ? CONTROL_ALL : UNPRINTABLE_ALL;
  return s.replace(re, (c) => {
    if (options.multiLine && (c === '\n' || c === '\t')) return c;
    const code = c.codePointAt(0)!;
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}
