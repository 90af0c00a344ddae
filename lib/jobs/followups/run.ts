/**
 * The sequence of the follow-ups run: create, sweep, then batch by batch claim → plan → send →
 * record while the budget lasts. Decisions are in plan.ts / prepare.ts (pure), statements in
 * sql*.ts, French texts in messages.ts. State machine: docs/followups.md.
 */
import { budgetSpent, type ItemError, type JobContext, type JobResult } from '../../cron/types.js';
import { sweepClaims } from '../../mail/claimed-send.js';
import { FOLLOWUP_SENDS } from '../../mail/sends.js';
import { createSendWindow, type SendWindow } from '../../mail/send-window.js';
import type { MailError } from '../../mail/transport.js';
import {
  MAX_ATTEMPTS_PER_STEP,
  afterFailure,
  afterSent,
  monthlyQuota,
  quotaPeriodStart,
  type CompanyFacts,
  type FollowupFacts,
} from './plan.js';
import {
  claimScope,
  countDue,
  recentFollowupBounces,
  resumeAfterBounce,
  countSentThisPeriod,
  holdUnknownSteps,
  loadBatch,
  selectDue,
  writeClaims,
  type ClaimRequest,
  type Cursor,
  type DueRow,
  type LoadedBatch,
} from './sql.js';
import { createFollowups, loadCreationCompanies, previewCreations, type CreationConfig } from './sql-create.js';
import { recordFailed, recordSentBatch, type SentRecord } from './sql-record.js';
import { failedStepNotification, sourceLink } from './messages.js';
import { CredentialError, senderCache } from './transport.js';
import { buildFacts, planBatch, planItemOf, settingsCache, toDate, type PlanItem, type Prepared } from './prepare.js';
import { addDays, loadPostgresZones } from '../../time/zone.js';
import type { Executor } from '../../../db/client.js';

/**
 * Follow-ups claimed per transaction: big enough to amortise the 5 statements of a claim (each
 * statement costs about as much CPU as sending an email, measured by bench/followups.ts), small
 * enough that a claim transaction stays a few tens of milliseconds.
 */
export const BATCH_SIZE = 200;
/**
 * The first claim of a run is one send window: its emails reach SMTP after a claim a tenth as
 * long, so the connections (TLS, greeting, login) open while the next, full batch is claimed.
 */
export const FIRST_BATCH_SIZE = 20;
/**
 * Emails handed over and not yet recorded, at most (the send window): enough to keep every pooled
 * connection busy while half of them wait for their record, and the bound on what a crash can
 * leave `unknown` (docs/sending.md).
 */
export const SEND_CONCURRENCY = 20;
/**
 * Accepted sends recorded, and as many waiting emails handed over, in one statement: half the
 * window, so the other half keeps the connections busy meanwhile (~0.1 statement per email).
 */
export const SEND_GROUP = 10;
/** Kept before the deadline when deciding to claim another batch: time to send what it holds. */
export const CLAIM_RESERVE_MS = 3_000;

type Counter = Record<string, number>;
const bump = (c: Counter, key: string, by = 1) => {
  c[key] = (c[key] ?? 0) + by;
};

type Stats = {
  created: Counter;
  due: number;
  sent: number;
  failedTries: number;
  failedFinal: number;
  retried: number;
  stopped: Counter;
  waiting: Counter;
  markedUnknown: number;
  releasedClaims: number;
  unknown: number;
  notStarted: number;
  lostClaims: number;
  unknownTemplateVariables: Counter;
  legacyPlaintextPasswords: number;
  via: Counter;
  resumedAfterBounce?: number;
  bounces?: { hard: number; soft: number; ignored: number };
};

/** What the steps of one run share: its context, its counters, and its per-run caches. */
type RunState = {
  ctx: JobContext;
  stats: Stats;
  errors: ItemError[];
  plan: PlanItem[];
  settingsOf: ReturnType<typeof settingsCache>;
  senders: ReturnType<typeof senderCache>;
  nextAfterSent(f: FollowupFacts, step: number): ReturnType<typeof afterSent>;
  /** A company mailbox's sender opens (its password decrypts); else its follow-ups wait, reported once. */
  senderUsable(p: Prepared): boolean;
};

export async function runFollowups(ctx: JobContext): Promise<JobResult> {
  const s = openRunState(ctx);
  // zones are checked against PostgreSQL's names (cached per process) before any is used
  await loadPostgresZones(ctx.db);
  const virtualDue = await createAndSweep(s);
  let partial = ctx.dryRun ? await previewSends(s, virtualDue) : await sendDue(s);
  if (s.stats.notStarted > 0) partial = true; // given back for the next run
  return resultOf(s, partial);
}

function openRunState(ctx: JobContext): RunState {
  const stats: Stats = {
    created: {},
    due: 0,
    sent: 0,
    failedTries: 0,
    failedFinal: 0,
    retried: 0,
    stopped: {},
    waiting: {},
    markedUnknown: 0,
    releasedClaims: 0,
    unknown: 0,
    notStarted: 0,
    lostClaims: 0,
    unknownTemplateVariables: {},
    legacyPlaintextPasswords: 0,
    via: {},
  };
  const errors: ItemError[] = [];
  const senders = senderCache(ctx.mail, ctx.config.ENCRYPTION_MASTER_KEY, { db: ctx.db, config: ctx.config, log: ctx.log });
  // the state after step k depends only on the company's settings and the run's `now`: one
  // calendar computation per (company, step), not one per email
  const nextStates = new Map<string, ReturnType<typeof afterSent>>();
  const legacyCounted = new Set<number>();
  return {
    ctx,
    stats,
    errors,
    plan: [],
    settingsOf: settingsCache(errors),
    senders,
    nextAfterSent(f, step) {
      const key = `${f.company.id}:${step}`;
      let n = nextStates.get(key);
      if (!n) {
        n = afterSent(step, ctx.now, f.company.settings);
        nextStates.set(key, n);
      }
      return n;
    },
    senderUsable(p) {
      if (p.sender.kind !== 'mailbox') return true;
      try {
        const opened = senders.get(p.sender);
        if (opened.legacyPlaintext && !legacyCounted.has(p.sender.integrationId)) {
          legacyCounted.add(p.sender.integrationId);
          stats.legacyPlaintextPasswords++;
        }
        return true;
      } catch (err) {
        if (!(err instanceof CredentialError)) throw err;
        bump(stats.waiting, 'mailbox_credentials');
        const companyId = p.facts.company.id;
        if (!errors.some((e) => e.code === err.code && e.id === companyId))
          errors.push({ scope: 'company', id: companyId, code: err.code, message: err.message });
        return false;
      }
    },
  };
}

/**
 * 1. Create due follow-ups (only the billing switch matters, not the `followups` settings
 * object); 2. sweep the claims of dead runs. A dry run previews the creations instead and returns
 * the ones already due, so that it shows what the real run would send.
 */
async function createAndSweep(s: RunState): Promise<DueRow[]> {
  const { db, now, scope } = s.ctx;
  const cfg: CreationConfig[] = (await loadCreationCompanies(db, scope))
    .map((c) => {
      const settings = s.settingsOf(c.company_id, c.settings);
      return {
        company_id: c.company_id,
        quotes: settings.autoFollowups.quotes_enabled,
        invoices: settings.autoFollowups.invoices_enabled,
        first_delay: settings.followups.relance_delays[0] ?? 7,
        tz: settings.companyInfo.timezone,
      };
    })
    .filter((c) => c.quotes || c.invoices);
  if (s.ctx.dryRun) {
    const preview = await previewCreations(db, cfg, now);
    for (const p of preview) bump(s.stats.created, p.type === 'FACTURE_IMPAYEE' ? 'invoices' : 'quotes');
    return preview
      .filter((p) => toDate(p.due_date)!.getTime() <= now.getTime())
      .map((p, i) => ({
        id: -(i + 1),
        company_id: p.company_id,
        client_id: p.client_id,
        type: p.type,
        source_type: p.source_type,
        source_id: p.source_id,
        source_label: p.source_label,
        due_date: toDate(p.due_date)!,
        created_at: now,
      }));
  }
  for (const r of await createFollowups(db, cfg, now)) bump(s.stats.created, r.type === 'FACTURE_IMPAYEE' ? 'invoices' : 'quotes', r.n);
  // claims of dead runs: never handed to SMTP → given back; handed over → `unknown`, never re-sent
  const swept = await sweepClaims(db, FOLLOWUP_SENDS, claimScope(scope));
  s.stats.releasedClaims = swept.released;
  s.stats.markedUnknown = swept.unknownIds.length;
  await holdUnknownSteps(db, swept.unknownIds);
  // on hold after a hard bounce, and the client's address has changed since (docs/bounces.md)
  s.stats.resumedAfterBounce = await resumeAfterBounce(db, scope, now);
  return [];
}

/** Plans a loaded batch (pure), counts its stops and waits, then checks the mailbox credentials of its sends. */
function decideBatch(s: RunState, due: DueRow[], loaded: LoadedBatch, sentThisMonth: Map<number, number>) {
  const { now, config, dryRun } = s.ctx;
  const facts = buildFacts(due, loaded, s.settingsOf, sentThisMonth);
  const bounced = new Set(loaded.bounced.map(Number));
  for (const f of facts) f.clientAddressBounced = bounced.has(f.followup.clientId); // docs/bounces.md
  const batch = planBatch(facts, loaded, now, { mailFrom: config.MAIL_FROM, frontendUrl: config.FRONTEND_URL }, s.nextAfterSent);
  const stops: number[] = [];
  const prepared: Prepared[] = [];
  for (const stop of batch.stops) {
    bump(s.stats.stopped, stop.reason);
    stops.push(stop.followupId);
  }
  for (const w of batch.waits) {
    bump(s.stats.waiting, w.reason);
    if (w.problem) s.errors.push({ scope: 'followup', id: w.followupId, ...w.problem });
  }
  for (const p of batch.sends) {
    if (!dryRun && !s.senderUsable(p)) continue;
    for (const v of p.message.unknownVariables) bump(s.stats.unknownTemplateVariables, v);
    prepared.push(p);
  }
  return { prepared, stops };
}

/** The quota count of the batch's STARTER companies, in each company's calendar month. */
function countQuota(s: RunState, exec: Executor, loaded: LoadedBatch) {
  const periods = loaded.companies
    .filter((c) => monthlyQuota((c.plan as CompanyFacts['plan'] | null) ?? 'STARTER') !== null)
    .map((c) => {
      const tz = s.settingsOf(c.id, c.settings).companyInfo.timezone;
      const from = quotaPeriodStart(s.ctx.now, tz);
      const to = quotaPeriodStart(addDays(from, 40, tz), tz);
      return { company_id: c.id, from: from.toISOString(), to: to.toISOString() };
    });
  return countSentThisPeriod(exec, periods);
}

/** 3, dry run: what the real run would send, batch by batch, nothing claimed. True when the budget ran out. */
async function previewSends(s: RunState, virtualDue: DueRow[]): Promise<boolean> {
  const { db, scope, now } = s.ctx;
  const plannedPerCompany = new Map<number, number>(); // sends planned in earlier batches
  let cursor: Cursor = null;
  let virtualDone = false;
  for (;;) {
    if (budgetSpent(s.ctx, CLAIM_RESERVE_MS)) return true;
    s.ctx.progress?.(`${s.stats.sent} follow-ups sent`);
    let due = await selectDue(db, scope, now, cursor, BATCH_SIZE, false);
    if (!due.length && !virtualDone) {
      due = virtualDue;
      virtualDone = true;
    } else if (due.length) cursor = { dueKey: due[due.length - 1].due_key!, id: due[due.length - 1].id };
    if (!due.length) return false;
    s.stats.due += due.length;
    const loaded = await loadBatch(db, due, { lockQuota: false });
    const counts = await countQuota(s, db, loaded);
    for (const [id, n] of plannedPerCompany) counts.set(id, (counts.get(id) ?? 0) + n);
    const { prepared } = decideBatch(s, due, loaded, counts);
    for (const p of prepared) {
      plannedPerCompany.set(p.facts.company.id, (plannedPerCompany.get(p.facts.company.id) ?? 0) + 1);
      bump(s.stats.via, p.sender.kind);
      if (s.plan.length < 50) s.plan.push(planItemOf(p));
    }
    s.stats.sent += prepared.length; // reported as wouldSend
  }
}

/**
 * 3. Send, batch by batch, while the budget lasts. A pipeline of depth 2: the next batch is
 * claimed while the previous one sends, and its sends queue right behind (no idle connection
 * between batches); at most two batches are claimed and unfinished at any time. True when the
 * budget ran out.
 */
async function sendDue(s: RunState): Promise<boolean> {
  const { ctx } = s;
  const window = createSendWindow<SentRecord>({
    db: ctx.db,
    table: FOLLOWUP_SENDS,
    runId: ctx.runId,
    deadline: ctx.deadline,
    stopSignal: ctx.stopSignal,
    log: ctx.log,
    size: SEND_CONCURRENCY,
    group: SEND_GROUP,
    recordAndHandOver: async (records, handOver) => (await recordSentBatch(ctx.db, records, ctx.now, handOver)).handedIds,
  });
  let cursor: Cursor = null;
  let lastBatch = false;
  let partial = false;
  let inFlight: Promise<unknown> = Promise.resolve();
  try {
    for (;;) {
      if (budgetSpent(ctx, CLAIM_RESERVE_MS)) {
        partial = true;
        break;
      }
      ctx.progress?.(`${s.stats.sent} follow-ups sent`);
      if (lastBatch) break;
      const claimed = await claimBatch(s, cursor);
      if (claimed === null) break;
      ({ cursor, lastBatch } = claimed);
      const sends = sendClaimed(s, claimed, window);
      sends.catch(() => {}); // observed by an `await inFlight`; never an unhandled rejection meanwhile
      const previous = inFlight;
      inFlight = sends;
      await previous; // the batch before: done before the next claim
    }
  } finally {
    // whatever ends the loop (no more due rows, budget, an error), accepted sends get recorded
    await inFlight.catch(() => {});
  }
  await inFlight;
  return partial;
}

type ClaimedBatch = { prepared: Prepared[]; owned: Awaited<ReturnType<typeof writeClaims>>; cursor: Cursor; lastBatch: boolean };

/** The claim: lock due rows (skipping others' locks), load fresh facts, decide, write the claims; null when nothing is due. */
function claimBatch(s: RunState, after: Cursor): Promise<ClaimedBatch | null> {
  const { db, scope, now, runId } = s.ctx;
  return db.transaction(async (tx) => {
    const limit = after === null ? FIRST_BATCH_SIZE : BATCH_SIZE;
    const due = await selectDue(tx, scope, now, after, limit, true);
    if (!due.length) return null;
    s.stats.due += due.length;
    const loaded = await loadBatch(tx, due, { lockQuota: true });
    const { prepared, stops } = decideBatch(s, due, loaded, await countQuota(s, tx, loaded));
    const claims: ClaimRequest[] = prepared.map((p) => ({
      followup_id: p.facts.followup.id,
      company_id: p.facts.company.id,
      step: p.decision.step,
      message: p.message.body,
      message_id: p.messageId,
      retry: p.decision.retry,
    }));
    const owned = await writeClaims(tx, claims, stops, now, MAX_ATTEMPTS_PER_STEP, runId);
    const last = due[due.length - 1];
    // fewer than asked: nothing more is due (or others hold it), no claim after this one
    return { prepared, owned, cursor: { dueKey: last.due_key!, id: last.id }, lastBatch: due.length < limit };
  });
}

/** Sends what this run owns of a claimed batch (another invocation may have claimed some first). */
function sendClaimed(s: RunState, b: ClaimedBatch, window: SendWindow<SentRecord>): Promise<unknown> {
  const ownedKey = new Map(b.owned.map((o) => [`${o.followup_id}:${o.step}`, o]));
  const mine = b.prepared.filter((p) => ownedKey.has(`${p.facts.followup.id}:${p.decision.step}`));
  s.stats.lostClaims += b.prepared.length - mine.length;
  return Promise.all(
    mine.map((p) => {
      const claim = ownedKey.get(`${p.facts.followup.id}:${p.decision.step}`)!;
      return sendOne(s.ctx, p, Number(claim.id), claim.attempts, window, s.senders, s.stats, s.errors);
    }),
  );
}

/** The run's answer: counters, what is left when it stopped early, the last day's bounces; a dry run's words. */
async function resultOf(s: RunState, partial: boolean): Promise<JobResult> {
  const { db, scope, now, dryRun } = s.ctx;
  if (partial) (s.stats as unknown as Record<string, unknown>).remaining = dryRun ? null : await countDue(db, scope, now);
  // bounces of follow-up emails recorded over the last day (inbox-sync acts on them; docs/bounces.md)
  s.stats.bounces = await recentFollowupBounces(db, scope);
  const out: Record<string, unknown> = { ...s.stats };
  if (dryRun) {
    out.wouldSend = s.stats.sent;
    out.wouldCreate = s.stats.created;
    delete out.sent;
    delete out.created;
  }
  return { stats: out, errors: s.errors, partial, ...(dryRun ? { plan: s.plan } : {}) };
}

/**
 * One claimed step through the send protocol: `sent` (recorded with the next step and the
 * outbound message, the slot held until it is written), refused (`failed` + back-off), `unknown`
 * (on hold, never re-sent), or given back untouched (deadline, stopping).
 */
async function sendOne(
  ctx: JobContext,
  p: Prepared,
  claimId: number,
  attempts: number,
  window: SendWindow<SentRecord>,
  senders: ReturnType<typeof senderCache>,
  stats: Stats,
  errors: ItemError[],
) {
  const f = p.facts;
  const { sender } = senders.get(p.sender);
  const previous = p.decision.previousMessageId;
  const next = p.next;
  const outcome = await window.submit(
    claimId,
    sender,
    {
      from: p.fromHeader,
      to: f.client!.email!,
      subject: p.message.subject,
      text: p.message.body,
      ...(p.sender.kind === 'platform' && p.sender.replyTo ? { replyTo: p.sender.replyTo } : {}),
      messageId: p.messageId,
      // later steps thread under the previous one in the client's mail program
      ...(previous ? { inReplyTo: previous, references: [previous] } : {}),
      headers: { 'Auto-Submitted': 'auto-generated', 'X-Lokario-Followup': `${f.followup.id}/${p.decision.step}` },
    },
    {
      followupId: f.followup.id,
      step: p.decision.step,
      companyId: f.company.id,
      clientId: f.followup.clientId,
      nextStatus: next.status,
      nextDueDate: next.dueDate,
      subject: p.message.subject,
      fromName: f.company.name,
      fromEmail: p.sender.fromAddress,
      externalId: p.messageId.replace(/^<|>$/g, ''),
      inReplyTo: previous ? previous.replace(/^<|>$/g, '') : null,
    },
  );
  switch (outcome.state) {
    case 'not_started':
      stats.notStarted++;
      return;
    case 'lost':
      stats.lostClaims++;
      return;
    case 'unknown': {
      stats.unknown++;
      await holdUnknownSteps(ctx.db, [claimId]).catch(() => {});
      errors.push({
        scope: 'followup',
        id: f.followup.id,
        code: outcome.error.code,
        message: `step ${p.decision.step}: no SMTP answer after the message was sent (never re-sent automatically): ${outcome.error.message}`,
      });
      return;
    }
    case 'retry':
    case 'failed':
      await recordRefusal(ctx, p, attempts, outcome.error, stats, errors);
      return;
    case 'sent':
      if ('recordError' in outcome) {
        // the email went out; its row stays `sending` and becomes `unknown`: never sent twice
        ctx.log.error(
          { followupId: f.followup.id, step: p.decision.step, err: outcome.recordError.message },
          'sent, but could not record it',
        );
        errors.push({
          scope: 'followup',
          id: f.followup.id,
          code: 'record_failed',
          message: `step ${p.decision.step} was sent but not recorded`,
        });
      }
      break;
  }
  stats.sent++;
  if (p.decision.retry) stats.retried++;
  bump(stats.via, p.sender.kind);
}

/** A refused try: `failed` with its back-off, and on the last try the company's notification (docs/followups.md). */
async function recordRefusal(ctx: JobContext, p: Prepared, attempts: number, e: MailError, stats: Stats, errors: ItemError[]) {
  const f = p.facts;
  const next = afterFailure(attempts, e.permanent, ctx.now);
  stats.failedTries++;
  if (next.final) stats.failedFinal++;
  const link = sourceLink(f.followup, ctx.config.FRONTEND_URL);
  try {
    await recordFailed(ctx.db, {
      followupId: f.followup.id,
      step: p.decision.step,
      companyId: f.company.id,
      error: `${e.code}: ${e.message}`,
      nextAttemptAt: next.nextAttemptAt,
      final: next.final,
      notification: next.final
        ? {
            ...failedStepNotification({
              step: p.decision.step,
              sourceLabel: f.followup.sourceLabel,
              clientName: f.client?.name ?? null,
              attempts,
              error: e.message,
            }),
            linkUrl: link.url,
            linkText: link.text,
          }
        : null,
    });
  } catch (dbErr) {
    ctx.log.error({ followupId: f.followup.id, step: p.decision.step, err: (dbErr as Error).message }, 'could not record a failed send');
  }
  errors.push({ scope: 'followup', id: f.followup.id, code: e.code, message: `step ${p.decision.step}, try ${attempts}: ${e.message}` });
}
