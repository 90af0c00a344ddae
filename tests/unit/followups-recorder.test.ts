import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createSendRecorder } from '../../lib/jobs/followups/recorder.js';
import { isDeadlock } from '../../lib/jobs/followups/sql.js';

/** A write the test finishes by hand, to hold writes "in the database" as long as it wants. */
function controlledWriter() {
  const writes: { items: number[]; done: () => void; fail: (e: Error) => void }[] = [];
  const write = (items: number[]) => new Promise<void>((resolve, reject) => { writes.push({ items, done: resolve, fail: reject }); });
  return { writes, write };
}

describe('followups: accepted sends are recorded in small, bounded batches', () => {
  beforeEach(() => { vi.useFakeTimers(); });
  afterEach(() => { vi.useRealTimers(); });

  it('writes one statement per 20 accepted sends, and the rest on close', async () => {
    const batches: number[][] = [];
    const r = createSendRecorder<number>({
      flushSize: 20, flushAfterMs: 200, maxUnrecorded: 40,
      write: async (items) => { batches.push(items); }, onWriteError: () => { throw new Error('no error expected'); },
    });
    for (let i = 0; i < 45; i++) await r.add(i);
    expect(batches.map((b) => b.length)).toEqual([20, 20]);
    await r.close();
    expect(batches.map((b) => b.length)).toEqual([20, 20, 5]);
    expect(batches.flat()).toEqual(Array.from({ length: 45 }, (_, i) => i));
    expect(r.unrecorded).toBe(0);
  });

  it('a partial batch is written 200 ms after its first send, not later', async () => {
    const batches: number[][] = [];
    const r = createSendRecorder<number>({
      flushSize: 20, flushAfterMs: 200, maxUnrecorded: 40, write: async (items) => { batches.push(items); }, onWriteError: () => {},
    });
    await r.add(1);
    await vi.advanceTimersByTimeAsync(150);
    await r.add(2);
    expect(batches).toEqual([]);
    await vi.advanceTimersByTimeAsync(50); // 200 ms after the FIRST send
    expect(batches).toEqual([[1, 2]]);
    await r.add(3);
    await vi.advanceTimersByTimeAsync(199);
    expect(batches).toEqual([[1, 2]]);
    await vi.advanceTimersByTimeAsync(1);
    expect(batches).toEqual([[1, 2], [3]]);
    await r.close();
    expect(batches).toHaveLength(2);
  });

  it('back-pressure: beyond 40 unwritten accepted sends, add() waits for a write to finish', async () => {
    const w = controlledWriter();
    const r = createSendRecorder<number>({ flushSize: 20, flushAfterMs: 200, maxUnrecorded: 40, write: w.write, onWriteError: () => {} });
    for (let i = 0; i < 40; i++) await r.add(i); // two writes under way, nothing waits yet
    expect(w.writes).toHaveLength(2);
    expect(r.unrecorded).toBe(40);
    let resumed = false;
    const blocked = r.add(40).then(() => { resumed = true; });
    await vi.advanceTimersByTimeAsync(0);
    expect(resumed).toBe(false);
    expect(r.unrecorded).toBe(41); // never more than maxUnrecorded + the sends in flight
    w.writes[0].done();
    await blocked;
    expect(resumed).toBe(true);
    expect(r.unrecorded).toBe(21);
    w.writes[1].done();
    const closing = r.close();
    await vi.advanceTimersByTimeAsync(0);
    expect(w.writes.map((x) => x.items.length)).toEqual([20, 20, 1]);
    w.writes[2].done();
    await closing;
    expect(r.unrecorded).toBe(0);
  });

  it('close() waits for every write under way, not only the last buffer', async () => {
    const w = controlledWriter();
    const r = createSendRecorder<number>({ flushSize: 2, flushAfterMs: 200, maxUnrecorded: 10, write: w.write, onWriteError: () => {} });
    for (let i = 0; i < 5; i++) await r.add(i);
    let closed = false;
    const closing = r.close().then(() => { closed = true; });
    await vi.advanceTimersByTimeAsync(0);
    expect(w.writes.map((x) => x.items)).toEqual([[0, 1], [2, 3], [4]]);
    w.writes[2].done();
    w.writes[0].done();
    await vi.advanceTimersByTimeAsync(0);
    expect(closed).toBe(false); // the second write is still in the database
    w.writes[1].done();
    await closing;
    expect(closed).toBe(true);
  });

  it('a failed write reports exactly its sends (they stay `sending`, later `unknown`) and the others go on', async () => {
    const w = controlledWriter();
    const failed: number[][] = [];
    const r = createSendRecorder<number>({ flushSize: 3, flushAfterMs: 200, maxUnrecorded: 6, write: w.write, onWriteError: (items) => { failed.push(items); } });
    for (let i = 0; i < 6; i++) await r.add(i);
    w.writes[0].fail(new Error('connection reset'));
    w.writes[1].done();
    await r.close();
    expect(failed).toEqual([[0, 1, 2]]);
    expect(r.unrecorded).toBe(0);
  });

  it('refuses a bound smaller than a batch (the bound would never hold)', () => {
    expect(() => createSendRecorder<number>({ flushSize: 20, flushAfterMs: 200, maxUnrecorded: 10, write: async () => {}, onWriteError: () => {} }))
      .toThrow(/maxUnrecorded/);
  });

  it('a deadlock (or serialization failure) is recognised also when the driver layer wraps it', () => {
    const pgError = Object.assign(new Error('deadlock detected'), { code: '40P01' });
    expect(isDeadlock(pgError)).toBe(true);
    expect(isDeadlock(Object.assign(new Error('Failed query'), { cause: pgError }))).toBe(true);
    expect(isDeadlock({ cause: { cause: { code: '40001' } } })).toBe(true);
    expect(isDeadlock(Object.assign(new Error('duplicate key'), { code: '23505' }))).toBe(false);
    expect(isDeadlock(new Error('connection reset'))).toBe(false);
    expect(isDeadlock(undefined)).toBe(false);
  });
});
