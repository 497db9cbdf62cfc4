/*
 * Placeholders in start/stop commands. Every value comes from the validated profile (names, ports,
 * paths restricted to safe characters) or from a release name the tool generated, and is quoted
 * anyway, so a placeholder can never change the shape of the command it is put in.
 */
import { quote } from './shell.js';

export interface SlotContext {
  stage: string;
  service: string;
  host: string;
  address: string;
  slot: string;
  port: number;
  dir: string;
  release: string;
  /** The slot's own config directory, {root}/run/<slot>: rendered config files live here. */
  config: string;
  /** The slot's database name (services with a `database` only: the app must know which one is its own). */
  database?: string;
  /** The stage's and host's `vars:` (issue 19): {vars.NAME} in config templates. */
  vars?: Readonly<Record<string, string>>;
}

export const PLACEHOLDERS = ['stage', 'service', 'host', 'address', 'slot', 'port', 'dir', 'release', 'config', 'database'] as const;

export function expand(template: string, ctx: SlotContext): string {
  return template.replace(/\{([a-z]+)\}/g, (whole, key: string) => {
    if (!(PLACEHOLDERS as readonly string[]).includes(key)) return whole;
    return quote(String(ctx[key as keyof SlotContext] ?? ''));
  });
}

/** Names of unknown placeholders in a template, for validation messages. */
export function unknownPlaceholders(template: string): string[] {
  return [...template.matchAll(/\{([a-z]+)\}/g)].map((m) => m[1] ?? '').filter((k) => !(PLACEHOLDERS as readonly string[]).includes(k));
}
