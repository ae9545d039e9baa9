/**
 * Password hashing and password rules.
 *
 * Hashes are argon2id in PHC string form (`$argon2id$v=19$m=65536,t=3,p=1$…`), so the
 * parameters travel with each hash: raising them later only affects new hashes, and old
 * ones keep verifying.
 */
import { randomBytes } from 'node:crypto';
import { hash, verify, type Options } from '@node-rs/argon2';
import { ValidationError } from '../../errors.js';

/**
 * argon2id with 64 MiB of memory, 3 passes, one lane (the OWASP "m=64 MiB" profile).
 *
 * Measured on the development machine (2 cores, Node 20): one verify takes about 81 ms
 * (median of 8; 77–85 ms). For comparison m=64 MiB/t=2 took 55 ms and m=46 MiB/t=2 37 ms.
 * One lane keeps a login from occupying more than one libuv thread.
 */
export const ARGON2_OPTIONS: Readonly<Options> = Object.freeze({
  // `Algorithm.Argon2id`; the package declares it as an ambient const enum, which
  // `verbatimModuleSyntax` cannot import, so its value is spelled out.
  algorithm: 2 satisfies Options['algorithm'],
  memoryCost: 65_536,
  timeCost: 3,
  parallelism: 1,
});

/** Shortest password accepted, in characters (Unicode code points). */
export const PASSWORD_MIN_LENGTH = 12;
/** Longest password accepted, in characters; keeps hashing input bounded. */
export const PASSWORD_MAX_LENGTH = 1024;

/** Bytes of randomness in a generated password (32 base64url characters, 192 bits). */
const GENERATED_PASSWORD_BYTES = 24;

/** A lone UTF-16 surrogate cannot be encoded as UTF-8, so it would be hashed as U+FFFD. */
const LONE_SURROGATE = /\p{Cs}/u;

/** Hashes a password with argon2id (`ARGON2_OPTIONS`); returns the PHC string. */
export async function hashPassword(password: string): Promise<string> {
  return hash(password, ARGON2_OPTIONS);
}

/**
 * Whether `password` matches `passwordHash`. A malformed hash verifies as false rather
 * than throwing, so a damaged row cannot turn a login into a server error.
 */
export async function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  try {
    return await verify(passwordHash, password);
  } catch {
    return false;
  }
}

let dummyHash: Promise<string> | undefined;

/**
 * Spends the time of one real verification and returns false. Called when the e-mail is
 * unknown, so the answer time does not reveal which accounts exist.
 */
export async function verifyDummyPassword(password: string): Promise<false> {
  dummyHash ??= hashPassword(randomBytes(GENERATED_PASSWORD_BYTES).toString('base64url'));
  await verifyPassword(await dummyHash, password);
  return false;
}

/** Length in Unicode code points, so "ü" or an emoji count as one character. */
function characterCount(text: string): number {
  let count = 0;
  for (const _ of text) {
    count += 1;
  }
  return count;
}

/**
 * Checks the password rules: a string of 12 to 1024 characters of well-formed Unicode.
 * Throws ValidationError naming `field` (e.g. `password`, `newPassword`).
 */
export function validatePasswordStrength(password: unknown, field = 'password'): string {
  if (typeof password !== 'string') {
    throw new ValidationError(field, `${field} must be a string`);
  }
  const length = characterCount(password);
  if (length < PASSWORD_MIN_LENGTH) {
    throw new ValidationError(
      field,
      `${field} must be at least ${PASSWORD_MIN_LENGTH} characters long, got ${length}; a passphrase of a few words works well`,
    );
  }
  if (length > PASSWORD_MAX_LENGTH) {
    throw new ValidationError(field, `${field} must be at most ${PASSWORD_MAX_LENGTH} characters long, got ${length}`);
  }
  if (LONE_SURROGATE.test(password)) {
    throw new ValidationError(field, `${field} contains an invalid Unicode character (a lone surrogate)`);
  }
  return password;
}

/** A strong random password: 32 base64url characters (192 bits from the system CSPRNG). */
export function generatePassword(): string {
  return randomBytes(GENERATED_PASSWORD_BYTES).toString('base64url');
}
