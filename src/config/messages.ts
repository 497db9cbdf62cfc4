/*
 * The validator's words for the rules that carry no message of their own, in the house style of
 * every other refusal ("expected an integer of at least 1, found a string"), instead of the schema
 * library's ("Too small: expected number to be >=1"). Rules with their own message keep it.
 */

interface Issue {
  code?: string;
  expected?: string;
  input?: unknown;
  origin?: string;
  minimum?: unknown;
  maximum?: unknown;
  inclusive?: boolean;
  values?: readonly unknown[];
  format?: string;
  message?: string;
  schema?: unknown;
}

const NOUNS: Record<string, string> = {
  number: 'a number', int: 'an integer', string: 'a text', boolean: 'true or false', array: 'a list',
  object: 'a map', record: 'a map', null: 'null', undefined: 'nothing', bigint: 'an integer',
};

/** How a value found in a file is described: "a list", "the text \"8080\"". */
export function describeFound(input: unknown): string {
  if (input === undefined) return 'nothing';
  if (input === null) return 'null (an empty value)';
  if (Array.isArray(input)) return 'a list';
  if (typeof input === 'string') return input.length <= 20 ? `the text ${JSON.stringify(input)}` : 'a text';
  if (typeof input === 'number') return Number.isInteger(input) ? `the integer ${input}` : `the number ${input}`;
  if (typeof input === 'boolean') return `${input}`;
  if (typeof input === 'object') return 'a map';
  return typeof input;
}

const isIntSchema = (schema: unknown): boolean =>
  /int/.test(String((schema as { _zod?: { def?: { format?: unknown } } } | undefined)?._zod?.def?.format ?? ''));

function bound(issue: Issue, side: 'least' | 'most'): string {
  const limit = side === 'least' ? issue.minimum : issue.maximum;
  const n = Number(limit);
  switch (issue.origin) {
    case 'array': case 'set': return `expected at ${side} ${n} item${n === 1 ? '' : 's'}`;
    case 'string': return n === 1 && side === 'least' ? 'expected a non-empty text' : `expected at ${side} ${n} character${n === 1 ? '' : 's'}`;
    default: {
      const what = isIntSchema(issue.schema) ? 'an integer' : 'a number';
      return issue.inclusive === false ? `expected ${what} ${side === 'least' ? 'above' : 'below'} ${n}` : `expected ${what} of at ${side} ${n}`;
    }
  }
}

/** The message for an issue, or undefined to keep the schema's own. */
export function houseMessage(issue: Issue): string | undefined {
  switch (issue.code) {
    case 'invalid_type': {
      const expected = issue.expected === 'number' && isIntSchema(issue.schema) ? 'an integer' : NOUNS[issue.expected ?? ''] ?? issue.expected;
      return issue.input === undefined ? `missing: expected ${expected}` : `expected ${expected}, found ${describeFound(issue.input)}`;
    }
    case 'too_small': return `${bound(issue, 'least')}, found ${describeFound(issue.input)}`;
    case 'too_big': return `${bound(issue, 'most')}, found ${describeFound(issue.input)}`;
    case 'invalid_value': return `expected one of ${(issue.values ?? []).map((v) => String(v)).join(', ')}, found ${describeFound(issue.input)}`;
    case 'invalid_format': return `expected ${issue.format === 'regex' ? 'a value of the documented form' : issue.format ?? 'another form'} (see docs/profiles.md)`;
    case 'invalid_union': return `expected one of the forms described in docs/profiles.md, found ${describeFound(issue.input)}`;
    case 'not_multiple_of': return 'expected a multiple of the documented step';
    default: return undefined;
  }
}
