import { describe, expect, it } from 'vitest';
import { RateLimiter } from '../../src/domain/access/rate-limiter.js';

describe('rate limiter', () => {
  it('allows a burst up to the capacity, then refuses with the seconds to wait', () => {
    const limiter = new RateLimiter({ capacity: 5, refillPerSecond: 0.5 });
    const t0 = 1_000_000;
    for (let i = 0; i < 5; i += 1) {
      expect(limiter.take('key:1', t0)).toEqual({ allowed: true });
    }
    expect(limiter.take('key:1', t0)).toEqual({ allowed: false, retryAfterS: 2 });
    // Other keys have buckets of their own.
    expect(limiter.take('key:2', t0)).toEqual({ allowed: true });
  });

  it('refills at the configured rate, never beyond the capacity', () => {
    let clock = 5_000;
    const limiter = new RateLimiter({ capacity: 3, refillPerSecond: 1, now: () => clock });
    for (let i = 0; i < 3; i += 1) {
      expect(limiter.take('ip').allowed).toBe(true);
    }
    expect(limiter.take('ip')).toEqual({ allowed: false, retryAfterS: 1 });
    clock += 999;
    expect(limiter.take('ip').allowed).toBe(false);
    clock += 1;
    expect(limiter.take('ip').allowed).toBe(true);
    expect(limiter.take('ip').allowed).toBe(false);

    clock += 60_000; // idle for a minute: a full bucket, not 60 tokens
    for (let i = 0; i < 3; i += 1) {
      expect(limiter.take('ip').allowed).toBe(true);
    }
    expect(limiter.take('ip').allowed).toBe(false);
  });

  it('reports a whole number of seconds to wait, at least one', () => {
    const limiter = new RateLimiter({ capacity: 1, refillPerSecond: 1 / 30 });
    expect(limiter.take('k', 0).allowed).toBe(true);
    expect(limiter.take('k', 0)).toEqual({ allowed: false, retryAfterS: 30 });
    expect(limiter.take('k', 29_500)).toEqual({ allowed: false, retryAfterS: 1 });
    const fast = new RateLimiter({ capacity: 1, refillPerSecond: 100 });
    expect(fast.take('k', 0).allowed).toBe(true);
    expect(fast.take('k', 0)).toEqual({ allowed: false, retryAfterS: 1 });
  });

  it('treats a clock going back as no time passing', () => {
    const limiter = new RateLimiter({ capacity: 1, refillPerSecond: 1 });
    expect(limiter.take('k', 10_000).allowed).toBe(true);
    expect(limiter.take('k', 5_000).allowed).toBe(false);
    expect(limiter.take('k', 11_000).allowed).toBe(true);
  });

  it('keeps at most maxKeys buckets, dropping refilled ones before active ones', () => {
    let clock = 0;
    const limiter = new RateLimiter({ capacity: 2, refillPerSecond: 1, maxKeys: 100, now: () => clock });
    for (let i = 0; i < 10_000; i += 1) {
      limiter.take(`ip:${i}`);
    }
    expect(limiter.size).toBe(100);

    // Refilled buckets go first; an exhausted key that keeps knocking stays limited
    // however many other keys come and go.
    const busy = new RateLimiter({ capacity: 2, refillPerSecond: 1, maxKeys: 10, now: () => clock });
    for (let i = 0; i < 9; i += 1) {
      busy.take(`idle:${i}`);
    }
    clock += 5_000; // the idle buckets are full again
    busy.take('attacker');
    busy.take('attacker');
    for (let i = 0; i < 50; i += 1) {
      busy.take(`new:${i}`);
      expect(busy.take('attacker').allowed).toBe(false);
    }
    expect(busy.size).toBe(10);
    expect(busy.evictedActiveCount).toBeGreaterThan(0); // the bound held against 50 active keys
  });

  it('rejects a nonsensical configuration', () => {
    expect(() => new RateLimiter({ capacity: 0, refillPerSecond: 1 })).toThrow(/capacity/);
    expect(() => new RateLimiter({ capacity: 1, refillPerSecond: 0 })).toThrow(/refillPerSecond/);
    expect(() => new RateLimiter({ capacity: 1, refillPerSecond: 1, maxKeys: 0 })).toThrow(/maxKeys/);
  });

  it('builds a per-minute limit', () => {
    const limiter = RateLimiter.perMinute(60);
    expect(limiter.capacity).toBe(60);
    expect(limiter.refillPerSecond).toBe(1);
  });
});
