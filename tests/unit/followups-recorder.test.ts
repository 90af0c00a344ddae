import { describe, expect, it } from 'vitest';
import { createSendRecorder } from '../../lib/jobs/followups/recorder.js';
import { isDeadlock } from '../../lib/jobs/followups/sql.js';

/** A write the test finishes by hand, to hold writes "in the database" as long as it wants. */
function controlledWriter() {
  const writes: { items: number[]; done: () => void; fail: (e: Error) => void }[] = [];
  const write = (items: number[]) => new Promise<void>((resolve, reject) => { writes.push({ items, done: resolve, fail: reject }); });
  return { writes, write };
}

describe('followups: accepted sends are recorded by group commit', () => {
  const tick = () => new Promise((r) => setImmediate(r));

  it('the first send is written at once; those accepted meanwhile go together in the next statement', async () => {
    const w = controlledWriter();
    const r = createSendRecorder<number>({ maxBatch: 50, write: w.write, onWriteError: () => { throw new Error('no error expected'); } });
    const done: number[] = [];
    const adds = Array.from({ length: 6 }, (_, i) => r.add(i).then(() => { done.push(i); }));
    await tick();
    expect(w.writes.map((x) => x.items)).toEqual([[0]]);
    expect(r.unrecorded).toBe(6);
    w.writes[0].done();
    await tick();
    expect(done).toEqual([0]);
    expect(w.writes.map((x) => x.items)).toEqual([[0], [1, 2, 3, 4, 5]]);
    w.writes[1].done();
    await Promise.all(adds);
    await r.close();
    expect(done).toEqual([0, 1, 2, 3, 4, 5]);
    expect(r.unrecorded).toBe(0);
  });

  it('add() resolves only once its record is written: the send slot holds the email until then', async () => {
    const w = controlledWriter();
    const r = createSendRecorder<number>({ maxBatch: 50, write: w.write, onWriteError: () => {} });
    let resolved = false;
    const a = r.add(1).then(() => { resolved = true; });
    await tick();
    expect(resolved).toBe(false);
    w.writes[0].done();
    await a;
    expect(resolved).toBe(true);
  });

  it('never more than maxBatch records per statement', async () => {
    const batches: number[][] = [];
    let release!: () => void;
    const first = new Promise<void>((res) => { release = res; });
    const r = createSendRecorder<number>({
      maxBatch: 3, onWriteError: () => {},
      write: async (items) => { batches.push(items); if (batches.length === 1) await first; },
    });
    const adds = Array.from({ length: 8 }, (_, i) => r.add(i));
    await tick();
    release();
    await Promise.all(adds);
    expect(batches).toEqual([[0], [1, 2, 3], [4, 5, 6], [7]]);
  });

  it('close() waits for every write under way', async () => {
    const w = controlledWriter();
    const r = createSendRecorder<number>({ maxBatch: 2, write: w.write, onWriteError: () => {} });
    for (let i = 0; i < 3; i++) void r.add(i);
    let closed = false;
    const closing = r.close().then(() => { closed = true; });
    await tick();
    expect(closed).toBe(false);
    w.writes[0].done();
    await tick();
    w.writes[1].done();
    await closing;
    expect(closed).toBe(true);
    expect(r.unrecorded).toBe(0);
  });

  it('a failed write reports exactly its sends (they stay `sending`, later `unknown`) and the others go on', async () => {
    const w = controlledWriter();
    const failed: number[][] = [];
    const r = createSendRecorder<number>({ maxBatch: 10, write: w.write, onWriteError: (items) => { failed.push(items); } });
    const adds = Array.from({ length: 4 }, (_, i) => r.add(i));
    await tick();
    w.writes[0].fail(new Error('connection reset'));
    await tick();
    w.writes[1].done();
    await Promise.all(adds);
    expect(failed).toEqual([[0]]);
    expect(w.writes[1].items).toEqual([1, 2, 3]);
    expect(r.unrecorded).toBe(0);
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
