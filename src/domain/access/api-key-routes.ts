/** HTTP edge of API keys: create (the key is shown once), list, revoke, usage. */
import type { FastifyInstance } from 'fastify';
import type { ApiKey, ApiKeyService } from './api-key-service.js';
import type { ApiKeyUsageRecorder } from './api-key-usage.js';
import { actorOf, SCOPES, type Scope } from './permissions.js';
import { principalOf } from './routes.js';
import { errorRef, idParams } from '../../http/schemas.js';

const keySchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    user_id: { type: 'integer' },
    name: { type: 'string' },
    prefix: { type: 'string' },
    scopes: { type: 'array', items: { type: 'string' } },
    created_at: { type: 'string', format: 'date-time' },
    expires_at: { type: ['string', 'null'], format: 'date-time' },
    revoked_at: { type: ['string', 'null'], format: 'date-time' },
    last_used_at: { type: ['string', 'null'], format: 'date-time' },
  },
} as const;

function shapeKey(key: ApiKey): Record<string, unknown> {
  return {
    id: key.id,
    user_id: key.userId,
    name: key.name,
    prefix: key.prefix,
    scopes: key.scopes,
    created_at: key.createdAt.toISOString(),
    expires_at: key.expiresAt?.toISOString() ?? null,
    revoked_at: key.revokedAt?.toISOString() ?? null,
    last_used_at: key.lastUsedAt?.toISOString() ?? null,
  };
}

export function registerApiKeyRoutes(app: FastifyInstance, keys: ApiKeyService, usage: ApiKeyUsageRecorder): void {
  /** Admins see and manage every key; everyone else only their own. */
  const ownerScope = (permissions: ReadonlySet<string>, userId: number): { userId?: number } =>
    permissions.has('admin') ? {} : { userId };

  app.post<{ Body: { name: string; scopes: Scope[]; expires_in_s?: number; expires_at?: string } }>(
    '/api/v1/api-keys',
    {
      config: { permission: 'authenticated' },
      schema: {
        tags: ['access'],
        summary: 'Create an API key for yourself; the full key is in this response only',
        body: {
          type: 'object',
          required: ['name', 'scopes'],
          additionalProperties: false,
          properties: {
            name: { type: 'string', maxLength: 1000 },
            scopes: { type: 'array', items: { type: 'string', enum: [...SCOPES] }, minItems: 1, uniqueItems: true },
            expires_in_s: { type: 'integer', minimum: 60 },
            expires_at: { type: 'string', format: 'date-time' },
          },
        },
        response: {
          201: { type: 'object', properties: { key: { type: 'string' }, api_key: keySchema } },
          400: errorRef,
        },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const created = await keys.create(
        actorOf(principal, request.ip),
        { userId: principal.userId },
        {
          name: request.body.name,
          scopes: request.body.scopes,
          expiresInS: request.body.expires_in_s,
          expiresAt: request.body.expires_at,
        },
      );
      return reply.status(201).send({ key: created.key, api_key: shapeKey(created.record) });
    },
  );

  app.get<{ Querystring: { all?: boolean } }>(
    '/api/v1/api-keys',
    {
      config: { permission: 'authenticated' },
      schema: {
        tags: ['access'],
        summary: 'List your API keys (admins: ?all=true for every key)',
        querystring: { type: 'object', additionalProperties: false, properties: { all: { type: 'boolean' } } },
        response: { 200: { type: 'object', properties: { api_keys: { type: 'array', items: keySchema } } } },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const all = request.query.all === true && principal.permissions.has('admin');
      const list = await keys.list(all ? {} : { userId: principal.userId });
      return { api_keys: list.map(shapeKey) };
    },
  );

  app.delete<{ Params: { id: number } }>(
    '/api/v1/api-keys/:id',
    {
      config: { permission: 'authenticated' },
      schema: {
        tags: ['access'],
        summary: 'Revoke an API key (takes effect within 1 s on every instance)',
        params: idParams,
        response: { 200: { type: 'object', properties: { api_key: keySchema } }, 404: errorRef },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const revoked = await keys.revoke(
        actorOf(principal, request.ip),
        request.params.id,
        ownerScope(principal.permissions, principal.userId),
      );
      return { api_key: shapeKey(revoked) };
    },
  );

  app.get<{ Params: { id: number }; Querystring: { hours: number } }>(
    '/api/v1/api-keys/:id/usage',
    {
      config: { permission: 'authenticated' },
      schema: {
        tags: ['access'],
        summary: 'Requests per minute of one key by route and status class, with total and p95 latency',
        params: idParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { hours: { type: 'integer', minimum: 1, maximum: 744, default: 24 } },
        },
        response: { 200: { type: 'object', additionalProperties: true }, 404: errorRef },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const key = await keys.get(request.params.id, ownerScope(principal.permissions, principal.userId));
      return { api_key_id: key.id, hours: request.query.hours, ...(await usage.usage(key.id, request.query.hours)) };
    },
  );
}
