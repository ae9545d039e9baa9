import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AuditService,
  REDACTED,
  encodeCursor,
  redactSecrets,
  type AuditEntry,
} from '../../../src/domain/access/audit-service.js';
import type { Actor } from '../../../src/domain/access/permissions.js';
import { ValidationError } from '../../../src/errors.js';
import { ENGINES, createTestDatabase, type TestDatabase } from '../../helpers/db.js';

const ALICE: Actor = { type: 'user', id: 7, label: 'Alice@Example.com', ip: '192.0.2.1' };
const KEY: Actor = { type: 'api_key', id: 3, label: 'key 3 of bob@example.com', ip: null };

describe('redactSecrets', () => {
  it('redacts secret-named keys at any depth and keeps everything else', () => {
    const redacted = redactSecrets({
      email: 'a@example.com',
      password: 'hunter2-hunter2',
      passwordHash: '$argon2id$…',
      nested: { apiToken: 'abc', list: [{ client_secret: 's' }, { key_hash: 'h', name: 'ok' }] },
      api_key: 'wk_live_123',
      api_key_id: 12,
      SESSION_TOKEN: 'x',
      at: new Date('2026-06-01T00:00:00Z'),
      skipped: undefined,
    });
    expect(redacted).toEqual({
      email: 'a@example.com',
      password: REDACTED,
      passwordHash: REDACTED,
      nested: { apiToken: REDACTED, list: [{ client_secret: REDACTED }, { key_hash: REDACTED, name: 'ok' }] },
      api_key: REDACTED,
      api_key_id: 12,
      SESSION_TOKEN: REDACTED,
      at: '2026-06-01T00:00:00.000Z',
    });
  });

  it('redacts whole sub-objects under a secret key and copies scalars as JSON', () => {
    expect(redactSecrets({ secrets: { a: 1 } })).toEqual({ secrets: REDACTED });
    expect(redactSecrets([1, 'two', null, Number.NaN, 10n])).toEqual([1, 'two', null, 'NaN', '10']);
    expect(redactSecrets(undefined)).toBeNull();
  });
});

describe.each(ENGINES)('audit log on %s', (engine) => {
  let t: TestDatabase;
  let audit: AuditService;
  let clock = new Date('2026-06-01T12:00:00Z');
  const tick = (ms = 1000) => {
    clock = new Date(clock.getTime() + ms);
  };

  beforeAll(async () => {
    t = await createTestDatabase(engine);
    audit = new AuditService(t.database.db, () => clock);
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('stores before/after with secrets redacted and the actor as given', async () => {
    await audit.record(ALICE, {
      action: 'user.create',
      entityType: 'user',
      entityId: 1,
      after: { email: 'x@example.com', password_hash: '$argon2id$v=19$secret', nested: { token: 'tok' } },
    });
    const { entries } = await audit.list({ entityType: 'user', entityId: '1' });
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({
      actorType: 'user',
      actorId: 7,
      actorLabel: 'Alice@Example.com',
      ip: '192.0.2.1',
      action: 'user.create',
      entityId: '1',
      before: null,
      after: { email: 'x@example.com', password_hash: REDACTED, nested: { token: REDACTED } },
    });
    expect(entries[0]?.ts).toEqual(clock);
    expect(JSON.stringify(entries)).not.toContain('argon2');
  });

  it('commits an entry with the caller’s transaction, or not at all', async () => {
    await expect(
      t.database.db.transaction().execute(async (trx) => {
        await audit.record(ALICE, { action: 'thing.change', entityType: 'thing', entityId: 'rolled-back' }, trx);
        throw new Error('the change failed');
      }),
    ).rejects.toThrow('the change failed');
    expect((await audit.list({ entityId: 'rolled-back' })).entries).toHaveLength(0);
  });

  it('offers no way to change or delete entries', () => {
    expect(Object.getOwnPropertyNames(AuditService.prototype).sort()).toEqual(['constructor', 'list', 'record']);
  });

  it('filters by entity, actor label (any case) or id, and time range', async () => {
    tick();
    const from = clock;
    await audit.record(ALICE, { action: 'monitor.create', entityType: 'monitor', entityId: 'm1' });
    tick();
    await audit.record(KEY, { action: 'monitor.update', entityType: 'monitor', entityId: 'm1', before: {}, after: {} });
    tick();
    await audit.record(KEY, { action: 'monitor.create', entityType: 'monitor', entityId: 'm2' });
    tick();
    const to = clock;
    await audit.record(ALICE, { action: 'monitor.delete', entityType: 'monitor', entityId: 'm2' });

    const actions = (page: { entries: AuditEntry[] }) => page.entries.map((e) => `${e.action}:${e.entityId}`);
    expect(actions(await audit.list({ entityType: 'monitor', entityId: 'm1' }))).toEqual([
      'monitor.update:m1',
      'monitor.create:m1',
    ]);
    expect(actions(await audit.list({ entityType: 'monitor', actor: 'alice@example.COM' }))).toEqual([
      'monitor.delete:m2',
      'monitor.create:m1',
    ]);
    expect(actions(await audit.list({ entityType: 'monitor', actor: '3' }))).toEqual([
      'monitor.create:m2',
      'monitor.update:m1',
    ]);
    expect(actions(await audit.list({ entityType: 'monitor', from, to }))).toEqual([
      'monitor.create:m2',
      'monitor.update:m1',
      'monitor.create:m1',
    ]);
  });

  it('pages newest first with a cursor, across equal and microsecond timestamps', async () => {
    tick(60_000);
    // Three entries share one timestamp (the id breaks the tie) ...
    for (let i = 1; i <= 3; i++) {
      await audit.record(ALICE, { action: 'page.test', entityType: 'page', entityId: `same-${i}` });
    }
    // ... and four were written by the database default with microsecond timestamps.
    for (let i = 1; i <= 4; i++) {
      const ts = `2026-06-01T11:00:00.00012${i}Z`;
      await sql`
        insert into audit_log (ts, actor_type, actor_label, action, entity_type, entity_id)
        values (${ts}::timestamptz, 'system', 'system', 'page.test', 'page', ${`micro-${i}`})
      `.execute(t.database.db);
    }
    const seen: string[] = [];
    let cursor: string | undefined;
    const pageSizes: number[] = [];
    do {
      const page = await audit.list({ entityType: 'page', limit: 3, cursor });
      pageSizes.push(page.entries.length);
      seen.push(...page.entries.map((e) => e.entityId ?? ''));
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined);
    expect(pageSizes).toEqual([3, 3, 1]);
    expect(seen).toEqual(['same-3', 'same-2', 'same-1', 'micro-4', 'micro-3', 'micro-2', 'micro-1']);
  });

  it('rejects bad cursors, limits and ranges with ValidationError', async () => {
    const bad = [
      'not a cursor!',
      Buffer.from('hello').toString('base64url'),
      Buffer.from('2026-02-30T00:00:00.000000Z|5').toString('base64url'),
      Buffer.from('2026-06-01T00:00:00.000000Z|99999999999999999999').toString('base64url'),
      Buffer.from("2026-06-01T00:00:00.000000Z|1' or '1'='1").toString('base64url'),
      'A'.repeat(10_000),
      '',
    ];
    for (const cursor of bad) {
      await expect(audit.list({ cursor })).rejects.toSatisfy(
        (e: unknown) => e instanceof ValidationError && e.field === 'cursor',
      );
    }
    for (const limit of [0, 201, 1.5]) {
      await expect(audit.list({ limit })).rejects.toSatisfy(
        (e: unknown) => e instanceof ValidationError && e.field === 'limit',
      );
    }
    await expect(
      audit.list({ from: new Date('2026-06-02T00:00:00Z'), to: new Date('2026-06-01T00:00:00Z') }),
    ).rejects.toBeInstanceOf(ValidationError);
    await expect(audit.list({ from: new Date(Number.NaN) })).rejects.toBeInstanceOf(ValidationError);
    const valid = encodeCursor({ ts: '2026-06-01T00:00:00.000000Z', id: 1 });
    await expect(audit.list({ cursor: valid })).resolves.toMatchObject({ entries: [], nextCursor: null });
  });

  it('returns 50 entries by default', async () => {
    for (let i = 0; i < 55; i++) {
      await audit.record(KEY, { action: 'bulk.test', entityType: 'bulk', entityId: String(i) });
    }
    const page = await audit.list({ entityType: 'bulk' });
    expect(page.entries).toHaveLength(50);
    expect(page.nextCursor).not.toBeNull();
  });

  it('stores hostile text verbatim where PostgreSQL can, and filters with it safely', async () => {
    const values = ["' or 1=1; --", 'x'.repeat(10_000), 'ünïcødé 🔑 用户', 'nul\u0000byte', 'lone\uD800'];
    for (const value of values) {
      await audit.record(
        { type: 'anonymous', id: null, label: value, ip: value },
        { action: 'hostile.test', entityType: 'hostile', entityId: value, after: { [value]: value } },
      );
      const { entries } = await audit.list({ entityType: 'hostile', entityId: value, actor: value });
      expect(entries).toHaveLength(1);
      const stored = value.replaceAll('\u0000', '\uFFFD').replaceAll('\uD800', '\uFFFD');
      expect(entries[0]).toMatchObject({ actorLabel: stored, entityId: stored, after: { [stored]: stored } });
    }
  });
});
