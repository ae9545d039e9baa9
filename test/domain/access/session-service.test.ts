import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AuditService } from '../../../src/domain/access/audit-service.js';
import { SYSTEM_ACTOR } from '../../../src/domain/access/permissions.js';
import { SessionService, type LoginInput } from '../../../src/domain/access/session-service.js';
import { sha256Hex } from '../../../src/domain/access/tokens.js';
import { UserService } from '../../../src/domain/access/user-service.js';
import { RateLimitedError, UnauthorizedError } from '../../../src/errors.js';
import { ENGINES, createTestDatabase, type TestDatabase } from '../../helpers/db.js';
import { rejection } from '../../helpers/assert.js';

const MINUTE = 60_000;
const DAY = 86_400_000;
const PASSWORD = 'erin-password-1234';

describe.each(ENGINES)('sessions on %s', (engine) => {
  let t: TestDatabase;
  let users: UserService;
  let audit: AuditService;
  let sessions: SessionService;
  let clock = new Date('2026-06-01T12:00:00Z');
  const now = () => clock;
  const advance = (ms: number) => {
    clock = new Date(clock.getTime() + ms);
  };
  const attempt = (overrides: Partial<LoginInput> = {}) =>
    sessions.login({
      email: 'erin@example.com',
      password: PASSWORD,
      ip: '192.0.2.1',
      userAgent: 'vitest',
      ...overrides,
    });

  async function sessionRow(token: string) {
    return t.database.db
      .selectFrom('sessions')
      .selectAll()
      .where('token_hash', '=', sha256Hex(token))
      .executeTakeFirstOrThrow();
  }

  beforeAll(async () => {
    t = await createTestDatabase(engine);
    audit = new AuditService(t.database.db, now);
    users = new UserService(t.database.db, audit, now);
    await users.createUser(SYSTEM_ACTOR, { email: 'erin@example.com', role: 'operator', password: PASSWORD });
    await users.createUser(SYSTEM_ACTOR, { email: 'frank@example.com', role: 'viewer', password: PASSWORD });
  });
  beforeEach(() => {
    // A fresh service per test: the failure counters live in memory.
    sessions = new SessionService(t.database.db, users, audit, {}, now);
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('logs in, stores only the token hash, and authenticates the token', async () => {
    const result = await attempt({ email: ' ERIN@example.com ' });
    expect(result.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(result.user).toMatchObject({ email: 'erin@example.com', role: 'operator', lastLoginAt: clock });
    expect(result.expiresAt).toEqual(new Date(clock.getTime() + 7 * DAY));

    const row = await sessionRow(result.token);
    expect(row).toMatchObject({ user_id: result.user.id, ip: '192.0.2.1', user_agent: 'vitest' });
    const allSessions = JSON.stringify(await t.database.db.selectFrom('sessions').selectAll().execute());
    expect(allSessions).not.toContain(result.token);
    expect((await users.getUser(result.user.id)).lastLoginAt).toEqual(clock);

    const principal = await sessions.authenticate(result.token);
    expect(principal).toMatchObject({ kind: 'user', userId: result.user.id, email: 'erin@example.com' });
    expect(principal?.permissions.has('operate')).toBe(true);
    expect(principal?.permissions.has('admin')).toBe(false);

    const entry = await t.database.db
      .selectFrom('audit_log')
      .selectAll()
      .where('action', '=', 'auth.login')
      .orderBy('id', 'desc')
      .executeTakeFirstOrThrow();
    expect(entry).toMatchObject({ actor_type: 'user', actor_label: 'erin@example.com', ip: '192.0.2.1' });
  });

  it('rejects a wrong password or unknown e-mail alike and audits it without the password', async () => {
    const wrong = await rejection(attempt({ password: 'not-the-password-123' }));
    const unknown = await rejection(attempt({ email: 'nobody@example.com', password: 'guess-password-123' }));
    expect(wrong).toBeInstanceOf(UnauthorizedError);
    expect(unknown).toBeInstanceOf(UnauthorizedError);
    expect((wrong as Error).message).toBe((unknown as Error).message);

    const failures = await t.database.db
      .selectFrom('audit_log')
      .selectAll()
      .where('action', '=', 'auth.login_failed')
      .orderBy('id')
      .execute();
    expect(failures.map((f) => f.entity_id)).toEqual(['erin@example.com', 'nobody@example.com']);
    expect(failures[0]).toMatchObject({
      actor_type: 'anonymous',
      actor_id: null,
      ip: '192.0.2.1',
      entity_type: 'user',
    });
    const text = JSON.stringify(await t.database.db.selectFrom('audit_log').selectAll().execute());
    for (const secret of ['not-the-password-123', 'guess-password-123', PASSWORD, '$argon2']) {
      expect(text).not.toContain(secret);
    }
  });

  it('throttles the 6th attempt on an account until the oldest failure leaves the window', async () => {
    for (let i = 0; i < 5; i++) {
      await expect(attempt({ password: `wrong-password-${i}-xx` })).rejects.toBeInstanceOf(UnauthorizedError);
      advance(MINUTE);
    }
    // Even the right password is refused while throttled, and nothing is checked or audited.
    const sixth = await rejection(attempt());
    expect(sixth).toBeInstanceOf(RateLimitedError);
    const retryAfterS = (sixth as RateLimitedError).retryAfterS;
    expect(retryAfterS).toBeGreaterThan(0);
    expect(retryAfterS).toBe(10 * 60); // the first failure was 15 min minus 5 min ago
    // Other accounts are not affected.
    await expect(attempt({ email: 'frank@example.com' })).resolves.toMatchObject({ user: { role: 'viewer' } });

    advance(retryAfterS * 1000 - 1000);
    await expect(attempt()).rejects.toBeInstanceOf(RateLimitedError);
    advance(1000);
    await expect(attempt()).resolves.toMatchObject({ user: { email: 'erin@example.com' } });
  });

  it('forgets an account’s failures after a successful login', async () => {
    for (let i = 0; i < 4; i++) {
      await expect(attempt({ password: 'wrong-password-xyz' })).rejects.toBeInstanceOf(UnauthorizedError);
    }
    await attempt();
    for (let i = 0; i < 4; i++) {
      await expect(attempt({ password: 'wrong-password-xyz' })).rejects.toBeInstanceOf(UnauthorizedError);
    }
    await expect(attempt()).resolves.toBeDefined();
  });

  it('throttles an IP after 20 failures across accounts', async () => {
    for (let i = 0; i < 20; i++) {
      await expect(
        attempt({ email: `probe${i}@example.com`, ip: '198.51.100.9', password: 'guess-password-123' }),
      ).rejects.toBeInstanceOf(UnauthorizedError);
    }
    const error = await rejection(attempt({ ip: '198.51.100.9' }));
    expect(error).toBeInstanceOf(RateLimitedError);
    expect((error as RateLimitedError).retryAfterS).toBeGreaterThan(0);
    await expect(attempt({ ip: '198.51.100.10' })).resolves.toBeDefined();
  });

  it('slides the expiry when less than half the ttl remains, writing at most once a minute', async () => {
    const { token } = await attempt();
    const created = await sessionRow(token);

    advance(3 * DAY); // 4 days left of 7: more than half, no write
    expect(await sessions.authenticate(token)).not.toBeNull();
    expect(await sessionRow(token)).toMatchObject({
      expires_at: created.expires_at,
      last_seen_at: created.last_seen_at,
    });

    advance(1 * DAY); // 3 days left: extend to now + 7 days
    expect(await sessions.authenticate(token)).not.toBeNull();
    const extended = await sessionRow(token);
    expect(extended.expires_at).toEqual(new Date(clock.getTime() + 7 * DAY));
    expect(extended.last_seen_at).toEqual(clock);

    advance(6 * DAY + 23 * 60 * MINUTE); // one hour left of the extended session
    expect(await sessions.authenticate(token)).not.toBeNull();
    const again = await sessionRow(token);
    expect(again.expires_at).toEqual(new Date(clock.getTime() + 7 * DAY));
  });

  it('does not write more than once a minute even with a short ttl', async () => {
    const short = new SessionService(t.database.db, users, audit, { ttlMs: 2 * MINUTE }, now);
    const { token } = await short.login({ email: 'frank@example.com', password: PASSWORD, ip: null, userAgent: null });
    advance(70_000); // 50 s left of 120: extend
    await short.authenticate(token);
    const first = await sessionRow(token);
    expect(first.last_seen_at).toEqual(clock);
    advance(20_000); // 100 s left: more than half, no write
    await short.authenticate(token);
    expect((await sessionRow(token)).last_seen_at).toEqual(first.last_seen_at);
  });

  it('refuses expired sessions and deletes them on clean-up', async () => {
    const { token } = await attempt();
    advance(7 * DAY);
    expect(await sessions.authenticate(token)).toBeNull();
    expect(await sessions.deleteExpired()).toBeGreaterThanOrEqual(1);
    const left = await t.database.db
      .selectFrom('sessions')
      .select('id')
      .where('token_hash', '=', sha256Hex(token))
      .execute();
    expect(left).toHaveLength(0);
  });

  it('stops authenticating a disabled user’s session even if the row remains', async () => {
    const { token, user } = await attempt({ email: 'frank@example.com' });
    await t.database.db.updateTable('users').set({ disabled_at: clock }).where('id', '=', user.id).execute();
    try {
      expect(await sessions.authenticate(token)).toBeNull();
    } finally {
      await t.database.db.updateTable('users').set({ disabled_at: null }).where('id', '=', user.id).execute();
    }
  });

  it('logs out: the token stops working, and the logout is audited', async () => {
    const { token } = await attempt();
    expect(await sessions.logout(token, '192.0.2.1')).toBe(true);
    expect(await sessions.authenticate(token)).toBeNull();
    expect(await sessions.logout(token)).toBe(false);
    const entry = await t.database.db
      .selectFrom('audit_log')
      .selectAll()
      .where('action', '=', 'auth.logout')
      .executeTakeFirstOrThrow();
    expect(entry).toMatchObject({ actor_label: 'erin@example.com', ip: '192.0.2.1' });
  });

  it('answers hostile tokens and e-mails with null or UnauthorizedError, never a database error', async () => {
    const hostile = [
      "' or '1'='1",
      "'; drop table sessions; --",
      'x'.repeat(10_000),
      'ünïcødé-🔑',
      'nul\u0000byte',
      'lone\uD800',
      '',
    ];
    for (const value of hostile) {
      expect(await sessions.authenticate(value)).toBeNull();
      expect(await sessions.logout(value)).toBe(false);
      const error = await rejection(
        sessions.login({ email: value, password: value, ip: `nul\u0000ip`, userAgent: value }),
      );
      expect(error).toBeInstanceOf(UnauthorizedError);
      advance(16 * MINUTE); // stay below the IP limit
    }
    const entries = await audit.list({ entityId: "' or '1'='1" });
    expect(entries.entries).toHaveLength(1);
  });
});
