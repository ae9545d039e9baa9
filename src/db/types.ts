/**
 * Result type parsers shared by both engines, so a repository sees the same JS types
 * on PGlite and on PostgreSQL.
 */
import pg from 'pg';

export const OID = { int8: 20, numeric: 1700 } as const;

function toNumber(value: string): number {
  return Number(value);
}

/** Parsers for PGlite's `parsers` option (oid → parser). */
export const pgliteParsers: Record<number, (value: string) => unknown> = {
  [OID.int8]: toNumber,
  [OID.numeric]: toNumber,
};

/** node-postgres `types` option with the same overrides; everything else uses pg's defaults. */
export const pgTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary'): (value: string) => unknown {
    if (format !== 'binary' && (oid === OID.int8 || oid === OID.numeric)) {
      return toNumber;
    }
    return pg.types.getTypeParser(oid, format ?? 'text') as (value: string) => unknown;
  },
};
