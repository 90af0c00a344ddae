import { describe, expect, it } from 'vitest';
import { isLockConflict, isTransactionRollback, withTransientRetry } from '../../db/client.js';
import { classifyJobError } from '../../lib/cron/errors.js';
import { NotImplementedError } from '../../lib/cron/types.js';
import { MailError } from '../../lib/mail/transport.js';

const pg = (code: string, message = 'x') => Object.assign(new Error(message), { code });
const wrapped = (cause: unknown) => Object.assign(new Error('Failed query: delete from users where id = $1\nparams: 7'), { cause });

describe('classifyJobError (one reading of a failure for every job)', () => {
  it("an item refused by the database: database_error, the driver's message, never the statement", () => {
    expect(classifyJobError(wrapped(pg('23503', 'update or delete violates foreign key')), { itemCode: 'deletion_failed' })).toEqual({
      kind: 'item',
      code: 'database_error',
      message: 'update or delete violates foreign key',
    });
  });
  it('an item failing on one of our errors keeps its code (an SMTP refusal)', () => {
    const e = new MailError('smtp_temporary', '451 try again later', false);
    expect(classifyJobError(e, { itemCode: 'deletion_failed' })).toEqual({
      kind: 'item',
      code: 'smtp_temporary',
      message: '451 try again later',
    });
  });
  it("a bug or a lost connection in an item: the item's own code, hosts and ports removed", () => {
    expect(classifyJobError(new Error('simulated crash after invoices'), { itemCode: 'deletion_failed' })).toEqual({
      kind: 'item',
      code: 'deletion_failed',
      message: 'simulated crash after invoices',
    });
    const lost = wrapped(pg('ECONNRESET', 'read ECONNRESET 10.0.0.5:5432'));
    expect(classifyJobError(lost, { itemCode: 'part_failed' })).toEqual({
      kind: 'item',
      code: 'part_failed',
      message: 'read ECONNRESET [address]',
    });
  });
  it("the run itself: publicError's codes", () => {
    expect(classifyJobError(wrapped(pg('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432')))).toEqual({
      kind: 'run',
      code: 'connection_error',
      message: 'connect ECONNREFUSED [address]',
    });
    expect(classifyJobError(new NotImplementedError('x'))).toEqual({
      kind: 'run',
      code: 'not_implemented',
      message: 'x is not implemented yet',
    });
    expect(classifyJobError(new TypeError('boom')).code).toBe('job_failed');
  });
});

describe('withTransientRetry', () => {
  const failing = (errors: unknown[]) => {
    let calls = 0;
    return {
      fn: async () => {
        calls++;
        const e = errors.shift();
        if (e) throw e;
        return 'done';
      },
      calls: () => calls,
    };
  };
  it('runs a deadlock or serialization victim again, and answers its result', async () => {
    const f = failing([wrapped(pg('40P01')), pg('40001')]);
    await expect(withTransientRetry(f.fn, { backoffMs: 1 })).resolves.toBe('done');
    expect(f.calls()).toBe(3);
  });
  it('gives up after `attempts` tries with the last error', async () => {
    const last = pg('40P01', 'deadlock detected');
    const f = failing([pg('40P01'), last, pg('40P01')]);
    await expect(withTransientRetry(f.fn, { attempts: 2, backoffMs: 1 })).rejects.toBe(last);
    expect(f.calls()).toBe(2);
  });
  it('does not retry by default what may have committed or will fail again (lost connection, lock timeout, constraint)', async () => {
    for (const err of [pg('57P01'), pg('08006'), pg('55P03'), pg('23505'), new TypeError('boom')]) {
      const f = failing([err]);
      await expect(withTransientRetry(f.fn, { backoffMs: 1 })).rejects.toBe(err);
      expect(f.calls()).toBe(1);
    }
  });
  it('retries what `retryOn` accepts', async () => {
    const f = failing([pg('08006')]);
    await expect(withTransientRetry(f.fn, { retryOn: () => true, backoffMs: 1 })).resolves.toBe('done');
  });
  it('lock conflicts: a lock wait that ran out, or a class-40 rollback', () => {
    expect([pg('55P03'), wrapped(pg('40P01')), pg('40001')].map(isLockConflict)).toEqual([true, true, true]);
    expect([pg('57P01'), pg('23505'), new Error('x')].map(isLockConflict)).toEqual([false, false, false]);
    expect(isTransactionRollback(pg('55P03'))).toBe(false);
  });
});
