import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditService } from '../../../src/domain/access/audit-service.js';
import type { Actor, Role } from '../../../src/domain/access/permissions.js';
import { SessionService } from '../../../src/domain/access/session-service.js';
import { UserService, type CreateUserInput } from '../../../src/domain/access/user-service.js';
import { UsersRepository } from '../../../src/domain/access/users-repository.js';
import { AppError, ConflictError, NotFoundError, ValidationError } from '../../../src/errors.js';
import { ENGINES, createTestDatabase, type TestDatabase } from '../../helpers/db.js';
import { rejection } from '../../helpers/assert.js';

const ADMIN: Actor = { type: 'user', id: 1, label: 'root@example.com', ip: '203.0.113.7' };

describe.each(ENGINES)('user accounts on %s', (engine) => {
  let t: TestDatabase;
  let users: UserService;
  let sessions: SessionService;
  const clock = new Date('2026-06-01T12:00:00Z');

  /** Every audit row as JSON text, to prove no secret reached it. */
  async function auditText(): Promise<string> {
    const rows = await t.database.db.selectFrom('audit_log').selectAll().execute();
    return JSON.stringify(rows);
  }

  beforeAll(async () => {
    t = await createTestDatabase(engine);
    const audit = new AuditService(t.database.db, () => clock);
    users = new UserService(t.database.db, audit, () => clock);
    sessions = new SessionService(t.database.db, users, audit, {}, () => clock);
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('creates the first admin once, with a generated password that verifies', async () => {
    const first = await users.ensureFirstAdmin({ email: ' root@example.com ' });
    expect(first).toMatchObject({ created: true, email: 'root@example.com' });
    const password = first.created ? first.generatedPassword : undefined;
    expect(password).toMatch(/^[A-Za-z0-9_-]{32}$/);
    const admin = await users.verifyCredentials('ROOT@example.com', password ?? '');
    expect(admin).toMatchObject({ email: 'root@example.com', role: 'admin' });

    await expect(users.ensureFirstAdmin({ email: 'other@example.com' })).resolves.toEqual({ created: false });
    expect(await users.listUsers()).toHaveLength(1);
    const audit = await t.database.db.selectFrom('audit_log').selectAll().where('action', '=', 'user.create').execute();
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ actor_type: 'system', actor_label: 'system', entity_id: String(admin?.id) });
  });

  it('creates a user with audit in the same transaction and never exposes the hash', async () => {
    const created = await users.createUser(ADMIN, {
      email: '  Alice@Example.com ',
      role: 'operator',
      password: 'alice-password-123',
    });
    expect(created.generatedPassword).toBeUndefined();
    expect(created.user).toMatchObject({ email: 'Alice@Example.com', role: 'operator', disabledAt: null });
    expect(Object.keys(created.user)).not.toContain('passwordHash');
    expect(JSON.stringify(await users.listUsers())).not.toContain('argon2');
    expect(await users.getUser(created.user.id)).toEqual(created.user);
    expect(await users.findByEmail('alice@example.COM')).toEqual(created.user);
    await expect(users.findByEmail('nobody@example.com')).rejects.toBeInstanceOf(NotFoundError);

    const entry = await t.database.db
      .selectFrom('audit_log')
      .selectAll()
      .where('action', '=', 'user.create')
      .where('entity_id', '=', String(created.user.id))
      .executeTakeFirstOrThrow();
    expect(entry).toMatchObject({
      actor_type: 'user',
      actor_id: 1,
      actor_label: 'root@example.com',
      ip: '203.0.113.7',
    });
    expect(entry.after).toMatchObject({ email: 'Alice@Example.com', role: 'operator' });
    expect(entry.before).toBeNull();
  });

  it('rejects a duplicate e-mail in another letter case with ConflictError on email', async () => {
    const error = await rejection(users.createUser(ADMIN, { email: 'alice@EXAMPLE.com', role: 'viewer' }));
    expect(error).toBeInstanceOf(ConflictError);
    expect((error as ConflictError).field).toBe('email');
    expect(await users.listUsers()).toHaveLength(2);
  });

  it('validates role, e-mail and password with the offending field named', async () => {
    const cases: [CreateUserInput, string][] = [
      [{ email: 'bob@example.com', role: 'superuser' as Role }, 'role'],
      [{ email: 'not-an-email', role: 'viewer' }, 'email'],
      [{ email: 'bob@example.com', role: 'viewer', password: 'short' }, 'password'],
    ];
    for (const [input, field] of cases) {
      const error = await rejection(users.createUser(ADMIN, input));
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).field).toBe(field);
    }
    await expect(users.getUser(999_999)).rejects.toBeInstanceOf(NotFoundError);
    await expect(users.getUser(-1)).rejects.toBeInstanceOf(ValidationError);
  });

  it('generates a password when none is given', async () => {
    const created = await users.createUser(ADMIN, { email: 'carol@example.com', role: 'viewer' });
    expect(created.generatedPassword).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(await users.verifyCredentials('carol@example.com', created.generatedPassword ?? '')).not.toBeNull();
  });

  it('disables a user: sessions end at once, login stops, and it is audited', async () => {
    const login = await sessions.login({
      email: 'alice@example.com',
      password: 'alice-password-123',
      ip: '198.51.100.1',
      userAgent: 'test',
    });
    expect(await sessions.authenticate(login.token)).not.toBeNull();

    const disabled = await users.disableUser(ADMIN, 'ALICE@example.com');
    expect(disabled.disabledAt).toEqual(clock);
    expect(await sessions.authenticate(login.token)).toBeNull();
    const remaining = await t.database.db
      .selectFrom('sessions')
      .select('id')
      .where('user_id', '=', disabled.id)
      .execute();
    expect(remaining).toHaveLength(0);
    expect(await users.verifyCredentials('alice@example.com', 'alice-password-123')).toBeNull();

    const entry = await t.database.db
      .selectFrom('audit_log')
      .selectAll()
      .where('action', '=', 'user.disable')
      .executeTakeFirstOrThrow();
    expect(entry.before).toMatchObject({ disabledAt: null });
    expect(entry.after).toMatchObject({ disabledAt: clock.toISOString(), sessionsEnded: 1 });

    const enabled = await users.enableUser(ADMIN, 'alice@example.com');
    expect(enabled.disabledAt).toBeNull();
    expect(await users.verifyCredentials('alice@example.com', 'alice-password-123')).not.toBeNull();
  });

  it('resets a password: the old one stops working, sessions end, the audit has no password', async () => {
    const login = await sessions.login({
      email: 'alice@example.com',
      password: 'alice-password-123',
      ip: null,
      userAgent: null,
    });
    const { password } = await users.resetPassword(ADMIN, 'alice@example.com');
    expect(password).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(await sessions.authenticate(login.token)).toBeNull();
    expect(await users.verifyCredentials('alice@example.com', 'alice-password-123')).toBeNull();
    expect(await users.verifyCredentials('alice@example.com', password)).not.toBeNull();

    const chosen = await users.resetPassword(ADMIN, 'alice@example.com', 'a-chosen-new-password');
    expect(chosen.password).toBe('a-chosen-new-password');
    const error = await rejection(users.resetPassword(ADMIN, 'alice@example.com', 'tiny'));
    expect((error as ValidationError).field).toBe('password');
    await expect(users.resetPassword(ADMIN, 'nobody@example.com')).rejects.toBeInstanceOf(NotFoundError);

    const text = await auditText();
    for (const secret of [password, 'a-chosen-new-password', 'alice-password-123', '$argon2']) {
      expect(text).not.toContain(secret);
    }
  });

  it('changes roles with audit, and refuses to demote or disable the last enabled admin', async () => {
    const alice = (await users.listUsers()).find((u) => u.email === 'Alice@Example.com');
    const root = (await users.listUsers()).find((u) => u.email === 'root@example.com');
    if (alice === undefined || root === undefined) {
      throw new Error('fixtures missing');
    }
    const demote = await rejection(users.setRole(ADMIN, root.id, 'viewer'));
    expect(demote).toBeInstanceOf(ConflictError);
    await expect(users.disableUser(ADMIN, 'root@example.com')).rejects.toBeInstanceOf(ConflictError);

    const promoted = await users.setRole(ADMIN, alice.id, 'admin');
    expect(promoted.role).toBe('admin');
    const entry = await t.database.db
      .selectFrom('audit_log')
      .selectAll()
      .where('action', '=', 'user.role_change')
      .executeTakeFirstOrThrow();
    expect(entry.before).toMatchObject({ role: 'operator' });
    expect(entry.after).toMatchObject({ role: 'admin' });

    // With a second admin, demoting the first one is allowed.
    expect((await users.setRole(ADMIN, root.id, 'operator')).role).toBe('operator');
    expect((await users.setRole(ADMIN, root.id, 'admin')).role).toBe('admin');
    await expect(users.setRole(ADMIN, alice.id, 'owner' as 'admin')).rejects.toBeInstanceOf(ValidationError);
    await expect(users.setRole(ADMIN, 424_242, 'viewer')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('stores hostile e-mails verbatim or rejects them with ValidationError, never a database error', async () => {
    const inputs = [
      "x'or'1'='1@example.com",
      "robert');drop_table_users;--@example.com",
      'ünïcødé.用户@例子.测试',
      '😀@emoji.example',
      "'; drop table users; --",
      `${'a'.repeat(10_000)}@example.com`,
      `nul\u0000byte@example.com`,
      `lone\uD800@example.com`,
      'zero\u200Bwidth@example.com',
      '',
    ];
    for (const email of inputs) {
      try {
        const { user } = await users.createUser(ADMIN, { email, role: 'viewer', password: 'long-enough-password' });
        expect(user.email).toBe(email.trim());
        expect((await users.getUser(user.id)).email).toBe(email.trim());
      } catch (error) {
        expect(error).toBeInstanceOf(ValidationError);
        expect((error as AppError).field).toBe('email');
      }
      // Lookups with the same strings answer normally too.
      expect(await users.verifyCredentials(email, 'long-enough-password')).toSatisfy(
        (u: unknown) => u === null || (u as { email: string }).email === email,
      );
      const disable = await rejection(users.disableUser(ADMIN, `${email}x`));
      expect(disable).toBeInstanceOf(AppError);
    }
    const stored = (await users.listUsers()).map((u) => u.email);
    expect(stored).toEqual(
      expect.arrayContaining(["x'or'1'='1@example.com", 'ünïcødé.用户@例子.测试', '😀@emoji.example']),
    );
    const { count } = await t.database.db
      .selectFrom('users')
      .select(sql<number>`count(*)::int`.as('count'))
      .executeTakeFirstOrThrow();
    expect(count).toBe(stored.length);
  });

  it('lets exactly one of two instances starting at once create the first admin', async () => {
    const other = await createTestDatabase(engine);
    try {
      const audit = new AuditService(other.database.db);
      const a = new UserService(other.database.db, audit);
      const b = new UserService(other.database.db, audit);
      const results = await Promise.all([
        a.ensureFirstAdmin({ email: 'one@example.com', password: 'first-admin-password' }),
        b.ensureFirstAdmin({ email: 'two@example.com', password: 'first-admin-password' }),
      ]);
      expect(results.filter((r) => r.created)).toHaveLength(1);
      expect(await a.listUsers()).toHaveLength(1);
    } finally {
      await other.cleanup();
    }
  });

  it('keeps the first-admin insert exclusive while another one is still uncommitted', async () => {
    // Both transactions see an empty table; the second must wait for the first to commit.
    const other = await createTestDatabase(engine);
    try {
      const db = other.database.db;
      const admin = (email: string) => ({ email, passwordHash: 'x', role: 'admin' as const, createdAt: clock });
      let firstInserted!: () => void;
      const inserted = new Promise<void>((resolve) => {
        firstInserted = resolve;
      });
      const first = db.transaction().execute(async (trx) => {
        const user = await new UsersRepository(trx).insertIfNoUsers(admin('one@example.com'));
        firstInserted();
        await new Promise((resolve) => setTimeout(resolve, 300)); // hold the transaction open
        return user;
      });
      await inserted;
      const second = db
        .transaction()
        .execute((trx) => new UsersRepository(trx).insertIfNoUsers(admin('two@example.com')));
      const [one, two] = await Promise.all([first, second]);
      expect(one?.email).toBe('one@example.com');
      expect(two).toBeUndefined();
      expect(await new UsersRepository(db).list()).toHaveLength(1);
    } finally {
      await other.cleanup();
    }
  });
});
