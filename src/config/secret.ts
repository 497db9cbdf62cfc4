/*
 * A secret is a type, not a convention: its text is reachable only through reveal(), so it cannot end
 * up in a log line, a plan, the history or an error message by accident (String(), JSON.stringify()
 * and util.inspect() all print a mask).
 */
import { inspect } from 'node:util';

const MASK = '********';

export class Secret {
  readonly #value: string;
  /** Where the value came from, for messages: e.g. "environment variable PG_BETA_PASSWORD". */
  readonly source: string;
  constructor(value: string, source: string) {
    this.#value = value;
    this.source = source;
  }
  reveal(): string { return this.#value; }
  toString(): string { return MASK; }
  toJSON(): string { return MASK; }
  [inspect.custom](): string { return `Secret(${this.source})`; }
}
