/**
 * The exactly-once send protocol, shared by every job that emails (follow-up steps, appointment
 * reminders, account-deletion emails). The whole state machine and its reasons are in
 * docs/sending.md; in short:
 *
 *   claim (unique key, `sending`, owner = run)  ──►  hand-over (`handed_at`, written once the
 *   server accepted DATA, before the body)  ──►  answer: 2xx `sent` · 4xx released (retry) ·
 *   5xx `failed` · no answer after DATA `unknown` (never re-sent automatically)
 *
 * A claim that was never handed over cannot have been delivered: the next run releases it as
 * soon as its owner is provably gone. A handed-over claim left `sending` by a dead run becomes
 * `unknown`. A run only hands over what it still owns, so a late answer after a sweep changes
 * nothing.
 *
 * A table that carries claims has the columns `id`, `delivery` (delivery_state), `claimed_at`,
 * `claimed_by` (the cron_runs id), `handed_at` and `error`.
 */
import { sql, type SQL } from 'drizzle-orm';
import { preparedRows, queryRows, type Executor } from '../../db/client.js';
import type { Logger } from '../log.js';
import { runGone } from '../../db/liveness.js';
import { MailError, classifySmtpError, type MailSender, type OutgoingMail } from './transport.js';

/**
 * A claim whose owner has a ledger row is stale when that run is gone: finished, or silent for
 * the lease TTL (db/liveness.ts `runGone`, 30 s after a kill). A claim without one (written
 * before owners were recorded) is stale after this long: longer than any invocation's budget.
 */
export const STALE_CLAIM_SEC = 120;

/**
 * No SMTP transaction is started with less than this left before the run's deadline: connecting,
 * the envelope and the body of one email fit in it on a healthy server, and a transaction that
 * would be cut at the deadline has to be started with time to spare or not at all.
 */
export const MIN_TRANSACTION_MS = 1_500;

/** A table holding claims, and how a claim is given back or settled (every one: lib/mail/sends.ts). */
export type ClaimTable = {
  /** The table's name (an SQL identifier). */
  name: string;
  /**
   * The rows of this sender, when several share the table (`mail_sends`): a condition on the
   * table's unqualified columns, added to every statement that does not go by claim id.
   */
  rows?: SQL;
  /**
   * The statements (plain DELETE / UPDATE, no RETURNING) that give back the rows matching
   * `where` (a condition on the table's own columns, already limited to claims known not to have
   * been delivered: never handed over, refused, or declared not delivered by a person).
   * Default: delete them.
   */
  release?: (where: SQL) => SQL[];
  /**
   * The statements that settle `unknown` rows matching `where` as delivered (a person found the
   * email in the Sent folder). Default: `sent`, dated by the claim.
   */
  resolve?: (where: SQL) => SQL[];
  /** What a refused send does to its claim, unless the sender passes another (default RELEASE_ON_RETRY). */
  policy?: FailurePolicy;
};

/**
 * What the protocol does with a refused send, as data: each sender's choice (lib/mail/sends.ts).
 * A 5xx is always the sender's to record (`failed`, never retried automatically), an answer that
 * never came after DATA always `unknown`.
 */
export type FailurePolicy = {
  /**
   * A refusal for now (4xx, network before DATA): `release` gives the claim back at once (the next
   * run tries again); `record` leaves it to the sender, which records a failed try (its back-off).
   */
  onRetry: 'release' | 'record';
  /** Error codes given back whatever their class: a problem of our configuration, not of the address. */
  releaseCodes: readonly string[];
};

/** The protocol's default: a refusal for now is given back, the next run tries again. */
export const RELEASE_ON_RETRY: FailurePolicy = { onRetry: 'release', releaseCodes: [] };
/** Every refusal is the sender's to record: a back-off of its own, or none (never retried). */
export const RECORDED_BY_SENDER: FailurePolicy = { onRetry: 'record', releaseCodes: [] };

/** What became of one claimed email. */
export type SendOutcome =
  /** The server accepted it: record `sent` (the caller does, batched or not). */
  | { state: 'sent'; response?: string }
  /** Refused for now (4xx, network before DATA, deadline before DATA): released or left to the sender, as its FailurePolicy says. */
  | { state: 'retry'; error: MailError }
  /** Refused for good (5xx, authentication): the caller records `failed`. */
  | { state: 'failed'; error: MailError }
  /** No answer after DATA (timeout, connection lost): recorded `unknown`, never re-sent automatically. */
  | { state: 'unknown'; error: MailError }
  /** Not started (run deadline near, the process is stopping, or the hand-over could not be written): released. */
  | { state: 'not_started'; reason: 'deadline' | 'stopping' | 'database' }
  /** The claim is no longer this run's (a sweep took it back): nothing sent, nothing written. */
  | { state: 'lost' };

/** The protocol's reading of a failed send: may it have been delivered, and is it worth a retry? */
function classifyFailure(e: MailError): 'retry' | 'failed' | 'unknown' {
  // an error without a server answer once the body was on its way: maybe delivered
  if (e.stage === 'data' && e.responseCode === undefined) return 'unknown';
  return e.permanent ? 'failed' : 'retry';
}

/** A failed send under a policy: the outcome the sender hears, and whether the protocol gives the claim back. */
export function failureAction(e: MailError, policy: FailurePolicy): { state: 'retry' | 'failed' | 'unknown'; release: boolean } {
  const kind = classifyFailure(e);
  if (kind === 'unknown') return { state: 'unknown', release: false };
  if (policy.releaseCodes.includes(e.code)) return { state: 'retry', release: true };
  return { state: kind, release: kind === 'retry' && policy.onRetry === 'release' };
}

export type ClaimedSendOptions = {
  db: Executor;
  table: ClaimTable;
  /** The run that owns the claims (cron_runs.id, written in `claimed_by`). */
  runId: string;
  /** Epoch ms (real clock): no SMTP transaction runs past it. */
  deadline: number;
  /** Aborted when the process is asked to stop: no new transaction starts. */
  stopSignal?: AbortSignal;
  log?: Logger;
  /** What a refused send does to its claim (default: the table's policy). */
  policy?: FailurePolicy;
};

export type ClaimedSend = {
  /** Sends one claimed email through the protocol; never throws for an SMTP or hand-over failure. */
  send(claimId: number, sender: MailSender, mail: OutgoingMail): Promise<SendOutcome>;
  /** Gives back claims this run will not send (budget spent, stopping). */
  release(claimIds: number[]): Promise<number>;
  /** Records claims as `unknown` (the answer could not be recorded, or never came). */
  markUnknown(claimIds: number[], error: string): Promise<number>;
  /** Applies the policy to a failed send: `unknown` recorded or the claim given back, as it says. */
  settleFailure(claimId: number, e: MailError): Promise<'retry' | 'failed' | 'unknown'>;
};

class ClaimLostError extends Error {}

/** A list of claim ids as one `int[]` parameter. */
const claimIdList = (ids: readonly number[]) => sql`${`{${ids.map((n) => Math.trunc(Number(n))).join(',')}}`}::int[]`;
/** The claim table's name as an SQL identifier. */
const claimTableIdentifier = (t: ClaimTable) => sql.identifier(t.name);

/** The hand-over of claims still owned by the run, as one `UPDATE … RETURNING id` (a CTE, or a statement). */
export function handOverStatement(t: ClaimTable, runId: string, claimIds: readonly number[]): SQL {
  return sql`update ${claimTableIdentifier(t)} set handed_at = now()
    where id = any(${claimIdList(claimIds)}) and delivery = 'sending' and claimed_by = ${runId}
    returning id`;
}

/** A `sending` claim of a gone owner that was never handed over: it cannot have been delivered (released). */
const NEVER_HANDED_OVER = sql`handed_at is null and claimed_by is not null`;
/** A `sending` claim of a gone owner that was handed over, or predates owners: maybe delivered (`unknown`). */
const MAYBE_DELIVERED = sql`(handed_at is not null or claimed_by is null)`;

/** The table's own rows, when it is shared by several senders (`ClaimTable.rows`). */
const ownRows = (t: ClaimTable): SQL => t.rows ?? sql`true`;

/**
 * Runs the release statements of a table; the number of claims given back. The owner gives back
 * what it knows was not delivered (not started, or refused by the server: 4xx); a sweep only what
 * was never handed over; a person an `unknown` claim they found was not delivered.
 */
async function releaseWhere(db: Executor, t: ClaimTable, where: SQL, by: 'owner' | 'sweep' | 'person'): Promise<number> {
  const guarded =
    by === 'owner'
      ? sql`(${where}) and delivery = 'sending'`
      : by === 'sweep'
        ? sql`(${where}) and delivery = 'sending' and ${NEVER_HANDED_OVER} and ${ownRows(t)}`
        : sql`(${where}) and delivery = 'unknown' and ${ownRows(t)}`;
  // inside a transaction (a person's answer) the rows stay locked until they are given back
  const [counted] = await queryRows<{ n: number }>(
    db,
    sql`select count(*)::int as n from (select 1 from ${claimTableIdentifier(t)} where ${guarded} for update) c`,
  );
  if (!counted?.n) return 0;
  await runStatements(db, t.release ? t.release(guarded) : [sql`delete from ${claimTableIdentifier(t)} where ${guarded}`]);
  return counted.n;
}

/** A table's plain statements, in order (a release or a resolve). */
async function runStatements(db: Executor, statements: SQL[]): Promise<void> {
  for (const st of statements) await db.execute(st);
}

/**
 * Hand-overs arriving while one is being written go together in the next statement: one
 * statement per SMTP round trip of the busiest connection, not one per email.
 */
function handoverWriter(o: ClaimedSendOptions) {
  let pending: { id: number; resolve(): void; reject(err: Error): void }[] = [];
  let writing = false;
  const drain = async () => {
    writing = true;
    while (pending.length) {
      const batch = pending;
      pending = [];
      try {
        const rows = await preparedRows<{ id: number }>(
          o.db,
          handOverStatement(
            o.table,
            o.runId,
            batch.map((b) => b.id),
          ),
        );
        const mine = new Set(rows.map((r) => Number(r.id)));
        for (const b of batch) {
          if (mine.has(b.id)) b.resolve();
          else b.reject(new ClaimLostError(`claim ${b.id} is no longer held by this run`));
        }
      } catch (err) {
        for (const b of batch) b.reject(err as Error);
      }
    }
    writing = false;
  };
  return (id: number) =>
    new Promise<void>((resolve, reject) => {
      pending.push({ id, resolve, reject });
      if (!writing) void drain();
    });
}

export function createClaimedSend(o: ClaimedSendOptions): ClaimedSend {
  const handOver = handoverWriter(o);
  const api: ClaimedSend = {
    async send(claimId, sender, mail) {
      if (o.stopSignal?.aborted || o.deadline - Date.now() < MIN_TRANSACTION_MS) {
        await api
          .release([claimId])
          .catch((err) => o.log?.warn({ claimId, err: (err as Error).message }, 'claim not released; the next run releases it'));
        return { state: 'not_started', reason: o.stopSignal?.aborted ? 'stopping' : 'deadline' };
      }
      let handover = 'none' as 'none' | 'done' | 'lost' | 'failed';
      let written: Promise<void> | undefined;
      const writeHandOver = () =>
        (written ??= handOver(claimId).then(
          () => {
            handover = 'done';
          },
          (err: Error) => {
            handover = err instanceof ClaimLostError ? 'lost' : 'failed';
            throw err;
          },
        ));
      try {
        const r = await sender.send(mail, { deadlineAt: o.deadline, beforeData: writeHandOver });
        return { state: 'sent', response: r.response };
      } catch (err) {
        // the body was held back: nothing was delivered, whatever the error looks like
        if (handover === 'lost') return { state: 'lost' };
        const e =
          handover === 'failed'
            ? new MailError(
                'handover_failed',
                `the hand-over could not be recorded: ${(err as Error).message}`,
                false,
                undefined,
                'envelope',
              )
            : err instanceof MailError
              ? err
              : classifySmtpError(err);
        return { state: await api.settleFailure(claimId, e), error: e };
      }
    },
    async settleFailure(claimId, e) {
      const action = failureAction(e, o.policy ?? o.table.policy ?? RELEASE_ON_RETRY);
      if (action.state === 'unknown') {
        await api
          .markUnknown([claimId], `${e.code}: ${e.message}`)
          .catch((dbErr) =>
            o.log?.error({ claimId, err: (dbErr as Error).message }, 'could not record an unknown send; the next run marks it'),
          );
      } else if (action.release) {
        await api
          .release([claimId])
          .catch((dbErr) => o.log?.warn({ claimId, err: (dbErr as Error).message }, 'claim not released; the next run releases it'));
      }
      return action.state;
    },
    async release(claimIds) {
      if (!claimIds.length) return 0;
      return releaseWhere(o.db, o.table, sql`id = any(${claimIdList(claimIds)}) and claimed_by = ${o.runId}`, 'owner');
    },
    async markUnknown(claimIds, error) {
      if (!claimIds.length) return 0;
      const rows = await queryRows<{ id: number }>(
        o.db,
        sql`
        update ${claimTableIdentifier(o.table)} set delivery = 'unknown', error = ${error.slice(0, 500)}
        where id = any(${claimIdList(claimIds)}) and delivery = 'sending'
        returning id`,
      );
      return rows.length;
    },
  };
  return api;
}

/**
 * True for a claim whose run is provably over (db/liveness.ts `runGone`: finished, or no
 * heartbeat for the lease TTL); without an owner row, a claim older than STALE_CLAIM_SEC.
 * Columns of the claim table, unqualified or qualified by `alias`.
 */
export function ownerGone(alias?: string): SQL {
  const col = (name: string): SQL => (alias ? sql`${sql.identifier(alias)}.${sql.identifier(name)}` : sql`${sql.identifier(name)}`);
  return sql`coalesce(${runGone(col('claimed_by'))}, ${col('claimed_at')} < now() - make_interval(secs => ${STALE_CLAIM_SEC}))`;
}

export type SweepResult = { released: number; unknownIds: number[] };

/**
 * The start of every sending run: claims of dead runs that were never handed over are given back
 * (they cannot have been delivered), handed-over ones become `unknown`, and so do stale claims
 * without an owner (written before this protocol: nobody knows whether they were handed over). `scope` limits it to the
 * run's tenants (a condition on the table's unqualified columns).
 */
export async function sweepClaims(db: Executor, t: ClaimTable, scope: SQL = sql`true`): Promise<SweepResult> {
  const unknown = await queryRows<{ id: number }>(
    db,
    sql`
    update ${claimTableIdentifier(t)} set delivery = 'unknown',
      error = coalesce(error, 'no SMTP answer recorded: the run that handed it to SMTP ended')
    where delivery = 'sending' and ${MAYBE_DELIVERED} and ${ownerGone()} and ${ownRows(t)} and (${scope})
    returning id`,
  );
  const released = await releaseWhere(db, t, sql`${ownerGone()} and (${scope})`, 'sweep');
  return { released, unknownIds: unknown.map((r) => Number(r.id)) };
}

/** What sweepClaims would do now, written nowhere (a dry run). */
export async function previewSweep(db: Executor, t: ClaimTable, scope: SQL = sql`true`): Promise<{ released: number; unknown: number }> {
  const [r] = await queryRows<{ released: number; unknown: number }>(
    db,
    sql`
    select count(*) filter (where ${NEVER_HANDED_OVER})::int as released, count(*) filter (where ${MAYBE_DELIVERED})::int as unknown
    from ${claimTableIdentifier(t)} where delivery = 'sending' and ${ownerGone()} and ${ownRows(t)} and (${scope})`,
  );
  return { released: r?.released ?? 0, unknown: r?.unknown ?? 0 };
}

/** `sending` claims of a gone owner (for /cron/status: crash residue not swept yet). */
export function staleSendingCondition(alias: string): SQL {
  return sql`${sql.identifier(alias)}.delivery = 'sending' and ${ownerGone(alias)}`;
}

/** A claim table's crash residue: sends in `unknown` and `sending` claims of a gone owner (/cron/status). */
export async function claimResidue(db: Executor, t: ClaimTable): Promise<{ unknownSends: number; staleClaims: number }> {
  const [r] = await queryRows<{ unknown: number; stale: number }>(
    db,
    sql`
    select (select count(*)::int from ${claimTableIdentifier(t)} where delivery = 'unknown' and ${ownRows(t)}) as unknown,
           (select count(*)::int from ${claimTableIdentifier(t)} h where ${staleSendingCondition('h')} and ${ownRows(t)}) as stale`,
  );
  return { unknownSends: r.unknown, staleClaims: r.stale };
}

/**
 * A person's answer for an `unknown` claim (the console, `npm run ops -- resolve`): `delivered`
 * settles it as sent (the table's `resolve`); `not_delivered` is the protocol's release, so the
 * next run sends it again (history and try count as the table's `release` keeps them). Only a
 * claim still `unknown` is touched: true when it was.
 */
export async function settleUnknown(db: Executor, t: ClaimTable, claimId: number, answer: 'delivered' | 'not_delivered'): Promise<boolean> {
  const where = sql`id = ${Math.trunc(claimId)}`;
  if (answer === 'not_delivered') return (await releaseWhere(db, t, where, 'person')) > 0;
  const unknownRow = sql`(${where}) and delivery = 'unknown' and ${ownRows(t)}`;
  const found = await queryRows<{ id: number }>(db, sql`select id from ${claimTableIdentifier(t)} where ${unknownRow} for update`);
  if (!found.length) return false;
  await runStatements(
    db,
    t.resolve
      ? t.resolve(unknownRow)
      : [
          sql`
    update ${claimTableIdentifier(t)} set delivery = 'sent', sent_at = coalesce(sent_at, claimed_at), error = null where ${unknownRow}`,
        ],
  );
  return true;
}
