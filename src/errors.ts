/**
 * Typed errors thrown by services. The HTTP edge maps each code to a status
 * (see `http/errors.ts`); the CLI prints the message. Services never import HTTP types.
 */
export type ErrorCode =
  | 'not_found'
  | 'conflict'
  | 'validation'
  | 'forbidden'
  | 'unauthorized'
  | 'unavailable'
  | 'rate_limited'
  | 'payload_too_large';

export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly field?: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'AppError';
  }
}

export class NotFoundError extends AppError {
  constructor(message: string) {
    super('not_found', message);
  }
}

export class ConflictError extends AppError {
  constructor(message: string, field?: string) {
    super('conflict', message, field);
  }
}

/** Bad input; `field` names the offending field (dotted path for nested ones). */
export class ValidationError extends AppError {
  constructor(field: string, message: string) {
    super('validation', message, field);
  }
}

/** One problem of a rejected batch: the item's index, the field, what was expected. */
export interface BatchProblem {
  readonly index: number;
  readonly field: string;
  readonly message: string;
}

/**
 * A batch was rejected whole because some items are invalid; `problems` lists the first
 * of them (by index and field) and `invalidCount` how many items were invalid in all.
 */
export class BatchValidationError extends ValidationError {
  constructor(
    field: string,
    message: string,
    readonly problems: readonly BatchProblem[],
    readonly invalidCount: number,
  ) {
    super(field, message);
  }
}

/** The request carries more than the accepted amount (413). */
export class PayloadTooLargeError extends AppError {
  constructor(message: string, field?: string) {
    super('payload_too_large', message, field);
  }
}

export class ForbiddenError extends AppError {
  constructor(message: string) {
    super('forbidden', message);
  }
}

/** A dependency (database, peer) is not available right now; retrying later may work. */
export class UnavailableError extends AppError {
  constructor(message: string, options?: ErrorOptions) {
    super('unavailable', message, undefined, options);
  }
}

/** Missing, invalid, expired or revoked credentials. */
export class UnauthorizedError extends AppError {
  constructor(message = 'Authentication required: log in or send Authorization: Bearer <api key>') {
    super('unauthorized', message);
  }
}

/** Too many requests or attempts; retry after `retryAfterS` seconds. */
export class RateLimitedError extends AppError {
  constructor(
    message: string,
    readonly retryAfterS: number,
  ) {
    super('rate_limited', message);
  }
}
