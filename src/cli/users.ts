/** `warden users …` and `warden keys …`: the same services the API uses, acting as the CLI. */
import type { Command } from 'commander';
import type { Config } from '../config/index.js';
import { ApiKeyService } from '../domain/access/api-key-service.js';
import { AuditService } from '../domain/access/audit-service.js';
import { ROLES, SCOPES, type Actor, type Role, type Scope } from '../domain/access/permissions.js';
import { UserService } from '../domain/access/user-service.js';
import { parseDuration } from '../config/parse.js';
import { CliExit, EXIT_CONFIG, print } from './common.js';
import { withDatabase } from './db.js';

/** Changes made from the command line are audited as the operator at the console. */
const CLI_ACTOR: Actor = { type: 'system', id: null, label: 'cli', ip: null };

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

function parseRole(value: string): Role {
  if (!(ROLES as readonly string[]).includes(value)) {
    throw new CliExit(EXIT_CONFIG, `--role must be one of ${ROLES.join(', ')}, got "${value}"`);
  }
  return value as Role;
}

function parseScopes(value: string): Scope[] {
  const scopes = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const unknown = scopes.filter((s) => !(SCOPES as readonly string[]).includes(s));
  if (scopes.length === 0 || unknown.length > 0) {
    throw new CliExit(EXIT_CONFIG, `--scopes must be a comma-separated list of ${SCOPES.join(', ')}, got "${value}"`);
  }
  return scopes as Scope[];
}

export function registerUserCommands(program: Command, config: () => Config): void {
  const users = program.command('users').description('manage user accounts');

  users
    .command('create')
    .description('create a user; without --password-stdin a strong password is generated and printed once')
    .requiredOption('--email <email>', 'e-mail address (the login name)')
    .requiredOption('--role <role>', `one of ${ROLES.join(', ')}`)
    .option('--password-stdin', 'read the password from standard input')
    .option('--json', 'print JSON')
    .action(async (opts: { email: string; role: string; passwordStdin?: boolean; json?: boolean }) => {
      const role = parseRole(opts.role);
      const password = opts.passwordStdin === true ? await readStdin() : undefined;
      const created = await withDatabase(config(), (database) =>
        new UserService(database.db, new AuditService(database.db)).createUser(CLI_ACTOR, {
          email: opts.email,
          role,
          password,
        }),
      );
      const generated = created.generatedPassword;
      print(
        opts.json === true,
        {
          id: created.user.id,
          email: created.user.email,
          role: created.user.role,
          generated_password: generated ?? null,
        },
        `created ${created.user.email} (${created.user.role})` +
          (generated === undefined ? '' : `\npassword (shown once): ${generated}`),
      );
    });

  users
    .command('list')
    .description('list users')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const list = await withDatabase(config(), (database) =>
        new UserService(database.db, new AuditService(database.db)).listUsers(),
      );
      print(
        opts.json === true,
        list.map((u) => ({
          id: u.id,
          email: u.email,
          role: u.role,
          disabled_at: u.disabledAt,
          last_login_at: u.lastLoginAt,
        })),
        list.map((u) => `${u.id}\t${u.email}\t${u.role}${u.disabledAt === null ? '' : '\tdisabled'}`).join('\n') ||
          'no users',
      );
    });

  users
    .command('disable')
    .description('disable a user: their sessions and API keys stop working at once')
    .argument('<email>')
    .action(async (email: string) => {
      const user = await withDatabase(config(), (database) =>
        new UserService(database.db, new AuditService(database.db)).disableUser(CLI_ACTOR, email),
      );
      process.stdout.write(`disabled ${user.email}\n`);
    });

  users
    .command('reset-password')
    .description('set a new password (from stdin with --password-stdin) or generate and print one')
    .argument('<email>')
    .option('--password-stdin', 'read the new password from standard input')
    .action(async (email: string, opts: { passwordStdin?: boolean }) => {
      const given = opts.passwordStdin === true ? await readStdin() : undefined;
      const result = await withDatabase(config(), (database) =>
        new UserService(database.db, new AuditService(database.db)).resetPassword(CLI_ACTOR, email, given),
      );
      process.stdout.write(
        given === undefined ? `new password (shown once): ${result.password}\n` : `password of ${email} changed\n`,
      );
    });

  const keys = program.command('keys').description('manage API keys');
  keys
    .command('create')
    .description('create an API key; the key is printed once')
    .requiredOption('--name <name>', 'what the key is for')
    .requiredOption('--scopes <list>', `comma-separated: ${SCOPES.join(', ')}`)
    .requiredOption('--user <email>', 'owner of the key')
    .option('--expires-in <duration>', 'e.g. 30d, 12h, 3600s (default: never)')
    .option('--json', 'print JSON')
    .action(async (opts: { name: string; scopes: string; user: string; expiresIn?: string; json?: boolean }) => {
      const scopes = parseScopes(opts.scopes);
      let expiresInS: number | undefined;
      if (opts.expiresIn !== undefined) {
        const days = /^(\d+)d$/.exec(opts.expiresIn);
        const ms = days?.[1] !== undefined ? Number(days[1]) * 86_400_000 : parseDuration(opts.expiresIn);
        if (ms === undefined || ms < 60_000) {
          throw new CliExit(
            EXIT_CONFIG,
            `--expires-in must be a duration of at least 1 minute (e.g. 30d, 12h), got "${opts.expiresIn}"`,
          );
        }
        expiresInS = Math.round(ms / 1000);
      }
      const created = await withDatabase(config(), async (database) => {
        const audit = new AuditService(database.db);
        const owner = await new UserService(database.db, audit).findByEmail(opts.user);
        return new ApiKeyService(database.db, audit).create(
          CLI_ACTOR,
          { userId: owner.id },
          { name: opts.name, scopes, expiresInS },
        );
      });
      print(
        opts.json === true,
        {
          id: created.record.id,
          key: created.key,
          scopes: created.record.scopes,
          expires_at: created.record.expiresAt,
        },
        `key (shown once): ${created.key}\nid ${created.record.id}, scopes ${created.record.scopes.join(',')}`,
      );
    });
}
