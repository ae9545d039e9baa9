/**
 * Login sessions: password login with throttling, session-token authentication with a
 * sliding expiry, logout and clean-up.
 *
 * Invariants:
 * - the token is returned once at login and stored only as its SHA-256 hash;
 * - a session of a disabled user never authenticates (and disabling deletes them anyway);
 * - failed logins are audited without the password, and throttled per account (5) and per
 *   client IP (20) within 15 minutes. The throttle is in memory, per instance: it slows
 *   guessing down, while argon2 makes each guess expensive.
 */
import type { Kysely } from 'kysely';
import type { DB } from '../../db/schema.js';
import { RateLimitedError, UnauthorizedError } from '../../errors.js';
import type { AuditService } from './audit-service.js';
import { permissionsOfRole, type Actor, type Principal } from './permissions.js';
import { SessionsRepository } from './sessions-repository.js';
import { generateToken, sha256Hex } from './tokens.js';
import type { User, UserService } from './user-service.js';
import { UsersRepository } from './users-repository.js';

export interface SessionOptions {
  /** How long a session lives without use, in ms; default 7 days. Use slides it forward. */
  readonly ttlMs?: number;
}

export interface LoginInput {
  readonly email: string;
  readonly password: string;
  /** Client address, for throttling and the audit log; null when there is none (CLI). */
  readonly ip: string | null;
  readonly userAgent: string | null;
}

export interface LoginResult {
  /** The session token; give it to the client once (cookie). Only its hash is stored. */
  readonly token: string;
  readonly user: User;
  readonly expiresAt: Date;
}

export const DEFAULT_SESSION_TTL_MS = 7 * 86_400_000;
/** Window in which failed logins count towards the limits. */
export const LOGIN_FAILURE_WINDOW_MS = 15 * 60_000;
export const MAX_LOGIN_FAILURES_PER_ACCOUNT = 5;
export const MAX_LOGIN_FAILURES_PER_IP = 20;
/** A session is written at most this often when its expiry slides. */
const MIN_WRITE_INTERVAL_MS = 60_000;
/** Longest token looked up; real ones are 43 characters. */
const MAX_TOKEN_LENGTH = 512;
/** Keys tracked per throttle; beyond it the oldest keys are forgotten (bounded memory). */
const MAX_TRACKED_KEYS = 50_000;

/**
 * Timestamps of recent failures per key (an account or an IP). An attempt in progress
 * counts as a failure until it succeeds, so parallel guesses cannot overshoot the limit.
 */
class FailureWindow {
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
  ) {}

  /** Seconds until another attempt is allowed for `key`, or 0 when one is allowed now. */
  retryAfterS(key: string, nowMs: number): number {
    const recent = this.recent(key, nowMs);
    const oldest = recent[recent.length - this.limit];
    if (recent.length < this.limit || oldest === undefined) {
      return 0;
    }
    return Math.max(1, Math.ceil((oldest + this.windowMs - nowMs) / 1000));
  }

  add(key: string, nowMs: number): void {
    const recent = this.recent(key, nowMs);
    this.failures.delete(key); // re-insert: the Map's order is then least recently failed first
    this.failures.set(key, [...recent, nowMs]);
    if (this.failures.size > MAX_TRACKED_KEYS) {
      const stalest = this.failures.keys().next();
      if (stalest.done !== true) {
        this.failures.delete(stalest.value);
      }
    }
  }

  /** Takes back one attempt recorded at `atMs` (it succeeded). */
  remove(key: string, atMs: number): void {
    const list = this.failures.get(key);
    const index = list?.lastIndexOf(atMs) ?? -1;
    if (list !== undefined && index >= 0) {
      list.splice(index, 1);
    }
  }

  clear(key: string): void {
    this.failures.delete(key);
  }

  private recent(key: string, nowMs: number): number[] {
    const list = this.failures.get(key);
    if (list === undefined) {
      return [];
    }
    const recent = list.filter((at) => at > nowMs - this.windowMs);
    if (recent.length === 0) {
      this.failures.delete(key);
    } else if (recent.length !== list.length) {
      this.failures.set(key, recent);
    }
    return recent;
  }
}

/** Free text from the client, made storable: bounded, and without U+0000 (PostgreSQL rejects it). */
function clientText(value: string | null, maxLength: number): string | null {
  return value === null ? null : value.slice(0, maxLength).replaceAll('\u0000', '\uFFFD');
}

export class SessionService {
  private readonly ttlMs: number;
  private readonly accountFailures = new FailureWindow(MAX_LOGIN_FAILURES_PER_ACCOUNT, LOGIN_FAILURE_WINDOW_MS);
  private readonly ipFailures = new FailureWindow(MAX_LOGIN_FAILURES_PER_IP, LOGIN_FAILURE_WINDOW_MS);

  constructor(
    private readonly db: Kysely<DB>,
    private readonly users: UserService,
    private readonly audit: AuditService,
    options: SessionOptions = {},
    private readonly now: () => Date = () => new Date(),
  ) {
    this.ttlMs = options.ttlMs ?? DEFAULT_SESSION_TTL_MS;
    if (!Number.isSafeInteger(this.ttlMs) || this.ttlMs < 60_000) {
      throw new RangeError(`session ttl must be at least 60000 ms, got ${this.ttlMs}`);
    }
  }

  /**
   * Checks the password and opens a session. Throws UnauthorizedError for a wrong e-mail
   * or password or a disabled account (one message for all, so it reveals nothing), and
   * RateLimitedError (with `retryAfterS`) after 5 failures for the account or 20 from the
   * IP in 15 minutes, until the oldest of them leaves the window.
   */
  async login(input: LoginInput): Promise<LoginResult> {
    const startedMs = this.now().getTime();
    const accountKey = String(input.email).trim().toLowerCase().slice(0, 320);
    const ip = clientText(input.ip, 64);
    const userAgent = clientText(input.userAgent, 512);
    const retryAfterS = Math.max(
      this.accountFailures.retryAfterS(accountKey, startedMs),
      ip === null ? 0 : this.ipFailures.retryAfterS(ip, startedMs),
    );
    if (retryAfterS > 0) {
      throw new RateLimitedError(`Too many failed logins; try again in ${retryAfterS} s`, retryAfterS);
    }
    this.accountFailures.add(accountKey, startedMs);
    if (ip !== null) {
      this.ipFailures.add(ip, startedMs);
    }

    let user: User | null;
    try {
      user = await this.users.verifyCredentials(input.email, input.password);
    } catch (error) {
      this.forgetAttempt(accountKey, ip, startedMs); // not the client's failure
      throw error;
    }
    if (user === null) {
      const anonymous: Actor = { type: 'anonymous', id: null, label: 'anonymous', ip };
      await this.audit.record(anonymous, {
        action: 'auth.login_failed',
        entityType: 'user',
        entityId: accountKey,
        after: { email: accountKey, userAgent },
      });
      throw new UnauthorizedError('Wrong e-mail or password, or the account is disabled');
    }
    this.forgetAttempt(accountKey, ip, startedMs);
    this.accountFailures.clear(accountKey);

    const token = generateToken(32);
    const now = this.now();
    const expiresAt = new Date(now.getTime() + this.ttlMs);
    const actor: Actor = { type: 'user', id: user.id, label: user.email, ip };
    await this.db.transaction().execute(async (trx) => {
      await new SessionsRepository(trx).insert({
        tokenHash: sha256Hex(token),
        userId: user.id,
        createdAt: now,
        expiresAt,
        ip,
        userAgent,
      });
      await new UsersRepository(trx).recordLogin(user.id, now);
      await this.audit.record(
        actor,
        { action: 'auth.login', entityType: 'user', entityId: user.id, after: { userAgent } },
        trx,
      );
    });
    return { token, user: { ...user, lastLoginAt: now }, expiresAt };
  }

  /**
   * The principal of a session token, or null when the token is unknown, the session
   * expired or the user is disabled. When less than half the ttl remains, the expiry
   * slides to now + ttl (at most one write per minute per session).
   */
  async authenticate(token: string): Promise<Principal | null> {
    if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
      return null;
    }
    const sessions = new SessionsRepository(this.db);
    const session = await sessions.findByTokenHash(sha256Hex(token));
    const now = this.now();
    if (session === undefined || session.expiresAt <= now || session.disabledAt !== null) {
      return null;
    }
    const nowMs = now.getTime();
    const writeInterval = Math.min(MIN_WRITE_INTERVAL_MS, this.ttlMs / 4);
    if (session.expiresAt.getTime() - nowMs < this.ttlMs / 2 && nowMs - session.lastSeenAt.getTime() >= writeInterval) {
      await sessions.extend(session.sessionId, now, new Date(nowMs + this.ttlMs), new Date(nowMs - writeInterval));
    }
    return {
      kind: 'user',
      userId: session.userId,
      email: session.email,
      role: session.role,
      permissions: permissionsOfRole(session.role),
    };
  }

  /** Ends the session of this token (audited); false when there was none. */
  async logout(token: string, ip: string | null = null): Promise<boolean> {
    if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
      return false;
    }
    return this.db.transaction().execute(async (trx) => {
      const ended = await new SessionsRepository(trx).deleteByTokenHash(sha256Hex(token));
      if (ended === undefined) {
        return false;
      }
      const actor: Actor = { type: 'user', id: ended.userId, label: ended.email, ip: clientText(ip, 64) };
      await this.audit.record(actor, { action: 'auth.logout', entityType: 'user', entityId: ended.userId }, trx);
      return true;
    });
  }

  /** Deletes sessions that have expired; returns how many. */
  async deleteExpired(): Promise<number> {
    return new SessionsRepository(this.db).deleteExpired(this.now());
  }

  private forgetAttempt(accountKey: string, ip: string | null, startedMs: number): void {
    this.accountFailures.remove(accountKey, startedMs);
    if (ip !== null) {
      this.ipFailures.remove(ip, startedMs);
    }
  }
}
