/*
 * The map that picks each service's live backend (src/lb/config.ts): builders of the runtime commands
 * that read and change it, and the parser of what `show map` prints. A runtime change is lost at the
 * next reload unless the map file is rewritten too; that is the caller's other half of a switch.
 */
import { runtimeWord } from './runtime-client.js';

export interface MapEntry {
  readonly key: string;
  readonly value: string;
}

/** A key starting with "#" is read by HAProxy as an entry's id (#0x...), not as a key. */
function mapKey(key: string): string {
  if (key.startsWith('#')) throw new RangeError(`map key ${JSON.stringify(key)} starts with "#", which HAProxy reads as an entry id`);
  return runtimeWord('map key', key);
}

export function showMapCommand(file: string): string {
  return `show map ${runtimeWord('map file', file)}`;
}

export function setMapCommand(file: string, key: string, value: string): string {
  return `set map ${runtimeWord('map file', file)} ${mapKey(key)} ${runtimeWord('map value', value)}`;
}

export function addMapCommand(file: string, key: string, value: string): string {
  return `add map ${runtimeWord('map file', file)} ${mapKey(key)} ${runtimeWord('map value', value)}`;
}

/** `show map <file>` prints one entry a line: "<entry id> <key> <value>", e.g. "0x55f0a1c2e3d0 web web_a". */
export function parseShowMap(text: string): MapEntry[] {
  const entries: MapEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    // The value is the rest of the line: a map file's value may hold spaces, its key may not.
    const m = /^0x[0-9a-fA-F]+ (\S+)(?: (.*))?$/.exec(line);
    if (m === null) throw new Error(`unexpected line in show map output: ${JSON.stringify(line)}`);
    entries.push({ key: m[1] ?? '', value: m[2] ?? '' });
  }
  return entries;
}
