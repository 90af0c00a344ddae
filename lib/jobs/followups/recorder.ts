/**
 * Completed sends are recorded in small batches instead of one statement each: the SMTP slot is
 * free as soon as the server has answered, and the database does one statement per batch.
 *
 * The price is a window: an email the server accepted stays `sending` until its batch is written.
 * If the invocation dies inside that window, the sweep later marks it `unknown` (never re-sent):
 * exactly-once still holds, only the record says "maybe" for an email that did go out. The
 * window is bounded in count (`maxUnrecorded`: `add` waits once that many accepted sends are not
 * yet written, so sending pauses rather than letting the backlog grow) and in time (`flushAfterMs`
 * after the first buffered send, plus the statement itself). The numbers are in docs/followups.md.
 */
export type SendRecorderOptions<T> = {
  /** Written as soon as this many are buffered. */
  flushSize: number;
  /** A partial buffer is written at the latest this long after its first entry. */
  flushAfterMs: number;
  /** Accepted-but-unwritten sends beyond which `add` waits for a write to finish (≥ flushSize). */
  maxUnrecorded: number;
  /** Writes one batch (one statement). */
  write(items: T[]): Promise<void>;
  /** A batch that could not be written: its rows stay `sending` (→ `unknown`), never re-sent. */
  onWriteError(items: T[], err: unknown): void;
};

export type SendRecorder<T> = {
  /** Buffers one accepted send; resolves at once unless too many are unwritten (back-pressure). */
  add(item: T): Promise<void>;
  /** Writes what is buffered and waits for every write (end of run, budget spent, or an error). */
  close(): Promise<void>;
  /** Accepted sends not written yet (buffered or being written). */
  readonly unrecorded: number;
};

export function createSendRecorder<T>(opts: SendRecorderOptions<T>): SendRecorder<T> {
  if (opts.maxUnrecorded < opts.flushSize) throw new Error('maxUnrecorded must be at least flushSize');
  let buffer: T[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  let unrecorded = 0;
  const writing = new Set<Promise<void>>();

  const flush = () => {
    if (timer) { clearTimeout(timer); timer = undefined; }
    if (!buffer.length) return;
    const items = buffer;
    buffer = [];
    const w: Promise<void> = opts.write(items)
      .catch((err) => opts.onWriteError(items, err))
      .finally(() => { unrecorded -= items.length; writing.delete(w); });
    writing.add(w);
  };

  return {
    async add(item) {
      buffer.push(item);
      unrecorded++;
      if (buffer.length >= opts.flushSize) flush();
      else if (!timer) {
        timer = setTimeout(flush, opts.flushAfterMs);
        timer.unref?.(); // never what keeps a process alive; close() writes the rest
      }
      while (unrecorded > opts.maxUnrecorded && writing.size) await Promise.race(writing);
    },
    async close() {
      flush();
      while (writing.size) await Promise.all([...writing]);
    },
    get unrecorded() { return unrecorded; },
  };
}
