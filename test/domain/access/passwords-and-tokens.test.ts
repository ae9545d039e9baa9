import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../src/errors.js';
import {
  generatePassword,
  hashPassword,
  validatePasswordStrength,
  verifyDummyPassword,
  verifyPassword,
} from '../../../src/domain/access/passwords.js';
import { constantTimeEqual, generateToken, sha256Hex } from '../../../src/domain/access/tokens.js';

function validationErrorOf(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ValidationError) {
      return error;
    }
    throw error;
  }
  throw new Error('expected a ValidationError');
}

describe('password hashing', () => {
  it('hashes with argon2id and verifies only the right password', async () => {
    const hash = await hashPassword('correct horse battery staple');
    expect(hash).toMatch(/^\$argon2id\$v=19\$m=65536,t=3,p=1\$/);
    expect(hash).not.toContain('correct horse');
    await expect(verifyPassword(hash, 'correct horse battery staple')).resolves.toBe(true);
    await expect(verifyPassword(hash, 'correct horse battery stapl')).resolves.toBe(false);
  });

  it('salts each hash, so equal passwords hash differently', async () => {
    const [a, b] = await Promise.all([hashPassword('same password here'), hashPassword('same password here')]);
    expect(a).not.toBe(b);
  });

  it('treats a damaged hash as a wrong password instead of throwing', async () => {
    await expect(verifyPassword('not-a-hash', 'whatever password')).resolves.toBe(false);
    await expect(verifyDummyPassword('anything at all')).resolves.toBe(false);
  });

  it('verifies unicode passwords byte for byte', async () => {
    const password = 'pässwörd-🔑-密码-long';
    const hash = await hashPassword(password);
    await expect(verifyPassword(hash, password)).resolves.toBe(true);
    await expect(verifyPassword(hash, password.normalize('NFD'))).resolves.toBe(false);
  });
});

describe('password rules', () => {
  it('accepts 12 to 1024 characters, counting code points', () => {
    expect(validatePasswordStrength('a'.repeat(12))).toBe('a'.repeat(12));
    expect(validatePasswordStrength('🔑'.repeat(12))).toBe('🔑'.repeat(12));
    expect(validatePasswordStrength('x'.repeat(1024))).toHaveLength(1024);
  });

  it('rejects short, long, non-string and malformed passwords, naming the field', () => {
    const short = validationErrorOf(() => validatePasswordStrength('short', 'newPassword'));
    expect(short.field).toBe('newPassword');
    expect(short.message).toContain('at least 12 characters');
    expect(short.message).toContain('got 5');

    const long = validationErrorOf(() => validatePasswordStrength('x'.repeat(10_000)));
    expect(long.field).toBe('password');
    expect(long.message).toContain('at most 1024');

    expect(validationErrorOf(() => validatePasswordStrength(undefined)).field).toBe('password');
    expect(validationErrorOf(() => validatePasswordStrength(`${'a'.repeat(12)}\uD800`)).message).toContain(
      'lone surrogate',
    );
  });

  it('generates strong passwords that pass the rules and differ each time', () => {
    const passwords = new Set(Array.from({ length: 50 }, () => generatePassword()));
    expect(passwords.size).toBe(50);
    for (const password of passwords) {
      expect(password).toMatch(/^[A-Za-z0-9_-]{32}$/);
      expect(validatePasswordStrength(password)).toBe(password);
    }
  });
});

describe('tokens', () => {
  it('generates base64url tokens of the requested size', () => {
    expect(generateToken()).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(generateToken(16)).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(generateToken()).not.toBe(generateToken());
    expect(() => generateToken(0)).toThrow(RangeError);
  });

  it('hashes with SHA-256 as lowercase hex', () => {
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('compares secrets of any length without throwing', () => {
    expect(constantTimeEqual('secret-value', 'secret-value')).toBe(true);
    expect(constantTimeEqual('secret-value', 'secret-valuf')).toBe(false);
    expect(constantTimeEqual('short', 'a much longer secret')).toBe(false);
    expect(constantTimeEqual('', '')).toBe(true);
    // Lone surrogates must not collapse to U+FFFD and compare equal.
    expect(constantTimeEqual('\uD800', '\uFFFD')).toBe(false);
  });
});
