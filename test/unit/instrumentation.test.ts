import { describe, expect, it } from 'vitest';
import { normalizeStatement, sqlStateOf } from '../../src/db/instrumentation.js';

describe('normalizeStatement', () => {
  it('removes literal values and keeps the statement shape', () => {
    expect(normalizeStatement(`select * from users where email = 'a@b.c' and id = 42`)).toBe(
      'select * from users where email = ? and id = ?',
    );
    expect(normalizeStatement(`SELECT  *\n FROM t WHERE name = 'it''s'`)).toBe('select * from t where name = ?');
  });

  it('collapses placeholder and literal lists so batches of any size share one shape', () => {
    const three = normalizeStatement('select * from t where id in ($1, $2, $3)');
    const five = normalizeStatement('select * from t where id in ($1, $2, $3, $4, $5)');
    expect(three).toBe(five);
    expect(normalizeStatement('select * from t where id in (1, 2, 3)')).toBe('select * from t where id in (?)');
  });

  it('keeps identifiers that contain digits', () => {
    expect(normalizeStatement('select col1 from "t2" where x = $1')).toBe('select col1 from "t2" where x = $n');
  });

  it('bounds the length of a shape', () => {
    const long = `select ${Array.from({ length: 200 }, (_, i) => `c${i}`).join(', ')} from t`;
    expect(normalizeStatement(long).length).toBeLessThanOrEqual(241);
  });
});

describe('sqlStateOf', () => {
  it('returns the SQLSTATE of a database error and "connection" otherwise', () => {
    expect(sqlStateOf({ code: '23505' })).toBe('23505');
    expect(sqlStateOf({ code: 'ECONNREFUSED' })).toBe('connection');
    expect(sqlStateOf(new Error('boom'))).toBe('connection');
  });
});
