/**
 * One error handler for the whole API: every error leaves as
 * `{ error: { code, message, field? } }` with a fitting status, and no stack trace.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, BatchValidationError, RateLimitedError, type BatchProblem, type ErrorCode } from '../errors.js';

export interface ErrorBody {
  error: {
    code: string;
    message: string;
    field?: string;
    problems?: readonly BatchProblem[];
    invalid_count?: number;
  };
}

const STATUS_BY_CODE: Record<ErrorCode, number> = {
  not_found: 404,
  conflict: 409,
  validation: 400,
  forbidden: 403,
  unauthorized: 401,
  unavailable: 503,
  rate_limited: 429,
  payload_too_large: 413,
};

/** JSON schema of the error body, for the OpenAPI document. */
export const errorSchema = {
  $id: 'Error',
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: {
        code: { type: 'string' },
        message: { type: 'string' },
        field: { type: 'string' },
        problems: {
          type: 'array',
          description: 'For a rejected batch: its first problems, by item index and field',
          items: {
            type: 'object',
            properties: { index: { type: 'integer' }, field: { type: 'string' }, message: { type: 'string' } },
          },
        },
        invalid_count: { type: 'integer', description: 'For a rejected batch: how many items were invalid' },
      },
    },
  },
} as const;

function body(code: string, message: string, field?: string): ErrorBody {
  return field === undefined ? { error: { code, message } } : { error: { code, message, field } };
}

interface ValidationIssue {
  instancePath?: string;
  message?: string;
  keyword?: string;
  params?: Record<string, unknown>;
}

/** Turns Fastify/Ajv validation output into a field name and a readable message. */
function describeValidation(
  issues: readonly ValidationIssue[],
  context: string | undefined,
): { field: string; message: string } {
  const first = issues[0] ?? {};
  const location = context ?? 'body';
  let field = (first.instancePath ?? '').replace(/^\//, '').replaceAll('/', '.');
  const missing = first.params?.missingProperty;
  const extra = first.params?.additionalProperty;
  if (typeof missing === 'string') {
    field = field === '' ? missing : `${field}.${missing}`;
    return { field, message: `${location}.${field} is required` };
  }
  if (typeof extra === 'string') {
    field = field === '' ? extra : `${field}.${extra}`;
    return { field, message: `${location}.${field} is not an accepted field` };
  }
  if (field === '') {
    field = location;
  }
  const allowed = first.params?.allowedValues;
  const detail = Array.isArray(allowed)
    ? `must be one of ${allowed.map((v) => JSON.stringify(v)).join(', ')}`
    : (first.message ?? 'is invalid');
  return { field, message: `${field === location ? location : `${location}.${field}`} ${detail}` };
}

const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  '57P01',
  '57P02',
  '57P03',
  '08000',
  '08001',
  '08003',
  '08006',
]);

/** A connection-level database failure (server down, restarting, connection lost), not a bad query. */
function isDatabaseUnreachable(error: Error): boolean {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && UNREACHABLE_CODES.has(code)) {
    return true;
  }
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(
    error.message,
  );
}

export function mapError(error: FastifyError | Error): { status: number; body: ErrorBody } {
  if (error instanceof BatchValidationError) {
    const payload = body(error.code, error.message, error.field);
    payload.error.problems = error.problems;
    payload.error.invalid_count = error.invalidCount;
    return { status: 400, body: payload };
  }
  if (error instanceof AppError) {
    return { status: STATUS_BY_CODE[error.code], body: body(error.code, error.message, error.field) };
  }
  const fastifyError = error as FastifyError & { validation?: ValidationIssue[]; validationContext?: string };
  if (Array.isArray(fastifyError.validation)) {
    const { field, message } = describeValidation(fastifyError.validation, fastifyError.validationContext);
    return { status: 400, body: body('validation', message, field) };
  }
  switch (fastifyError.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, body: body('payload_too_large', 'The request body is larger than the accepted limit') };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return {
        status: 415,
        body: body('unsupported_media_type', 'Content-Type must be application/json', 'content-type'),
      };
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return { status: 400, body: body('invalid_json', 'The body is not valid JSON') };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { status: 400, body: body('invalid_json', 'The body is empty; send a JSON document or no Content-Type') };
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return { status: 400, body: body('invalid_request', 'Content-Length does not match the body') };
    default:
      break;
  }
  if (isDatabaseUnreachable(error)) {
    return {
      status: 503,
      body: body('unavailable', 'The database is not reachable right now; the request can be retried shortly'),
    };
  }
  if ((error as { code?: unknown }).code === '57014') {
    return {
      status: 503,
      body: body('unavailable', 'The database did not answer within the statement timeout; retry later'),
    };
  }
  if (fastifyError.statusCode === 400 && error instanceof SyntaxError) {
    return { status: 400, body: body('invalid_json', `The body is not valid JSON: ${error.message}`) };
  }
  const status = fastifyError.statusCode;
  if (status !== undefined && status >= 400 && status < 500) {
    return { status, body: body('bad_request', error.message) };
  }
  return { status: 500, body: body('internal', 'Internal error; it has been logged with the request id') };
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const { status, body: payload } = mapError(error);
    if (error instanceof RateLimitedError) {
      void reply.header('retry-after', String(error.retryAfterS));
    }
    if (status >= 500) {
      request.log.error({ err: error }, 'request failed');
    } else {
      request.log.info({ code: payload.error.code, field: payload.error.field, status }, 'request rejected');
    }
    void reply.status(status).send(payload);
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.status(404).send(body('not_found', `No route for ${request.method} ${request.url.split('?')[0] ?? ''}`));
  });
}
