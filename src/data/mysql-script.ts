/*
 * Splitting a MySQL script into statements like the mysql client does (see mysql.ts for why). Kept
 * apart from the driver: the plan reads migration scripts, and importing mysql2 for that would load
 * and compile its 1.1 MB on every command's start (issue 17).
 */

export interface ScriptStatement {
  sql: string;
  /** 1-based line of the script on which the statement starts. */
  line: number;
}

const DELIMITER_LINE = /^[ \t]*delimiter[ \t]+(\S+)[ \t]*(?:\r?\n|$)/i;

/**
 * Splits a MySQL script into statements like the mysql client: `;` (or the current DELIMITER) ends a
 * statement outside quotes ('..', "..", `..`, with backslash escapes and doubled quotes) and comments
 * (-- , #, /* *\/). Statements holding only comments are dropped; the others keep their comments.
 */
export function splitMysqlScript(script: string): ScriptStatement[] {
  const out: ScriptStatement[] = [];
  let delimiter = ';';
  let start = 0;
  let line = 1;
  let startLine = 0;
  let hasCode = false;
  const end = (to: number) => {
    if (hasCode) out.push({ sql: script.slice(start, to).trim(), line: startLine });
    hasCode = false;
  };
  const code = () => { if (!hasCode) { hasCode = true; startLine = line; } };
  let i = 0;
  while (i < script.length) {
    const c = script[i]!;
    // DELIMITER is a client command: only at the start of a line, between statements.
    if (!hasCode && (i === 0 || script[i - 1] === '\n')) {
      const m = DELIMITER_LINE.exec(script.slice(i, i + 200));
      if (m) {
        delimiter = m[1]!;
        i += m[0].length;
        if (m[0].endsWith('\n')) line++;
        start = i;
        continue;
      }
    }
    if (c === '\n') { line++; i++; continue; }
    if (c === '\'' || c === '"' || c === '`') {
      code();
      i++;
      while (i < script.length) {
        const d = script[i]!;
        if (d === '\n') line++;
        if (d === '\\' && c !== '`') { if (script[i + 1] === '\n') line++; i += 2; continue; }
        i++;
        if (d === c) break;
      }
      continue;
    }
    if (c === '#' || (c === '-' && script[i + 1] === '-' && (i + 2 >= script.length || /\s/.test(script[i + 2]!)))) {
      while (i < script.length && script[i] !== '\n') i++;
      continue;
    }
    if (c === '/' && script[i + 1] === '*') {
      // /*! ... */ and /*M! ... */ are executed by the server: they are code.
      if (script[i + 2] === '!' || (script[i + 2] === 'M' && script[i + 3] === '!')) code();
      const close = script.indexOf('*/', i + 2);
      const stop = close === -1 ? script.length : close + 2;
      for (let j = i; j < stop; j++) if (script[j] === '\n') line++;
      i = stop;
      continue;
    }
    if (script.startsWith(delimiter, i)) {
      end(i);
      i += delimiter.length;
      start = i;
      continue;
    }
    if (!/\s/.test(c)) code();
    i++;
  }
  end(script.length);
  return out;
}
