/*
 * Per-slot config files (seed 004: "keeping the configs up to date on the various machines"). Each
 * template in the release is rendered on the host, for the slot about to start, into the slot's own
 * directory {root}/run/<slot>/: the release stays immutable and shared by both slots
 * (docs/decisions/0005-per-slot-config.md). Passwords are never rendered: they reach the app through
 * its environment or ~/.pgpass.
 */
import type { DatabaseConnection, Service, SlotName } from '../config/model.js';
import { SLOT_PLACEHOLDERS as PLACEHOLDERS, type SlotContext } from './placeholders.js';
import { configDir, releaseDir } from './release.js';
import { quote } from './shell.js';
import { posix } from 'node:path';

/** Placeholders of config templates: those of start commands, and the slot's database when there is one. */
export const CONFIG_PLACEHOLDERS = [...PLACEHOLDERS, 'dbhost', 'dbport', 'dbuser'] as const;

/** Every value comes from the validated profile; anything else could change the sed script's meaning. */
const SAFE_VALUE = /^[A-Za-z0-9._:/+-]*$/;

export function configValues(ctx: SlotContext, db: DatabaseConnection | undefined): Array<[string, string]> {
  // {database} comes from the connection below (the context has it only for services with a database).
  const values: Array<[string, string]> = PLACEHOLDERS.filter((p) => p !== 'database').map((p) => [p, String(ctx[p])]);
  if (db) values.push(['database', db.database], ['dbhost', db.host], ['dbport', String(db.port)], ['dbuser', db.user]);
  for (const [key, value] of values) {
    if (!SAFE_VALUE.test(value)) throw new Error(`internal: {${key}} = ${JSON.stringify(value)} cannot go into a config file`);
  }
  return values;
}

/**
 * `vars:` of the stage and host (issue 19) as {vars.NAME}: any single-line text, so escaped for sed's
 * replacement (backslash, the "|" delimiter, "&") instead of refused; the whole script is quoted for the shell.
 */
export function varsScript(vars: Readonly<Record<string, string>> | undefined): string[] {
  return Object.entries(vars ?? {}).map(([name, value]) => {
    if (/[\n\r]/.test(value)) throw new Error(`internal: {vars.${name}} holds a line break`);
    return `s|{vars\\.${name}}|${value.replace(/[\\|&]/g, (c) => `\\${c}`)}|g`;
  });
}

/**
 * One shell command that renders every config file of the service for one slot: a missing template
 * stops it naming the file; each output is written beside its place and renamed over it, so a slot
 * never reads half a file. Undefined when the service has no config files.
 */
export function renderConfigFiles(service: Service, slot: SlotName, ctx: SlotContext, db: DatabaseConnection | undefined): string | undefined {
  if (service.configFiles.length === 0) return undefined;
  const script = [...configValues(ctx, db).map(([key, value]) => `s|{${key}}|${value}|g`), ...varsScript(ctx.vars)].join('; ');
  const release = releaseDir(service, ctx.release);
  const dir = configDir(service, slot);
  return service.configFiles.map((f) => {
    const template = quote(`${release}/${f.template}`);
    const out = `${dir}/${posix.normalize(f.path)}`;
    return `{ [ -f ${template} ] || { echo ${quote(`config template ${f.template} is missing from release ${ctx.release}`)} >&2; exit 3; }; } && ` +
      `mkdir -p ${quote(posix.dirname(out))} && sed -e ${quote(script)} ${template} > ${quote(`${out}.tmp`)} && mv -f ${quote(`${out}.tmp`)} ${quote(out)}`;
  }).join(' && ');
}
