/*
 * Arguments checked before anything is opened: a wrong one is bad input (exit 2, "command line: --flag:
 * message"), never a silent default nor a failure after connecting.
 */
import { ConfigError } from '../errors.js';
import { parseSlot, type SlotName } from '../config/slot.js';

const refuse = (path: string, message: string): never => {
  throw new ConfigError([{ file: 'command line', path, message }]);
};

/** An integer option within bounds; undefined when not given. */
export function integerOption(flag: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < min || n > max) refuse(flag, `expected an integer ${min}-${max}, found ${JSON.stringify(value)}`);
  return n;
}

/** a or b; undefined when not given (the slot vocabulary's own parsing, config/slot.ts). */
export function slotOption(flag: string, value: string | undefined): SlotName | undefined {
  return parseSlot(value, flag);
}

/** `--wait <seconds>` as milliseconds (0 when absent): how long a command queues behind the stage's lock. */
export function waitMsOf(wait: string | undefined): number {
  const ms = wait === undefined ? 0 : Number(wait) * 1000;
  if (wait?.trim() === '' || !Number.isFinite(ms) || ms < 0) refuse('--wait', 'expected a number of seconds');
  return ms;
}
