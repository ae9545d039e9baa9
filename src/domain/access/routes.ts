/** HTTP edge of people and access: login sessions, users, audit log. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { SESSION_COOKIE, parseCookies } from '../../http/auth.js';
import { ForbiddenError, UnauthorizedError, ValidationError } from '../../errors.js';
import type { AuditService } from './audit-service.js';
import { actorOf, ROLES, type Principal, type Role } from './permissions.js';
import type { SessionService } from './session-service.js';
import type { User, UserService } from './user-service.js';
import { errorRef, idParams } from '../../http/schemas.js';

export const userSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    email: { type: 'string' },
    role: { type: 'string', enum: [...ROLES] },
    disabled_at: { type: ['string', 'null'], format: 'date-time' },
    created_at: { type: 'string', format: 'date-time' },
    last_login_at: { type: ['string', 'null'], format: 'date-time' },
  },
} as const;

export function shapeUser(user: User): Record<string, unknown> {
  return {
    id: user.id,
    email: user.email,
    role: user.role,
    disabled_at: user.disabledAt?.toISOString() ?? null,
    created_at: user.createdAt.toISOString(),
    last_login_at: user.lastLoginAt?.toISOString() ?? null,
  };
}

export interface AccessRouteOptions {
  readonly users: UserService;
  readonly sessions: SessionService;
  readonly audit: AuditService;
  readonly cookieSecure: boolean;
  readonly sessionTtlMs: number;
}

/** The authenticated principal; routes that are not public always have one. */
export function principalOf(request: FastifyRequest): Principal {
  if (request.principal === undefined) {
    throw new UnauthorizedError();
  }
  return request.principal;
}

function sessionCookie(value: string, maxAgeS: number, secure: boolean): string {
  const parts = [
    `${SESSION_COOKIE}=${encodeURIComponent(value)}`,
    'Path=/',
    'HttpOnly',
    'SameSite=Lax',
    `Max-Age=${maxAgeS}`,
  ];
  if (secure) {
    parts.push('Secure');
  }
  return parts.join('; ');
}

function isTls(request: FastifyRequest): boolean {
  return request.protocol === 'https';
}

export function registerAccessRoutes(app: FastifyInstance, options: AccessRouteOptions): void {
  const { users, sessions, audit } = options;

  app.post<{ Body: { email: string; password: string } }>(
    '/api/v1/auth/login',
    {
      config: { permission: 'public' },
      schema: {
        tags: ['access'],
        summary: 'Log in with e-mail and password; sets an httpOnly session cookie',
        body: {
          type: 'object',
          required: ['email', 'password'],
          additionalProperties: false,
          properties: { email: { type: 'string', maxLength: 1024 }, password: { type: 'string', maxLength: 1024 } },
        },
        response: { 200: { type: 'object', properties: { user: userSchema } }, 401: errorRef, 429: errorRef },
      },
    },
    async (request, reply) => {
      const result = await sessions.login({
        email: request.body.email,
        password: request.body.password,
        ip: request.ip,
        userAgent: request.headers['user-agent'] ?? null,
      });
      const maxAgeS = Math.floor(options.sessionTtlMs / 1000);
      void reply.header('set-cookie', sessionCookie(result.token, maxAgeS, options.cookieSecure || isTls(request)));
      return { user: shapeUser(result.user) };
    },
  );

  app.post(
    '/api/v1/auth/logout',
    {
      config: { permission: 'authenticated' },
      schema: { tags: ['access'], summary: 'End the current session', response: { 204: { type: 'null' } } },
    },
    async (request, reply: FastifyReply) => {
      const token = parseCookies(request.headers.cookie).get(SESSION_COOKIE);
      if (token !== undefined) {
        await sessions.logout(token);
      }
      void reply.header('set-cookie', sessionCookie('', 0, options.cookieSecure || isTls(request)));
      return reply.status(204).send();
    },
  );

  app.get(
    '/api/v1/auth/me',
    {
      config: { permission: 'authenticated' },
      schema: {
        tags: ['access'],
        summary: 'Who am I: the user, and the API key when one is used',
        response: {
          200: {
            type: 'object',
            properties: {
              user: userSchema,
              via: { type: 'string', enum: ['session', 'api_key'] },
              api_key_id: { type: ['integer', 'null'] },
              scopes: { type: ['array', 'null'], items: { type: 'string' } },
              permissions: { type: 'array', items: { type: 'string' } },
            },
          },
        },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const user = await users.getUser(principal.userId);
      return {
        user: shapeUser(user),
        via: principal.kind === 'api_key' ? 'api_key' : 'session',
        api_key_id: principal.apiKeyId ?? null,
        scopes: principal.scopes ?? null,
        permissions: [...principal.permissions].filter((p) => p !== 'public'),
      };
    },
  );

  app.get(
    '/api/v1/users',
    {
      config: { permission: 'admin' },
      schema: {
        tags: ['access'],
        summary: 'List users',
        response: { 200: { type: 'object', properties: { users: { type: 'array', items: userSchema } } } },
      },
    },
    async () => ({ users: (await users.listUsers()).map(shapeUser) }),
  );

  app.post<{ Body: { email: string; role: Role; password?: string } }>(
    '/api/v1/users',
    {
      config: { permission: 'admin' },
      schema: {
        tags: ['access'],
        summary: 'Create a user; without a password one is generated and returned once',
        body: {
          type: 'object',
          required: ['email', 'role'],
          additionalProperties: false,
          properties: {
            email: { type: 'string', maxLength: 1024 },
            role: { type: 'string', enum: [...ROLES] },
            password: { type: 'string', maxLength: 1024 },
          },
        },
        response: {
          201: {
            type: 'object',
            properties: { user: userSchema, generated_password: { type: ['string', 'null'] } },
          },
          400: errorRef,
          409: errorRef,
        },
      },
    },
    async (request, reply) => {
      const created = await users.createUser(actorOf(request.principal, request.ip), request.body);
      return reply
        .status(201)
        .send({ user: shapeUser(created.user), generated_password: created.generatedPassword ?? null });
    },
  );

  app.patch<{ Params: { id: number }; Body: { role?: Role; disabled?: boolean } }>(
    '/api/v1/users/:id',
    {
      config: { permission: 'admin' },
      schema: {
        tags: ['access'],
        summary: 'Change a user: role, or disable (ends their sessions and keys at once) / enable',
        params: idParams,
        body: {
          type: 'object',
          additionalProperties: false,
          minProperties: 1,
          properties: { role: { type: 'string', enum: [...ROLES] }, disabled: { type: 'boolean' } },
        },
        response: { 200: { type: 'object', properties: { user: userSchema } }, 400: errorRef, 404: errorRef },
      },
    },
    async (request) => {
      const actor = actorOf(request.principal, request.ip);
      let user = await users.getUser(request.params.id);
      if (request.body.role !== undefined) {
        user = await users.setRole(actor, user.id, request.body.role);
      }
      if (request.body.disabled === true) {
        if (user.id === principalOf(request).userId) {
          throw new ValidationError('disabled', 'You cannot disable your own account');
        }
        user = await users.disableUser(actor, user.email);
      } else if (request.body.disabled === false) {
        user = await users.enableUser(actor, user.email);
      }
      return { user: shapeUser(user) };
    },
  );

  app.post<{ Params: { id: number }; Body: { password?: string } | undefined }>(
    '/api/v1/users/:id/reset-password',
    {
      config: { permission: 'admin' },
      schema: {
        tags: ['access'],
        summary: "Set or generate a user's password; ends their sessions",
        params: idParams,
        body: {
          type: 'object',
          additionalProperties: false,
          properties: { password: { type: 'string', maxLength: 1024 } },
        },
        response: {
          200: { type: 'object', properties: { generated_password: { type: ['string', 'null'] } } },
          400: errorRef,
          404: errorRef,
        },
      },
    },
    async (request) => {
      const user = await users.getUser(request.params.id);
      const given = request.body?.password;
      const result = await users.resetPassword(actorOf(request.principal, request.ip), user.email, given);
      return { generated_password: given === undefined ? result.password : null };
    },
  );

  app.get<{
    Querystring: {
      entity_type?: string;
      entity_id?: string;
      actor?: string;
      from?: string;
      to?: string;
      cursor?: string;
      limit?: number;
    };
  }>(
    '/api/v1/audit',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['access'],
        summary: 'Audit log, newest first, with cursor pagination',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            entity_type: { type: 'string', maxLength: 200 },
            entity_id: { type: 'string', maxLength: 200 },
            actor: { type: 'string', maxLength: 300 },
            from: { type: 'string', format: 'date-time' },
            to: { type: 'string', format: 'date-time' },
            cursor: { type: 'string', maxLength: 200 },
            limit: { type: 'integer', minimum: 1, maximum: 200 },
          },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              entries: { type: 'array', items: { type: 'object', additionalProperties: true } },
              next_cursor: { type: ['string', 'null'] },
            },
          },
          400: errorRef,
        },
      },
    },
    async (request) => {
      const q = request.query;
      const page = await audit.list({
        entityType: q.entity_type,
        entityId: q.entity_id,
        actor: q.actor,
        from: q.from === undefined ? undefined : new Date(q.from),
        to: q.to === undefined ? undefined : new Date(q.to),
        cursor: q.cursor,
        limit: q.limit,
      });
      return {
        entries: page.entries.map((e) => ({
          id: e.id,
          ts: e.ts.toISOString(),
          actor_type: e.actorType,
          actor_id: e.actorId,
          actor_label: e.actorLabel,
          action: e.action,
          entity_type: e.entityType,
          entity_id: e.entityId,
          before: e.before,
          after: e.after,
          ip: e.ip,
        })),
        next_cursor: page.nextCursor,
      };
    },
  );
}

/** Admins may act on anyone's resources; others only on their own. */
export function assertOwnerOrAdmin(principal: Principal, ownerId: number): void {
  if (principal.userId !== ownerId && !principal.permissions.has('admin')) {
    throw new ForbiddenError('This belongs to another user; only an admin may act on it');
  }
}
