/** HTTP edge of Prometheus scrape targets: register, list, show with runs, change, delete, scrape now. */
import type { FastifyInstance } from 'fastify';
import { errorRef, idParams } from '../../http/schemas.js';
import { actorOf } from '../access/permissions.js';
import { MAX_PATTERNS, MAX_PATTERN_LENGTH, MAX_SAMPLES_PER_SCRAPE } from './scrape-filter.js';
import {
  SCRAPE_RUNS_SHOWN,
  scrapeTargetConfiguration,
  type ScrapeRun,
  type ScrapeService,
  type ScrapeTarget,
  type ScrapeTargetInput,
  type ScrapeTargetPatch,
} from './scrape-service.js';

const nullableString = { type: ['string', 'null'] } as const;
const nullableTime = { type: ['string', 'null'], format: 'date-time' } as const;
const patternsSchema = {
  type: 'array',
  items: { type: 'string' },
  description:
    `Globs over Prometheus metric names (\`*\` any run of characters, \`?\` one character), at most ` +
    `${MAX_PATTERNS} of at most ${MAX_PATTERN_LENGTH} characters. A sample matches when its name or its ` +
    "family's name does (`x` selects a histogram's `x_bucket`, `x_sum`, `x_count`).",
} as const;

const targetSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    name: { type: 'string' },
    url: { type: 'string' },
    host_name: { type: 'string' },
    interval_s: { type: 'integer' },
    timeout_ms: { type: 'integer' },
    include: { type: 'array', items: { type: 'string' } },
    exclude: { type: 'array', items: { type: 'string' } },
    enabled: { type: 'boolean' },
    created_at: { type: 'string', format: 'date-time' },
    updated_at: { type: 'string', format: 'date-time' },
    deleted_at: nullableTime,
    next_scrape_at: { type: 'string', format: 'date-time' },
    last_scrape_at: nullableTime,
    last_status: { type: ['string', 'null'], description: 'ok or failed; null before the first scrape' },
    last_error: nullableString,
    last_notes: nullableString,
    last_duration_ms: { type: ['number', 'null'] },
    last_samples: { type: ['integer', 'null'] },
    consecutive_failures: { type: 'integer' },
  },
} as const;

const runSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    ts: { type: 'string', format: 'date-time' },
    status: { type: 'string', enum: ['ok', 'failed'] },
    duration_ms: { type: 'number' },
    samples: { type: 'integer' },
    error: nullableString,
    notes: nullableString,
  },
} as const;

const inputProperties = {
  name: { type: 'string', description: '1–100 characters, unique among live targets ignoring letter case' },
  url: { type: 'string', description: 'Absolute http(s) URL of a text exposition, e.g. http://10.0.0.5:9100/metrics' },
  interval_s: { type: 'integer', description: 'Seconds between scrapes, 5–86400 (default 30)' },
  timeout_ms: {
    type: 'integer',
    description: 'Milliseconds a scrape may take, 100–60000 and less than the interval (default 5000)',
  },
  include: patternsSchema,
  exclude: { ...patternsSchema, description: 'Like include; exclude wins over include' },
  enabled: { type: 'boolean', description: 'Scraped on schedule when true (default)' },
} as const;

function shapeTarget(target: ScrapeTarget): Record<string, unknown> {
  return {
    ...scrapeTargetConfiguration(target),
    created_at: target.createdAt.toISOString(),
    updated_at: target.updatedAt.toISOString(),
    deleted_at: target.deletedAt?.toISOString() ?? null,
    next_scrape_at: target.nextScrapeAt.toISOString(),
    last_scrape_at: target.lastScrapeAt?.toISOString() ?? null,
    last_status: target.lastStatus,
    last_error: target.lastError,
    last_notes: target.lastNotes,
    last_duration_ms: target.lastDurationMs,
    last_samples: target.lastSamples,
    consecutive_failures: target.consecutiveFailures,
  };
}

function shapeRun(run: ScrapeRun): Record<string, unknown> {
  return {
    id: run.id,
    ts: run.ts.toISOString(),
    status: run.status,
    duration_ms: run.durationMs,
    samples: run.samples,
    error: run.error,
    notes: run.notes,
  };
}

export function registerScrapeRoutes(app: FastifyInstance, scrapes: ScrapeService): void {
  app.post<{ Body: ScrapeTargetInput }>(
    '/api/v1/scrape-targets',
    {
      config: { permission: 'operate' },
      schema: {
        tags: ['metrics'],
        summary: 'Register a Prometheus scrape target (scraped at once, then every interval_s)',
        description:
          `Samples are stored under host_name (default the URL's host:port) at the scrape time, at most ` +
          `${MAX_SAMPLES_PER_SCRAPE} per scrape (the rest are dropped and named in the run's notes). Prometheus ` +
          'names are mapped to Warden names: lower-cased, other characters than [a-z0-9_.] become _, and an `m` ' +
          'is put in front of a name not starting with a letter.',
        body: {
          type: 'object',
          required: ['name', 'url'],
          additionalProperties: false,
          properties: {
            ...inputProperties,
            host_name: {
              type: 'string',
              description: "Host the samples are stored under (default the URL's host:port)",
            },
          },
        },
        response: {
          201: { type: 'object', properties: { scrape_target: targetSchema } },
          400: errorRef,
          409: errorRef,
        },
      },
    },
    async (request, reply) => {
      const target = await scrapes.create(actorOf(request.principal, request.ip), request.body);
      return reply.status(201).send({ scrape_target: shapeTarget(target) });
    },
  );

  app.get(
    '/api/v1/scrape-targets',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['metrics'],
        summary: 'List scrape targets with the outcome of their last scrape',
        response: { 200: { type: 'object', properties: { scrape_targets: { type: 'array', items: targetSchema } } } },
      },
    },
    async () => ({ scrape_targets: (await scrapes.list()).map(shapeTarget) }),
  );

  app.get<{ Params: { id: number } }>(
    '/api/v1/scrape-targets/:id',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['metrics'],
        summary: `One scrape target with its last ${SCRAPE_RUNS_SHOWN} scrapes, newest first`,
        params: idParams,
        response: {
          200: {
            type: 'object',
            properties: { scrape_target: targetSchema, runs: { type: 'array', items: runSchema } },
          },
          404: errorRef,
        },
      },
    },
    async (request) => {
      const target = await scrapes.get(request.params.id);
      const runs = await scrapes.runs(target.id);
      return { scrape_target: shapeTarget(target), runs: runs.map(shapeRun) };
    },
  );

  app.patch<{ Params: { id: number }; Body: ScrapeTargetPatch }>(
    '/api/v1/scrape-targets/:id',
    {
      config: { permission: 'operate' },
      schema: {
        tags: ['metrics'],
        summary: 'Change a scrape target (it is then scraped at the next poll)',
        description: 'Only the fields given change. `host_name: null` derives the host from the URL again.',
        params: idParams,
        body: {
          type: 'object',
          additionalProperties: false,
          minProperties: 1,
          properties: {
            ...inputProperties,
            host_name: { type: ['string', 'null'], description: 'null: derive it from the URL again' },
          },
        },
        response: {
          200: { type: 'object', properties: { scrape_target: targetSchema } },
          400: errorRef,
          404: errorRef,
          409: errorRef,
        },
      },
    },
    async (request) => {
      const target = await scrapes.update(actorOf(request.principal, request.ip), request.params.id, request.body);
      return { scrape_target: shapeTarget(target) };
    },
  );

  app.delete<{ Params: { id: number } }>(
    '/api/v1/scrape-targets/:id',
    {
      config: { permission: 'operate' },
      schema: {
        tags: ['metrics'],
        summary: 'Delete a scrape target (soft: no longer scraped or listed; its samples stay)',
        params: idParams,
        response: { 200: { type: 'object', properties: { scrape_target: targetSchema } }, 404: errorRef },
      },
    },
    async (request) => {
      const target = await scrapes.delete(actorOf(request.principal, request.ip), request.params.id);
      return { scrape_target: shapeTarget(target) };
    },
  );

  app.post<{ Params: { id: number } }>(
    '/api/v1/scrape-targets/:id/scrape',
    {
      config: { permission: 'operate' },
      schema: {
        tags: ['metrics'],
        summary: 'Scrape a target now (also a disabled one) and return the outcome',
        description: 'Answers 200 whether the scrape succeeded or not: `run.status` and `run.error` tell.',
        params: idParams,
        response: {
          200: { type: 'object', properties: { run: runSchema, scrape_target: targetSchema } },
          404: errorRef,
        },
      },
    },
    async (request) => {
      const { target, run } = await scrapes.scrapeNow(request.params.id);
      return { run: shapeRun(run), scrape_target: shapeTarget(target) };
    },
  );
}
