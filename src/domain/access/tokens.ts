/**
 * Random tokens and their comparison. Session tokens and API keys are given to the client
 * once and stored only as `sha256Hex(token)`: a leaked table does not leak credentials,
 * and a high-entropy token needs no slow hash (nothing to brute-force).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** A random token of `bytes` bytes (default 32, i.e. 256 bits) as base64url text. */
export function generateToken(bytes = 32): string {
  if (!Number.isInteger(bytes) || bytes < 1 || bytes > 1024) {
    throw new RangeError(`token size must be an integer between 1 and 1024 bytes, got ${bytes}`);
  }
  return randomBytes(bytes).toString('base64url');
}

/** SHA-256 of the UTF-8 text, as 64 lowercase hex characters. */
export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** SHA-256 of the string's UTF-16 code units: lossless, unlike UTF-8 for lone surrogates. */
function digestOf(text: string): Buffer {
  return createHash('sha256').update(Buffer.from(text, 'utf16le')).digest();
}

/**
 * Compares two secrets in time independent of where they differ. Both sides are first
 * reduced to SHA-256 digests, so the buffers handed to `timingSafeEqual` always have the
 * same length and the length of the secret does not leak either.
 */
export function constantTimeEqual(a: string, b: string): boolean {
  return timingSafeEqual(digestOf(a), digestOf(b));
}
