/** JSON-schema pieces shared by route definitions. */

/** Reference to the error body registered by `http/errors.ts` (`{ error: { code, message, field? } }`). */
export const errorRef = { $ref: 'Error#' } as const;

/** `:id` path parameter: a positive integer. */
export const idParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'integer', minimum: 1 } },
} as const;
