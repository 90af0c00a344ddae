/**
 * The send window: the exactly-once protocol of claimed-send.ts for a sender of many emails per
 * run (follow-ups), with hand-overs and records written in groups (docs/sending.md, "The send
 * window").
 *
 * At most `size` emails are handed over and not yet recorded: that is all a crash can leave
 * `unknown`. Once `group` of them are accepted (or nothing else is in SMTP), ONE statement
 * records them and hands over as many waiting emails as there are free places, so a run writes
 * about one statement per `group` emails instead of two per email. An email is only given to
 * SMTP once its hand-over is committed; its body needs no further wait.
 */
import type { SQL } from 'drizzle-orm';
import { preparedRows } from '../../db/client.js';
import { MIN_TRANSACTION_MS, createClaimedSend, handOverStatement, type ClaimedSendOptions, type SendOutcome } from './claimed-send.js';
import { MailError, classifySmtpError, type MailSender, type OutgoingMail } from './transport.js';

/** The protocol's options (run, deadline, stop signal, retry policy), plus the window's. */
export type SendWindowOptions<R> = ClaimedSendOptions & {
  /** Emails handed over and not yet recorded, at most: the crash bound. */
  size: number;
  /** Records and hand-overs written together once this many places can be refilled. */
  group: number;
  /**
   * Writes the records of accepted sends and, when `handOver` is given, runs that hand-over
   * (an `UPDATE … RETURNING id` to put in a CTE) in the SAME statement; returns the ids the
   * hand-over returned. Called only with at least one record.
   */
  recordAndHandOver(records: R[], handOver: SQL | null): Promise<number[]>;
};

/** What became of one email of the window; a `sent` one has been recorded, or `recordError` says why not. */
export type WindowOutcome = SendOutcome | { state: 'sent'; recordError: Error };

export type SendWindow<R> = {
  /** Queues one claimed email; resolves once it is settled (a `sent` one once its record is written). */
  submit(claimId: number, sender: MailSender, mail: OutgoingMail, record: R): Promise<WindowOutcome>;
};

type Entry<R> = { claimId: number; sender: MailSender; mail: OutgoingMail; record: R; settle(o: WindowOutcome): void };

export function createSendWindow<R>(o: SendWindowOptions<R>): SendWindow<R> {
  if (o.group < 1 || o.size < o.group) throw new Error('a send window needs 1 ≤ group ≤ size');
  // the single-email paths (release, unknown) are the protocol's own
  const single = createClaimedSend({ db: o.db, table: o.table, runId: o.runId, deadline: o.deadline, log: o.log, policy: o.policy });
  const waiting: Entry<R>[] = [];
  const accepted: Entry<R>[] = [];
  let inSmtp = 0;
  let flushing = false;

  const stopReason = (): 'stopping' | 'deadline' | null =>
    o.stopSignal?.aborted ? 'stopping' : o.deadline - Date.now() < MIN_TRANSACTION_MS ? 'deadline' : null;

  /** Claims this run will not send: released (once written, the caller hears of it). */
  const giveBack = async (entries: Entry<R>[], outcome: WindowOutcome) => {
    if (!entries.length) return;
    await single
      .release(entries.map((e) => e.claimId))
      .catch((err) =>
        o.log?.warn(
          { claimIds: entries.map((e) => e.claimId), err: (err as Error).message },
          'claims not released; the next run releases them',
        ),
      );
    for (const e of entries) e.settle(outcome);
  };

  const startSmtp = (e: Entry<R>) => {
    inSmtp++;
    e.sender
      .send(e.mail, { deadlineAt: o.deadline })
      .then(
        () => {
          accepted.push(e);
        },
        async (err) => {
          const me = err instanceof MailError ? err : classifySmtpError(err);
          const kind = await single.settleFailure(e.claimId, me);
          e.settle({ state: kind, error: me });
        },
      )
      .finally(() => {
        inSmtp--;
        pump();
      });
  };

  const flush = async (records: Entry<R>[], handing: Entry<R>[]) => {
    const ids = handing.map((e) => e.claimId);
    const handOver = ids.length ? handOverStatement(o.table, o.runId, ids) : null;
    try {
      const handed = new Set(
        (records.length
          ? await o.recordAndHandOver(
              records.map((e) => e.record),
              handOver,
            )
          : (await preparedRows<{ id: number }>(o.db, handOver!)).map((r) => r.id)
        ).map(Number),
      );
      for (const e of records) e.settle({ state: 'sent' });
      for (const e of handing) {
        if (handed.has(e.claimId)) startSmtp(e);
        else e.settle({ state: 'lost' }); // a sweep took it back: nothing sent, nothing written
      }
    } catch (err) {
      // the statement rolled back whole: the accepted emails stay `sending` + handed over (the
      // next run marks them `unknown`, never re-sent); the hand-overs did not happen
      for (const e of records) e.settle({ state: 'sent', recordError: err as Error });
      await giveBack(handing, { state: 'not_started', reason: 'database' });
      o.log?.error({ err: (err as Error).message }, 'send window: record / hand-over statement failed');
    }
  };

  function pump() {
    if (flushing) return;
    const stop = stopReason();
    if (stop) void giveBack(waiting.splice(0), { state: 'not_started', reason: stop });
    // places to fill: a whole group, or every waiting email if fewer wait (the end of a batch)
    const free = Math.min(waiting.length, o.size - inSmtp);
    const due =
      accepted.length >= o.group || (free > 0 && free >= Math.min(o.group, waiting.length)) || (inSmtp === 0 && accepted.length > 0);
    if (!due) return;
    flushing = true;
    void flush(accepted.splice(0), waiting.splice(0, free)).finally(() => {
      flushing = false;
      pump();
    });
  }

  return {
    submit(claimId, sender, mail, record) {
      return new Promise<WindowOutcome>((settle) => {
        waiting.push({ claimId, sender, mail, record, settle });
        // a batch is submitted in one go: its first hand-over takes all of it, not the first email
        if (waiting.length === 1) queueMicrotask(pump);
      });
    },
  };
}
