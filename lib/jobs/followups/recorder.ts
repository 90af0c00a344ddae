/**
 * Accepted sends are recorded by group commit: the first one is written at once, and every one
 * accepted while a write is under way goes into the next statement (at most `maxBatch`). `add`
 * resolves once its record is written, so the send slot that holds the email is only freed then:
 * what a crash can leave `sending` (then `unknown`) is bounded by the send slots, not by a buffer
 * (docs/sending.md). Under load the statements grow by themselves: one per database round trip,
 * not one per email.
 */
export type SendRecorderOptions<T> = {
  /** At most this many records per statement. */
  maxBatch: number;
  /** Statements under way at once (default 1): a slow statement must not hold every send slot. */
  parallel?: number;
  /** Writes one batch (one statement). */
  write(items: T[]): Promise<void>;
  /** A batch that could not be written: its rows stay `sending` (→ `unknown`), never re-sent. */
  onWriteError(items: T[], err: unknown): void;
};

export type SendRecorder<T> = {
  /** Records one accepted send; resolves once it is written (or its write failed and was reported). */
  add(item: T): Promise<void>;
  /** Waits for every record under way (end of run). */
  close(): Promise<void>;
  /** Accepted sends not written yet (waiting or being written). */
  readonly unrecorded: number;
};

export function createSendRecorder<T>(opts: SendRecorderOptions<T>): SendRecorder<T> {
  if (opts.maxBatch < 1) throw new Error('maxBatch must be at least 1');
  const parallel = Math.max(1, opts.parallel ?? 1);
  let waiting: { item: T; done(): void }[] = [];
  let inWrite = 0;
  const writers = new Set<Promise<void>>();

  const drain = async () => {
    while (waiting.length) {
      const batch = waiting.slice(0, opts.maxBatch);
      waiting = waiting.slice(batch.length);
      inWrite += batch.length;
      const items = batch.map((b) => b.item);
      try {
        await opts.write(items);
      } catch (err) {
        opts.onWriteError(items, err);
      }
      inWrite -= batch.length;
      for (const b of batch) b.done();
    }
  };
  const startWriter = () => {
    const w: Promise<void> = drain().finally(() => { writers.delete(w); });
    writers.add(w);
  };

  return {
    add(item) {
      return new Promise<void>((resolve) => {
        waiting.push({ item, done: resolve });
        if (writers.size < parallel) startWriter();
      });
    },
    async close() {
      while (writers.size) await Promise.all([...writers]);
    },
    get unrecorded() { return waiting.length + inWrite; },
  };
}
