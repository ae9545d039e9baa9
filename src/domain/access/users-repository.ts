/**
 * All SQL of user accounts (`users`). E-mails are unique case-insensitively (the unique
 * index is on `lower(email)`), and every lookup by e-mail compares the same way.
 *
 * `User` never carries the password hash; only `findCredentialsByEmail` reads it.
 */
import { sql, type Kysely } from 'kysely';
import type { DB, Role } from '../../db/schema.js';

/** A user account as the rest of Warden sees it (no password hash). */
export interface User {
  readonly id: number;
  readonly email: string;
  readonly role: Role;
  /** Set while the account is disabled: it cannot log in and has no sessions. */
  readonly disabledAt: Date | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  readonly lastLoginAt: Date | null;
}

export interface UserCredentials {
  readonly user: User;
  readonly passwordHash: string;
}

export interface NewUser {
  readonly email: string;
  readonly passwordHash: string;
  readonly role: Role;
  readonly createdAt: Date;
}

interface UserRecord {
  id: number;
  email: string;
  role: Role;
  disabled_at: Date | null;
  created_at: Date;
  updated_at: Date;
  last_login_at: Date | null;
}

const USER_COLUMNS = ['id', 'email', 'role', 'disabled_at', 'created_at', 'updated_at', 'last_login_at'] as const;

/** Key of the transaction advisory lock that serializes creating the first admin. */
const FIRST_ADMIN_LOCK_KEY = 0x77617264_00000001n; // "ward" + 1

function toUser(r: UserRecord): User {
  return {
    id: r.id,
    email: r.email,
    role: r.role,
    disabledAt: r.disabled_at,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    lastLoginAt: r.last_login_at,
  };
}

export class UsersRepository {
  /** Pass a transaction as `db` to run the methods inside it. */
  constructor(private readonly db: Kysely<DB>) {}

  /** Whether any user exists (cheap; used before creating the first admin). */
  async any(): Promise<boolean> {
    const row = await this.db.selectFrom('users').select('id').limit(1).executeTakeFirst();
    return row !== undefined;
  }

  /** All users, oldest first. */
  async list(): Promise<User[]> {
    const rows = await this.db.selectFrom('users').select(USER_COLUMNS).orderBy('id').execute();
    return rows.map(toUser);
  }

  /** The user with this id; with `forUpdate`, locked until the transaction ends. */
  async findById(id: number, options: { forUpdate?: boolean } = {}): Promise<User | undefined> {
    let select = this.db.selectFrom('users').select(USER_COLUMNS).where('id', '=', id);
    if (options.forUpdate === true) {
      select = select.forUpdate();
    }
    const row = await select.executeTakeFirst();
    return row === undefined ? undefined : toUser(row);
  }

  /**
   * The user with this e-mail (case-insensitive). With `forUpdate`, the row stays locked
   * until the surrounding transaction ends, so concurrent changes to it queue up.
   */
  async findByEmail(email: string, options: { forUpdate?: boolean } = {}): Promise<User | undefined> {
    let select = this.db
      .selectFrom('users')
      .select(USER_COLUMNS)
      .where(sql<string>`lower(email)`, '=', sql<string>`lower(${email})`);
    if (options.forUpdate === true) {
      select = select.forUpdate();
    }
    const row = await select.executeTakeFirst();
    return row === undefined ? undefined : toUser(row);
  }

  /** The user and their password hash, for verifying a login. */
  async findCredentialsByEmail(email: string): Promise<UserCredentials | undefined> {
    const row = await this.db
      .selectFrom('users')
      .select([...USER_COLUMNS, 'password_hash'])
      .where(sql<string>`lower(email)`, '=', sql<string>`lower(${email})`)
      .executeTakeFirst();
    return row === undefined ? undefined : { user: toUser(row), passwordHash: row.password_hash };
  }

  /** Inserts a user; undefined when the e-mail is taken (in any letter case). */
  async insert(user: NewUser): Promise<User | undefined> {
    const row = await this.db
      .insertInto('users')
      .values({
        email: user.email,
        password_hash: user.passwordHash,
        role: user.role,
        created_at: user.createdAt,
        updated_at: user.createdAt,
      })
      // The only unique keys are the identity and lower(email): a conflict is the e-mail.
      .onConflict((oc) => oc.doNothing())
      .returning(USER_COLUMNS)
      .executeTakeFirst();
    return row === undefined ? undefined : toUser(row);
  }

  /**
   * Inserts the user only if the table is empty; undefined otherwise. Must run in a
   * transaction: a transaction advisory lock makes concurrent callers (two instances
   * starting at once) take turns, so the second one sees the first one's row.
   */
  async insertIfNoUsers(user: NewUser): Promise<User | undefined> {
    await sql`select pg_advisory_xact_lock(${FIRST_ADMIN_LOCK_KEY.toString()}::int8)`.execute(this.db);
    const result = await sql<UserRecord>`
      insert into users (email, password_hash, role, created_at, updated_at)
      select ${user.email}, ${user.passwordHash}, ${user.role}, ${user.createdAt}, ${user.createdAt}
      where not exists (select 1 from users)
      on conflict do nothing
      returning id, email, role, disabled_at, created_at, updated_at, last_login_at
    `.execute(this.db);
    const row = result.rows[0];
    return row === undefined ? undefined : toUser(row);
  }

  /** Disables (`at` set) or enables (`at` null) the account. */
  async setDisabledAt(id: number, at: Date | null, updatedAt: Date): Promise<User> {
    const row = await this.db
      .updateTable('users')
      .set({ disabled_at: at, updated_at: updatedAt })
      .where('id', '=', id)
      .returning(USER_COLUMNS)
      .executeTakeFirstOrThrow();
    return toUser(row);
  }

  async setPasswordHash(id: number, passwordHash: string, updatedAt: Date): Promise<User> {
    const row = await this.db
      .updateTable('users')
      .set({ password_hash: passwordHash, updated_at: updatedAt })
      .where('id', '=', id)
      .returning(USER_COLUMNS)
      .executeTakeFirstOrThrow();
    return toUser(row);
  }

  async setRole(id: number, role: Role, updatedAt: Date): Promise<User> {
    const row = await this.db
      .updateTable('users')
      .set({ role, updated_at: updatedAt })
      .where('id', '=', id)
      .returning(USER_COLUMNS)
      .executeTakeFirstOrThrow();
    return toUser(row);
  }

  async recordLogin(id: number, at: Date): Promise<void> {
    await this.db.updateTable('users').set({ last_login_at: at }).where('id', '=', id).execute();
  }

  /**
   * Ids of the enabled admins, locked until the transaction ends, so two concurrent
   * demotions cannot both see "another admin remains" and leave none.
   */
  async lockEnabledAdmins(): Promise<number[]> {
    const rows = await this.db
      .selectFrom('users')
      .select('id')
      .where('role', '=', 'admin')
      .where('disabled_at', 'is', null)
      .orderBy('id')
      .forUpdate()
      .execute();
    return rows.map((r) => r.id);
  }
}
