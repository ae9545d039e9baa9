/**
 * An in-memory token-bucket rate limiter keyed by string (an API key id, a client IP).
 *
 * Each key has a bucket of `capacity` tokens that refills at `refillPerSecond`; a request
 * takes one token or is refused with the seconds to wait. A burst of up to `capacity`
 * passes at once, and the sustained rate is `refillPerSecond`.
 *
 * Invariants:
 * - memory is bounded: at most `maxKeys` buckets. A bucket that has refilled completely
 *   is the same as no bucket, so those are dropped first; only when none of the least
 *   recently used ones is full is the least recently used bucket dropped (that key starts
 *   over with a full bucket, which errs on the side of allowing);
 * - every call is O(1) amortized and does no I/O;
 * - limits are per process: with N instances a key may get up to N times the rate.
 */

export type TakeResult = { readonly allowed: true } | { readonly allowed: false; readonly retryAfterS: number };

export interface RateLimiterOptions {
  /** Largest burst: tokens in a full bucket (a positive integer). */
  readonly capacity: number;
  /** Tokens added per second (positive). */
  readonly refillPerSecond: number;
  /** Most keys tracked at once (default 10 000). */
  readonly maxKeys?: number;
  /** Clock in milliseconds, used when `take` is given no time (default `Date.now`). */
  readonly now?: () => number;
}

interface Bucket {
  tokens: number;
  updatedMs: number;
}

/** How many of the least recently used buckets to inspect for a full one when at the bound. */
const IDLE_SCAN = 16;

export class RateLimiter {
  readonly capacity: number;
  readonly refillPerSecond: number;
  readonly maxKeys: number;
  private readonly clock: () => number;
  /** Map order is recency order: the first entry is the least recently used. */
  private readonly buckets = new Map<string, Bucket>();
  private evictedActive = 0;

  constructor(options: RateLimiterOptions) {
    const { capacity, refillPerSecond } = options;
    const maxKeys = options.maxKeys ?? 10_000;
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    }
    if (!Number.isFinite(refillPerSecond) || refillPerSecond <= 0) {
      throw new RangeError(`refillPerSecond must be a positive number, got ${refillPerSecond}`);
    }
    if (!Number.isInteger(maxKeys) || maxKeys < 1) {
      throw new RangeError(`maxKeys must be a positive integer, got ${maxKeys}`);
    }
    this.capacity = capacity;
    this.refillPerSecond = refillPerSecond;
    this.maxKeys = maxKeys;
    this.clock = options.now ?? Date.now;
  }

  /** A limiter allowing `limit` requests per minute, in bursts of up to `limit`. */
  static perMinute(limit: number, options: Omit<RateLimiterOptions, 'capacity' | 'refillPerSecond'> = {}): RateLimiter {
    return new RateLimiter({ ...options, capacity: limit, refillPerSecond: limit / 60 });
  }

  /**
   * Takes one token from `key`'s bucket. Allowed when one was there; otherwise refused
   * with `retryAfterS`, the whole seconds (at least 1) until a token will be. `nowMs`
   * defaults to the clock given at construction; a clock going back counts as no time.
   */
  take(key: string, nowMs: number = this.clock()): TakeResult {
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      this.makeRoom(nowMs);
      bucket = { tokens: this.capacity, updatedMs: nowMs };
    } else {
      this.buckets.delete(key); // re-inserted below: now the most recently used
      this.refill(bucket, nowMs);
    }
    this.buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true };
    }
    const retryAfterS = Math.max(1, Math.ceil((1 - bucket.tokens) / this.refillPerSecond));
    return { allowed: false, retryAfterS };
  }

  /** Forgets `key` (e.g. after a successful login resets its attempts). */
  reset(key: string): void {
    this.buckets.delete(key);
  }

  /** Keys currently tracked. */
  get size(): number {
    return this.buckets.size;
  }

  /** Buckets dropped while not yet full because `maxKeys` was reached. */
  get evictedActiveCount(): number {
    return this.evictedActive;
  }

  private refill(bucket: Bucket, nowMs: number): void {
    const elapsedMs = nowMs - bucket.updatedMs;
    if (elapsedMs > 0) {
      bucket.tokens = Math.min(this.capacity, bucket.tokens + (elapsedMs / 1000) * this.refillPerSecond);
      bucket.updatedMs = nowMs;
    }
  }

  private isFull(bucket: Bucket, nowMs: number): boolean {
    const elapsedS = Math.max(0, nowMs - bucket.updatedMs) / 1000;
    return bucket.tokens + elapsedS * this.refillPerSecond >= this.capacity;
  }

  /** Frees at least one slot when at `maxKeys`: full buckets first, else the least recently used. */
  private makeRoom(nowMs: number): void {
    if (this.buckets.size < this.maxKeys) {
      return;
    }
    let inspected = 0;
    let freed = false;
    for (const [key, bucket] of this.buckets) {
      if (inspected >= IDLE_SCAN) {
        break;
      }
      inspected += 1;
      if (this.isFull(bucket, nowMs)) {
        this.buckets.delete(key);
        freed = true;
      }
    }
    if (!freed) {
      const oldest = this.buckets.keys().next().value;
      if (oldest !== undefined) {
        this.buckets.delete(oldest);
        this.evictedActive += 1;
      }
    }
  }
}
