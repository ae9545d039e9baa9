/** HTTP edge of metric ingest: `POST /api/v1/metrics`. */
import type { FastifyInstance } from 'fastify';
import { errorRef } from '../../http/schemas.js';
import type { IngestService } from './ingest-service.js';
import { MAX_SAMPLES_PER_REQUEST } from './types.js';

export function registerIngestRoutes(app: FastifyInstance, ingest: IngestService): void {
  app.post<{ Body: { samples: unknown[]; interval_s?: number } }>(
    '/api/v1/metrics',
    {
      config: { permission: 'ingest' },
      schema: {
        tags: ['metrics'],
        summary: 'Ingest a batch of metric samples (hosts and series are created on first sight)',
        description:
          `At most ${MAX_SAMPLES_PER_REQUEST} samples per request (413 above). Each sample is ` +
          '`{ host, metric, value, ts?, labels? }`: metric names match `[a-z][a-z0-9_.]*`, values are finite ' +
          'numbers, ts is epoch milliseconds or ISO-8601 (default: arrival time), at most 5 minutes in the ' +
          'future and not older than the raw retention. A batch with any invalid sample is rejected whole with ' +
          '400 listing the first 20 problems by index and field. When the answer is 202 the samples are ' +
          'committed; re-sent samples (same series and ts) count as duplicates and change nothing.',
        body: {
          type: 'object',
          required: ['samples'],
          additionalProperties: false,
          properties: {
            // Items are checked by the service, which reports every problem by index and field.
            samples: { type: 'array' },
            interval_s: {
              type: 'integer',
              minimum: 1,
              maximum: 86400,
              description: "The sender's collection interval; a host is stale after 3 of them",
            },
          },
        },
        response: {
          202: {
            type: 'object',
            properties: {
              received: { type: 'integer' },
              inserted: { type: 'integer' },
              duplicates: { type: 'integer' },
              series_created: { type: 'integer' },
            },
          },
          400: errorRef,
          413: errorRef,
        },
      },
    },
    async (request, reply) => {
      const result = await ingest.ingestUntrusted(request.body.samples, { intervalS: request.body.interval_s });
      return reply.status(202).send({
        received: result.received,
        inserted: result.inserted,
        duplicates: result.duplicates,
        series_created: result.seriesCreated,
      });
    },
  );
}
