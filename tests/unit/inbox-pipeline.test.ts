import { describe, expect, it } from 'vitest';
import { mapSerial, readAhead } from '../../lib/jobs/inbox-sync/pipeline.js';

/** A producer that records when each item is started, finished, and whether it was closed. */
function producer(n: number, opts: { failAt?: number } = {}) {
  const log: string[] = [];
  let closed = false;
  async function* gen() {
    try {
      for (let i = 1; i <= n; i++) {
        log.push(`start ${i}`);
        await new Promise((r) => setImmediate(r));
        if (i === opts.failAt) throw new Error(`item ${i} failed`);
        log.push(`done ${i}`);
        yield i;
      }
    } finally {
      closed = true;
    }
  }
  return { gen, log, isClosed: () => closed };
}

describe('readAhead: stages overlap, order and failures do not change', () => {
  it('delivers every item once, in order', async () => {
    const p = producer(7);
    const got: number[] = [];
    for await (const x of readAhead(p.gen(), 1)) got.push(x);
    expect(got).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it('works on the next item while the consumer holds the current one, never more than `depth` ahead', async () => {
    const p = producer(5);
    const seenAhead: number[] = [];
    for await (const x of readAhead(p.gen(), 1)) {
      await new Promise((r) => setTimeout(r, 5)); // the consumer is slow
      const started = p.log.filter((l) => l.startsWith('start')).length;
      seenAhead.push(started - x);
    }
    expect(seenAhead.slice(0, 4)).toEqual([1, 1, 1, 1]); // the next one was under way, not two
    expect(seenAhead[4]).toBe(0); // nothing after the last
  });

  it('a failure of an item fetched ahead surfaces only after the items before it were consumed', async () => {
    const p = producer(5, { failAt: 3 });
    const got: number[] = [];
    await expect(
      (async () => {
        for await (const x of readAhead(p.gen(), 1)) {
          await new Promise((r) => setTimeout(r, 5));
          got.push(x);
        }
      })(),
    ).rejects.toThrow('item 3 failed');
    expect(got).toEqual([1, 2]);
  });

  it('a consumer that stops early waits for the item under way and closes the producer', async () => {
    const p = producer(10);
    for await (const x of readAhead(p.gen(), 1)) if (x === 2) break;
    expect(p.log).toEqual(['start 1', 'done 1', 'start 2', 'done 2', 'start 3', 'done 3']); // 3 finished before the return
    expect(p.isClosed()).toBe(true);
  });

  it('a consumer that throws also waits and closes, and its own error wins', async () => {
    const p = producer(10);
    await expect(
      (async () => {
        for await (const x of readAhead(p.gen(), 1)) if (x === 1) throw new Error('store failed');
      })(),
    ).rejects.toThrow('store failed');
    expect(p.isClosed()).toBe(true);
    expect(p.log.at(-1)).toBe('done 2');
  });

  it('chained stages (download → parse → store) keep the order', async () => {
    const p = producer(6);
    const got: string[] = [];
    const parsed = readAhead(
      mapSerial(readAhead(p.gen(), 1), async (x) => {
        await new Promise((r) => setTimeout(r, 3 - (x % 3)));
        return `p${x}`;
      }),
      1,
    );
    for await (const x of parsed) got.push(x);
    expect(got).toEqual(['p1', 'p2', 'p3', 'p4', 'p5', 'p6']);
    expect(p.isClosed()).toBe(true);
  });
});
