/**
 * User accounts: creation (including the first admin), roles, disabling and password
 * resets, and checking a password at login.
 *
 * Invariants:
 * - every change is audited in the transaction that makes it, without the password or hash;
 * - disabling a user or resetting their password ends all their sessions at once;
 * - at least one enabled admin remains: the last one cannot be disabled or demoted;
 * - e-mails are unique ignoring letter case.
 */
import type { Kysely } from 'kysely';
import type { DB } from '../../db/schema.js';
import { ConflictError, NotFoundError, ValidationError } from '../../errors.js';
import type { AuditService } from './audit-service.js';
import {
  generatePassword,
  hashPassword,
  PASSWORD_MAX_LENGTH,
  validatePasswordStrength,
  verifyDummyPassword,
  verifyPassword,
} from './passwords.js';
import { ROLES, SYSTEM_ACTOR, type Actor, type Role } from './permissions.js';
import { SessionsRepository } from './sessions-repository.js';
import { UsersRepository, type User } from './users-repository.js';

export type { User } from './users-repository.js';

/** Longest e-mail accepted (RFC 5321 path limit). */
export const EMAIL_MAX_LENGTH = 254;

// No whitespace, control, format (invisible) or lone-surrogate characters; one @; a domain
// without empty labels. Deliberately loose otherwise: `admin@localhost` and Unicode are fine.
const EMAIL_CHAR = String.raw`[^@\s\p{Cc}\p{Cf}\p{Cs}]`;
const DOMAIN_LABEL = String.raw`[^@.\s\p{Cc}\p{Cf}\p{Cs}]+`;
const EMAIL_SHAPE = new RegExp(`^${EMAIL_CHAR}+@${DOMAIN_LABEL}(?:\\.${DOMAIN_LABEL})*$`, 'u');

export interface CreateUserInput {
  readonly email: string;
  readonly role: Role;
  /** When omitted, a strong password is generated and returned once. */
  readonly password?: string;
}

export interface CreatedUser {
  readonly user: User;
  /** Set only when the password was generated; shown once, never stored in clear. */
  readonly generatedPassword?: string;
}

export type FirstAdminResult =
  { readonly created: true; readonly email: string; readonly generatedPassword?: string } | { readonly created: false };

/** Trims and checks an e-mail; throws ValidationError on `field`. */
export function parseEmail(value: unknown, field = 'email'): string {
  if (typeof value !== 'string') {
    throw new ValidationError(field, `${field} must be a string`);
  }
  const email = value.trim();
  if (email.length === 0) {
    throw new ValidationError(field, `${field} is required`);
  }
  if (email.length > EMAIL_MAX_LENGTH) {
    throw new ValidationError(
      field,
      `${field} must be at most ${EMAIL_MAX_LENGTH} characters long, got ${email.length}`,
    );
  }
  if (!EMAIL_SHAPE.test(email)) {
    throw new ValidationError(field, `${field} must look like name@example.com, without spaces or control characters`);
  }
  return email;
}

function parseRole(value: unknown): Role {
  if (typeof value !== 'string' || !(ROLES as readonly string[]).includes(value)) {
    throw new ValidationError('role', `role must be one of ${ROLES.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as Role;
}

function parseId(value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new ValidationError('id', `id must be a positive integer, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** What the audit log keeps of a user: never the hash. */
function auditView(user: User): { id: number; email: string; role: Role; disabledAt: Date | null } {
  return { id: user.id, email: user.email, role: user.role, disabledAt: user.disabledAt };
}

export class UserService {
  private readonly accessListeners: ((userId: number) => void)[] = [];

  constructor(
    private readonly db: Kysely<DB>,
    private readonly audit: AuditService,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /**
   * Creates a user. The e-mail is trimmed and must be unique ignoring case (ConflictError
   * on `email`); the role must be viewer, operator or admin; the password must meet the
   * rules, or is generated and returned as `generatedPassword` when omitted.
   */
  async createUser(actor: Actor, input: CreateUserInput): Promise<CreatedUser> {
    const email = parseEmail(input.email);
    const role = parseRole(input.role);
    const generatedPassword = input.password === undefined ? generatePassword() : undefined;
    const password = generatedPassword ?? validatePasswordStrength(input.password, 'password');
    // Hash before the transaction: it takes ~80 ms and must not hold a connection.
    const passwordHash = await hashPassword(password);
    const user = await this.db.transaction().execute(async (trx) => {
      const created = await new UsersRepository(trx).insert({ email, passwordHash, role, createdAt: this.now() });
      if (created === undefined) {
        throw new ConflictError(`A user with e-mail ${email} already exists (e-mails ignore letter case)`, 'email');
      }
      await this.audit.record(
        actor,
        { action: 'user.create', entityType: 'user', entityId: created.id, after: auditView(created) },
        trx,
      );
      return created;
    });
    return generatedPassword === undefined ? { user } : { user, generatedPassword };
  }

  /** All users, oldest first, without password hashes. */
  async listUsers(): Promise<User[]> {
    return new UsersRepository(this.db).list();
  }

  /** One user; NotFoundError when there is none with this id. */
  async getUser(id: number): Promise<User> {
    const user = await new UsersRepository(this.db).findById(parseId(id));
    if (user === undefined) {
      throw new NotFoundError(`No user with id ${id}`);
    }
    return user;
  }

  /** The user with this e-mail (ignoring case); NotFoundError when there is none. */
  async findByEmail(email: string): Promise<User> {
    const address = parseEmail(email);
    const user = await new UsersRepository(this.db).findByEmail(address);
    if (user === undefined) {
      throw new NotFoundError(`No user with e-mail ${address}`);
    }
    return user;
  }

  /**
   * Disables the account and deletes its sessions in the same transaction, so it is
   * logged out everywhere at once. Disabling a disabled account changes nothing.
   * ConflictError when it is the last enabled admin.
   */
  async disableUser(actor: Actor, email: string): Promise<User> {
    const address = parseEmail(email);
    const disabled = await this.db.transaction().execute(async (trx) => {
      const users = new UsersRepository(trx);
      const admins = await users.lockEnabledAdmins();
      const user = await this.findForUpdate(users, address);
      if (user.disabledAt !== null) {
        return user;
      }
      if (admins.length === 1 && admins[0] === user.id) {
        throw new ConflictError(`${user.email} is the last enabled admin; make another user admin first`, 'email');
      }
      const at = this.now();
      const disabled = await users.setDisabledAt(user.id, at, at);
      const sessionsEnded = await new SessionsRepository(trx).deleteByUserId(user.id);
      await this.audit.record(
        actor,
        {
          action: 'user.disable',
          entityType: 'user',
          entityId: user.id,
          before: auditView(user),
          after: { ...auditView(disabled), sessionsEnded },
        },
        trx,
      );
      return disabled;
    });
    this.notifyAccessChanged(disabled.id);
    return disabled;
  }

  /**
   * Registers a listener called after a user's access shrank (disabled, role changed), so
   * caches of credentials (API key lookups) drop that user at once.
   */
  onAccessChanged(listener: (userId: number) => void): void {
    this.accessListeners.push(listener);
  }

  private notifyAccessChanged(userId: number): void {
    for (const listener of this.accessListeners) {
      listener(userId);
    }
  }

  /** Enables a disabled account again. Enabling an enabled account changes nothing. */
  async enableUser(actor: Actor, email: string): Promise<User> {
    const address = parseEmail(email);
    return this.db.transaction().execute(async (trx) => {
      const users = new UsersRepository(trx);
      const user = await this.findForUpdate(users, address);
      if (user.disabledAt === null) {
        return user;
      }
      const enabled = await users.setDisabledAt(user.id, null, this.now());
      await this.audit.record(
        actor,
        {
          action: 'user.enable',
          entityType: 'user',
          entityId: user.id,
          before: auditView(user),
          after: auditView(enabled),
        },
        trx,
      );
      return enabled;
    });
  }

  /**
   * Sets a new password (the given one, checked against the rules, or a generated one)
   * and ends all the user's sessions. Returns the password so it can be shown once; the
   * audit entry records that a reset happened, never the password.
   */
  async resetPassword(actor: Actor, email: string, newPassword?: string): Promise<{ password: string }> {
    const address = parseEmail(email);
    const password = newPassword === undefined ? generatePassword() : validatePasswordStrength(newPassword, 'password');
    const passwordHash = await hashPassword(password);
    await this.db.transaction().execute(async (trx) => {
      const users = new UsersRepository(trx);
      const user = await this.findForUpdate(users, address);
      await users.setPasswordHash(user.id, passwordHash, this.now());
      const sessionsEnded = await new SessionsRepository(trx).deleteByUserId(user.id);
      await this.audit.record(
        actor,
        {
          action: 'user.password_reset',
          entityType: 'user',
          entityId: user.id,
          before: auditView(user),
          after: { ...auditView(user), sessionsEnded, generated: newPassword === undefined },
        },
        trx,
      );
    });
    return { password };
  }

  /** Changes a user's role. ConflictError when it would demote the last enabled admin. */
  async setRole(actor: Actor, id: number, role: Role): Promise<User> {
    const userId = parseId(id);
    const newRole = parseRole(role);
    const changed = await this.db.transaction().execute(async (trx) => {
      const users = new UsersRepository(trx);
      const admins = await users.lockEnabledAdmins();
      const user = await users.findById(userId, { forUpdate: true });
      if (user === undefined) {
        throw new NotFoundError(`No user with id ${userId}`);
      }
      if (user.role === newRole) {
        return user;
      }
      if (admins.length === 1 && admins[0] === user.id) {
        throw new ConflictError(`${user.email} is the last enabled admin; make another user admin first`, 'role');
      }
      const changed = await users.setRole(user.id, newRole, this.now());
      await this.audit.record(
        actor,
        {
          action: 'user.role_change',
          entityType: 'user',
          entityId: user.id,
          before: auditView(user),
          after: auditView(changed),
        },
        trx,
      );
      return changed;
    });
    this.notifyAccessChanged(changed.id);
    return changed;
  }

  /**
   * Creates an admin when there are no users at all (first start); does nothing
   * otherwise. Safe when several instances start at once: exactly one creates it.
   * Without a password, one is generated and returned once as `generatedPassword`.
   */
  async ensureFirstAdmin(input: { email: string; password?: string }): Promise<FirstAdminResult> {
    if (await new UsersRepository(this.db).any()) {
      return { created: false };
    }
    const email = parseEmail(input.email);
    const generatedPassword = input.password === undefined ? generatePassword() : undefined;
    const password = generatedPassword ?? validatePasswordStrength(input.password, 'password');
    const passwordHash = await hashPassword(password);
    const user = await this.db.transaction().execute(async (trx) => {
      const created = await new UsersRepository(trx).insertIfNoUsers({
        email,
        passwordHash,
        role: 'admin',
        createdAt: this.now(),
      });
      if (created !== undefined) {
        await this.audit.record(
          SYSTEM_ACTOR,
          { action: 'user.create', entityType: 'user', entityId: created.id, after: auditView(created) },
          trx,
        );
      }
      return created;
    });
    if (user === undefined) {
      return { created: false };
    }
    return generatedPassword === undefined
      ? { created: true, email: user.email }
      : { created: true, email: user.email, generatedPassword };
  }

  /**
   * The user whose e-mail and password these are, or null: unknown e-mail, wrong
   * password or disabled account. Takes about as long whether the account exists or not.
   */
  async verifyCredentials(email: string, password: string): Promise<User | null> {
    let address: string;
    try {
      address = parseEmail(email);
    } catch {
      address = '';
    }
    // No stored password is longer (≤ 2 UTF-16 units per character), and no account has an
    // address that fails the rules: answer null after the same work as for a wrong password.
    if (address === '' || typeof password !== 'string' || password.length > PASSWORD_MAX_LENGTH * 2) {
      return verifyDummyPassword('').then(() => null);
    }
    const credentials = await new UsersRepository(this.db).findCredentialsByEmail(address);
    if (credentials === undefined) {
      return verifyDummyPassword(password).then(() => null);
    }
    const matches = await verifyPassword(credentials.passwordHash, password);
    return matches && credentials.user.disabledAt === null ? credentials.user : null;
  }

  private async findForUpdate(users: UsersRepository, email: string): Promise<User> {
    const user = await users.findByEmail(email, { forUpdate: true });
    if (user === undefined) {
      throw new NotFoundError(`No user with e-mail ${email}`);
    }
    return user;
  }
}
