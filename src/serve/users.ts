/*
 * Who may use the console and what they may do, per stage: `view` (see it) or `release` (also promote,
 * dry-run, flip, roll back, continue or abort). A YAML file the operator keeps (0600, like a key):
 *
 *   users:
 *     alice: { password: "scrypt$16384$8$1$...", stages: { dev: release, beta: release, prod: view } }
 *     bob:   { password: "scrypt$...", stages: { "*": view } }
 *
 * `updateserver serve passwd` prints a hash for a password read from stdin. A stage a user is not given
 * is not shown to them at all. Read with the same hardened YAML reader as the profiles.
 */
import * as z from 'zod';
import { readYamlFile } from '../config/yaml-file.js';
import { PASSWORD_HASH } from './passwords.js';

export type Right = 'view' | 'release';

export interface User {
  name: string;
  passwordHash: string;
  /** Per stage name, or "*" for every stage not named. */
  stages: Record<string, Right>;
}

const NAME = /^[A-Za-z0-9._-]{1,64}$/;

const schema = z.object({
  users: z.record(z.string().regex(NAME, 'a user name is 1-64 letters, digits, ".", "_" or "-"'), z.object({
    password: z.string().regex(PASSWORD_HASH, 'expected a scrypt hash from `updateserver serve passwd`, never a password'),
    stages: z.record(z.string().min(1), z.enum(['view', 'release'])),
  }).strict()),
}).strict();

/** Reads and checks the users file: bad input names the file, the field and the line (exit 2), like a profile. */
export async function loadUsers(file: string): Promise<Map<string, User>> {
  const { data } = await readYamlFile(file, file, schema, 'the console\'s users');
  return new Map(Object.entries(data.users).map(([name, u]) => [name, { name, passwordHash: u.password, stages: u.stages }]));
}

export function rightOn(user: User, stage: string): Right | undefined {
  return Object.hasOwn(user.stages, stage) ? user.stages[stage] : Object.hasOwn(user.stages, '*') ? user.stages['*'] : undefined;
}
