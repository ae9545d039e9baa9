import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Role } from '../../../src/db/schema.js';
import { ApiKeyService, type AuditRecorder } from '../../../src/domain/access/api-key-service.js';
import type { Actor } from '../../../src/domain/access/permissions.js';
import { ENGINES, createTestDatabase, type TestDatabase } from '../../helpers/db.js';

const ACTOR: Actor = { type: 'user', id: 1, label: 'admin@warden.test', ip: '127.0.0.1' };

type AuditEntry = Parameters<AuditRecorder['record']>[1];

/** Keeps audit entries in memory; the audit log itself is another service's concern. */
class RecordingAudit implements AuditRecorder {
  readonly entries: AuditEntry[] = [];
  async record(_actor: Actor, entry: AuditEntry): Promise<void> {
    this.entries.push(entry);
  }
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

async function poll(condition: () => Promise<boolean>, attempts = 60, intervalMs = 50): Promise<boolean> {
  for (let i = 0; i < attempts; i += 1) {
    if (await condition()) {
      return true;
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  return false;
}

describe.each(ENGINES)('API keys on %s', (engine) => {
  let t: TestDatabase;
  let service: ApiKeyService;
  let audit: RecordingAudit;
  let adminId: number;
  /** Real time plus an offset the tests move forward. */
  let offsetMs = 0;
  const now = () => new Date(Date.now() + offsetMs);

  async function insertUser(email: string, role: Role): Promise<number> {
    const row = await t.database.db
      .insertInto('users')
      .values({ email, password_hash: 'not-a-real-hash', role, disabled_at: null, last_login_at: null })
      .returning('id')
      .executeTakeFirstOrThrow();
    return row.id;
  }

  beforeAll(async () => {
    t = await createTestDatabase(engine);
    audit = new RecordingAudit();
    service = new ApiKeyService(t.database.db, audit, { cacheTtlMs: 200 }, now);
    adminId = await insertUser('keys-admin@warden.test', 'admin');
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('returns the full key once and stores only its prefix and hash', async () => {
    const { key, record } = await service.create(
      ACTOR,
      { userId: adminId },
      { name: ' deploy bot ', scopes: ['write', 'read', 'write'] },
    );
    expect(key).toMatch(/^wdn_[A-Za-z0-9]{8}_[A-Za-z0-9_-]{32,}$/);
    expect(key.startsWith(`wdn_${record.prefix}_`)).toBe(true);
    expect(record).toMatchObject({
      userId: adminId,
      name: 'deploy bot',
      scopes: ['read', 'write'],
      expiresAt: null,
      revokedAt: null,
    });

    const stored = await t.database.db
      .selectFrom('api_keys')
      .selectAll()
      .where('id', '=', record.id)
      .executeTakeFirstOrThrow();
    expect(stored.key_hash).toBe(sha256Hex(key));
    expect(JSON.stringify(stored)).not.toContain(key.split('_').slice(2).join('_'));

    const listed = JSON.stringify([
      await service.list(),
      await service.list({ userId: adminId }),
      await service.get(record.id),
    ]);
    expect(listed).toContain(record.prefix);
    expect(listed).not.toContain(key);
    expect(listed).not.toContain(stored.key_hash);
    expect(listed).not.toMatch(/hash/i);

    const created = audit.entries.find((e) => e.action === 'api_key.create' && e.entityId === String(record.id));
    expect(created?.entityType).toBe('api_key');
    expect(JSON.stringify(created)).not.toContain(stored.key_hash);
    expect(JSON.stringify(created)).not.toContain(key);
  });

  it('authenticates the key and refuses a wrong secret, an unknown prefix or a malformed key', async () => {
    const { key, record } = await service.create(ACTOR, { userId: adminId }, { name: 'ci', scopes: ['admin'] });
    const principal = await service.authenticate(key);
    expect(principal).toMatchObject({
      kind: 'api_key',
      userId: adminId,
      role: 'admin',
      apiKeyId: record.id,
      scopes: ['admin'],
    });
    expect(principal?.permissions.has('admin')).toBe(true);

    const secret = key.slice(`wdn_${record.prefix}_`.length);
    const wrongSecret = `wdn_${record.prefix}_${secret.startsWith('A') ? 'B' : 'A'}${secret.slice(1)}`;
    expect(await service.authenticate(wrongSecret)).toBeNull();
    expect(
      await service.authenticate(`wdn_${record.prefix === 'ZZZZZZZZ' ? 'YYYYYYYY' : 'ZZZZZZZZ'}_${secret}`),
    ).toBeNull();
    expect(await service.authenticate('')).toBeNull();
    expect(await service.authenticate(`${key} `)).toBeNull();
    expect(await service.authenticate(`wdn_${record.prefix}_short`)).toBeNull();
  });

  it('stops accepting a revoked key at once, audits the revocation once', async () => {
    const { key, record } = await service.create(ACTOR, { userId: adminId }, { name: 'to revoke', scopes: ['read'] });
    expect(await service.authenticate(key)).not.toBeNull(); // now cached
    const revoked = await service.revoke(ACTOR, record.id);
    expect(revoked.revokedAt).toBeInstanceOf(Date);
    expect(await service.authenticate(key)).toBeNull();

    const again = await service.revoke(ACTOR, record.id);
    expect(again.revokedAt?.getTime()).toBe(revoked.revokedAt?.getTime());
    const entries = audit.entries.filter((e) => e.action === 'api_key.revoke' && e.entityId === String(record.id));
    expect(entries).toHaveLength(1);
    expect(entries[0]?.before).toMatchObject({ revokedAt: null });
    await expect(service.revoke(ACTOR, 999_999)).rejects.toMatchObject({ code: 'not_found' });
  });

  it('another instance with its own cache stops accepting a revoked key within its cache TTL', async () => {
    const other = new ApiKeyService(t.database.db, new RecordingAudit(), { cacheTtlMs: 200 }, now);
    const { key, record } = await service.create(ACTOR, { userId: adminId }, { name: 'shared', scopes: ['read'] });
    expect(await other.authenticate(key)).not.toBeNull(); // cached by the other instance
    await service.revoke(ACTOR, record.id);
    expect(await poll(async () => (await other.authenticate(key)) === null)).toBe(true);
  });

  it('refuses an expired key', async () => {
    const { key } = await service.create(
      ACTOR,
      { userId: adminId },
      { name: 'short-lived', scopes: ['read'], expiresInS: 60 },
    );
    expect(await service.authenticate(key)).not.toBeNull();
    offsetMs += 61_000;
    expect(await service.authenticate(key)).toBeNull();
  });

  it('refuses the key of a disabled owner', async () => {
    const ownerId = await insertUser('soon-disabled@warden.test', 'operator');
    const { key } = await service.create(ACTOR, { userId: ownerId }, { name: 'ops', scopes: ['write'] });
    expect(await service.authenticate(key)).not.toBeNull();
    await t.database.db.updateTable('users').set({ disabled_at: new Date() }).where('id', '=', ownerId).execute();
    offsetMs += 1000; // past the cache TTL
    expect(await service.authenticate(key)).toBeNull();
    await expect(service.create(ACTOR, { userId: ownerId }, { name: 'x', scopes: ['read'] })).rejects.toMatchObject({
      code: 'conflict',
    });
  });

  it("narrows a key to its scopes: an admin's read key cannot operate or administer", async () => {
    const { key } = await service.create(ACTOR, { userId: adminId }, { name: 'dashboard', scopes: ['read'] });
    const principal = await service.authenticate(key);
    expect(principal?.role).toBe('admin');
    expect(principal?.permissions.has('read')).toBe(true);
    for (const permission of ['operate', 'admin', 'ingest'] as const) {
      expect(principal?.permissions.has(permission)).toBe(false);
    }
  });

  it('writes last_used_at at most once a minute per key', async () => {
    const { key, record } = await service.create(ACTOR, { userId: adminId }, { name: 'busy', scopes: ['read'] });
    const lastUsed = async () => (await service.get(record.id)).lastUsedAt?.getTime();
    await service.authenticate(key);
    const first = await lastUsed();
    expect(first).toBeDefined();
    offsetMs += 10_000;
    for (let i = 0; i < 5; i += 1) {
      await service.authenticate(key);
    }
    expect(await lastUsed()).toBe(first);
    offsetMs += 61_000;
    await service.authenticate(key);
    expect(await lastUsed()).toBeGreaterThan(first ?? Infinity);
  });

  it('rejects invalid input, naming the field', async () => {
    const owner = { userId: adminId };
    const cases: [Parameters<ApiKeyService['create']>[2], string][] = [
      [{ name: '', scopes: ['read'] }, 'name'],
      [{ name: '   ', scopes: ['read'] }, 'name'],
      [{ name: 'x'.repeat(101), scopes: ['read'] }, 'name'],
      [{ name: 'k', scopes: [] }, 'scopes'],
      [{ name: 'k', scopes: ['read', 'superuser'] }, 'scopes'],
      [{ name: 'k', scopes: ['read'], expiresInS: 0 }, 'expiresInS'],
      [{ name: 'k', scopes: ['read'], expiresAt: new Date(Date.now() - 1000) }, 'expiresAt'],
      [{ name: 'k', scopes: ['read'], expiresAt: 'not a date' }, 'expiresAt'],
      [{ name: 'k', scopes: ['read'], expiresInS: 60, expiresAt: new Date(Date.now() + 3_600_000) }, 'expiresAt'],
    ];
    for (const [input, field] of cases) {
      await expect(service.create(ACTOR, owner, input), JSON.stringify(input)).rejects.toMatchObject({
        code: 'validation',
        field,
      });
    }
    await expect(service.create(ACTOR, owner, { name: 'k', scopes: ['root'] })).rejects.toThrow(
      /read, write, ingest, admin/,
    );
    await expect(service.create(ACTOR, { userId: 999_999 }, { name: 'k', scopes: ['read'] })).rejects.toMatchObject({
      code: 'not_found',
    });
    expect(await service.list({ userId: adminId })).not.toContainEqual(expect.objectContaining({ name: 'k' }));
  });

  it("lists one user's keys and hides other users' keys from a scoped get or revoke", async () => {
    const viewerId = await insertUser('viewer-keys@warden.test', 'viewer');
    const { record } = await service.create(ACTOR, { userId: viewerId }, { name: 'mine', scopes: ['read'] });
    expect((await service.list({ userId: viewerId })).map((k) => k.id)).toEqual([record.id]);
    await expect(service.get(record.id, { userId: adminId })).rejects.toMatchObject({ code: 'not_found' });
    await expect(service.revoke(ACTOR, record.id, { userId: adminId })).rejects.toMatchObject({ code: 'not_found' });
    expect((await service.get(record.id, { userId: viewerId })).revokedAt).toBeNull();
  });
});
