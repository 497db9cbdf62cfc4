/*
 * Console passwords, stored only as scrypt hashes (node:crypto; no dependency): "scrypt$N$r$p$salt$hash"
 * with salt and hash in base64. Verification takes the same time whether the user exists or not, so a
 * login cannot tell names apart by its timing.
 */
import { randomBytes, scrypt as scryptCb, timingSafeEqual } from 'node:crypto';

const N = 16384;
const R = 8;
const P = 1;
const KEY_BYTES = 32;

function scrypt(password: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) => scryptCb(password, salt, KEY_BYTES, { N: n, r, p, maxmem: 64 * 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key))));
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, N, R, P);
  return `scrypt$${N}$${R}$${P}$${salt.toString('base64')}$${key.toString('base64')}`;
}

export const PASSWORD_HASH = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/;

/** A hash no password matches, verified against when the user does not exist (same cost). */
const NOBODY = `scrypt$${N}$${R}$${P}$${Buffer.alloc(16).toString('base64')}$${Buffer.alloc(KEY_BYTES).toString('base64')}`;

export async function verifyPassword(password: string, stored: string | undefined): Promise<boolean> {
  const m = PASSWORD_HASH.exec(stored ?? NOBODY) ?? PASSWORD_HASH.exec(NOBODY)!;
  const [n, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  // Parameters are the file's, but bounded: a hostile file cannot make one login cost minutes.
  if (n > 1 << 20 || r > 32 || p > 16) return false;
  const expected = Buffer.from(m[5]!, 'base64');
  const key = await scrypt(password, Buffer.from(m[4]!, 'base64'), n, r, p);
  return stored !== undefined && key.length === expected.length && timingSafeEqual(key, expected);
}
