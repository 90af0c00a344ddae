/**
 * Overlapping the stages of a mailbox sync (IMAP download, MIME parsing, database store) without
 * changing their order: each stage works on the next segment while the one after it handles the
 * current one. Pure control flow, no I/O of its own.
 */

/**
 * Yields what `source` yields, in the same order, but asks `source` for the next item as soon as
 * the current one is handed out, so the producer works while the consumer does. At most `depth`
 * items are requested ahead of the consumer (memory stays bounded).
 *
 * An error of an item requested ahead surfaces only when the consumer reaches that item: what
 * came before it is still delivered first. When the consumer stops early (break, throw), the
 * items requested ahead are awaited (their failures ignored) and `source` is closed, so nothing
 * is still running on a connection the caller is about to close.
 */
export async function* readAhead<T>(source: AsyncIterable<T>, depth = 1): AsyncGenerator<T, void, undefined> {
  const it = source[Symbol.asyncIterator]();
  const pending: Promise<IteratorResult<T>>[] = [];
  let sourceDone = false;
  const pull = () => {
    const p = it.next();
    p.catch(() => {}); // held until the consumer gets there; never an unhandled rejection
    pending.push(p);
  };
  try {
    pull();
    for (;;) {
      const r = await pending.shift()!;
      if (r.done) {
        sourceDone = true;
        return;
      }
      while (pending.length < depth) pull();
      yield r.value;
    }
  } catch (err) {
    sourceDone = true; // a generator that threw is finished
    throw err;
  } finally {
    if (pending.length) {
      const settled = await Promise.allSettled(pending);
      if (settled.some((s) => s.status === 'rejected' || s.value.done)) sourceDone = true;
    }
    if (!sourceDone) await it.return?.();
  }
}

/** `fn` over each item of `source`, in order, one at a time. */
export async function* mapSerial<T, U>(source: AsyncIterable<T>, fn: (item: T) => Promise<U> | U): AsyncGenerator<U, void, undefined> {
  for await (const item of source) yield await fn(item);
}
