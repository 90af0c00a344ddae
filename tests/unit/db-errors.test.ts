import { describe, expect, it } from 'vitest';
import { isTransientDbError, pgErrorCode } from '../../db/client.js';

const pg = (code: string, message = 'x') => Object.assign(new Error(message), { code });
const wrapped = (cause: unknown) => Object.assign(new Error('Failed query: insert into …'), { cause });

describe('database error classification', () => {
  it("finds the SQLSTATE under drizzle's wrapper", () => {
    expect(pgErrorCode(wrapped(pg('23505')))).toBe('23505');
    expect(pgErrorCode(new TypeError('boom'))).toBeUndefined();
    expect(pgErrorCode(pg('ECONNRESET'))).toBeUndefined();
  });

  it.each([
    ['deadlock', wrapped(pg('40P01'))],
    ['serialization', pg('40001')],
    ['connection failure', pg('08006')],
    ['admin shutdown', wrapped(pg('57P01'))],
    ['lock timeout', pg('55P03')],
    ['out of memory', pg('53200')],
    ['socket reset', wrapped(pg('ECONNRESET'))],
    ['connection lost', new Error('Connection terminated unexpectedly')],
  ])('%s is transient: the message is not to blame', (_, err) => expect(isTransientDbError(err)).toBe(true));

  it.each([
    ['unique violation', wrapped(pg('23505'))],
    ['invalid byte sequence', pg('22021')],
    ['NUL in text', pg('22P05')],
    ['index row too large', pg('54000')],
    ['a bug on odd input', new TypeError("Cannot read properties of undefined (reading 'x')")],
  ])('%s is not transient: a retry would fail the same way', (_, err) => expect(isTransientDbError(err)).toBe(false));
});
