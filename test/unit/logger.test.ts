import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { redactUrl } from '../../src/config/index.js';
import { createLogger } from '../../src/logger.js';

describe('logging', () => {
  it('writes JSON lines and never the values of secret fields', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(chunk.toString());
        callback();
      },
    });
    const logger = createLogger({ level: 'info', format: 'auto' }, sink);
    logger.info(
      {
        password: 'hunter2-secret',
        user: { password: 'nested-secret', token: 'tok-123' },
        req: { headers: { authorization: 'Bearer wdn_x' } },
      },
      'login',
    );
    const output = lines.join('');
    const parsed = JSON.parse(output) as { msg: string; level: number };
    expect(parsed.msg).toBe('login');
    for (const secret of ['hunter2-secret', 'nested-secret', 'tok-123', 'wdn_x']) {
      expect(output).not.toContain(secret);
    }
  });

  it('redacts the password of a connection string', () => {
    expect(redactUrl('postgres://warden:s3cr3t@db.example:5432/warden?sslmode=require')).toBe(
      'postgres://warden:***@db.example:5432/warden?sslmode=require',
    );
    expect(redactUrl('not a url')).not.toContain('not a url');
  });
});
