/**
 * The sequence of inbox-sync: select the due mailboxes, claim each with its own lease, sync them
 * (session.ts) with bounded concurrency inside the run's budget, and always leave the status
 * columns and the lease in a truthful state. Statements in sql.ts, French texts in messages.ts.
 */
import pLimit from 'p-limit';
import { budgetSpent, type ItemError, type JobContext, type JobResult } from '../../cron/types.js';
import { decryptStoredSecret, passwordForHost } from '../../crypto/fernet.js';
import { maskEmail } from '../../log.js';
import { OAuthError, withAccessToken } from '../../oauth/grant.js';
import type { SyncPlan } from './cursor.js';
import { classifyImapError, ImapSyncError } from '../../imap/errors.js';
import { createHostLimiter } from './host-limit.js';
import { afterInboxSync } from '../../bounces/after-sync.js';
import { CONFIG_INCOMPLETE, frenchError } from './messages.js';
import { addSeg, emptySeg } from './plan.js';
import { STOP_RESERVE_MS, syncMailbox, type InboxSyncOptions, type LinkProgress, type SessionResult } from './session.js';
import type { SegmentResult } from './store.js';
import { PAUSED } from './eligibility.js';
import {
  claimIntegration,
  databaseNow,
  recordDeadline,
  recordFailure,
  recordSuccess,
  releaseLease,
  selectDueIntegrations,
  type IntegrationRow,
} from './sql.js';

export type { InboxSyncOptions } from './session.js';

export type IntegrationOutcome = {
  integrationId: number;
  status: 'success' | 'partial' | 'error' | 'auth_error' | 'paused' | 'needs_reauth';
  plan?: SyncPlan['kind'];
  toFetch?: number;
  seg: SegmentResult;
  legacyPlaintext: boolean;
  error?: ItemError;
};

async function syncOne(ctx: JobContext, row: IntegrationRow, opts: InboxSyncOptions): Promise<IntegrationOutcome> {
  const out: IntegrationOutcome = { integrationId: row.id, status: 'success', seg: emptySeg(), legacyPlaintext: false };
  const link: LinkProgress = { bytes: 0, ms: 0, advanced: false };
  const fail = async (err: Error, code: string) => {
    out.status = ctx.dryRun ? 'error' : await recordFailure(ctx, row, err, link);
    out.error = {
      scope: 'inbox_integration',
      id: row.id,
      code: out.status === PAUSED ? 'paused' : code,
      message: frenchError(err, row.imap_server ?? '?'),
    };
    ctx.log.warn(
      { integrationId: row.id, companyId: row.company_id, mailbox: maskEmail(row.email_address ?? ''), code, status: out.status },
      'integration sync failed',
    );
    return out;
  };
  if (row.auth_method === 'oauth2') return syncOAuthMailbox(ctx, row, opts, out, fail, link);
  if (!row.imap_server || !row.email_address || !row.email_password) {
    return fail(new Error(CONFIG_INCOMPLETE.password), 'config_incomplete');
  }
  let password: string;
  try {
    const secret = decryptStoredSecret(row.email_password, ctx.config.ENCRYPTION_MASTER_KEY);
    out.legacyPlaintext = secret.legacyPlaintext;
    password = passwordForHost(secret.value, row.imap_server);
  } catch (err) {
    return fail(err as Error, 'credentials_undecryptable');
  }
  let s: SessionResult;
  try {
    // segments add to out.seg as they commit, so a failure still reports what was stored
    s = await syncMailbox(ctx, row, { pass: password }, opts, ctx.dryRun, out.seg, link);
  } catch (err) {
    const e = err instanceof ImapSyncError ? err : classifyImapError(err);
    if (e.code === 'deadline') return cutByDeadline(ctx, row, e, out, link);
    // segments stored before the failure keep their cursor: the next run resumes after them
    return fail(e, e.code);
  }
  return finishSync(ctx, row, s, out, link);
}

/** The budget ran out before the folder was planned: partial, not a failure of the mailbox. */
async function cutByDeadline(
  ctx: JobContext,
  row: IntegrationRow,
  e: ImapSyncError,
  out: IntegrationOutcome,
  link: LinkProgress,
): Promise<IntegrationOutcome> {
  out.status = 'partial';
  if (!ctx.dryRun) await recordDeadline(ctx.db, row, link);
  ctx.log.info({ integrationId: row.id, companyId: row.company_id, reason: e.message }, 'integration sync cut by the deadline');
  return out;
}

/**
 * An OAuth mailbox (docs/oauth-mailboxes.md): a valid access token (refreshed under the row lock
 * when expiring), XOAUTH2 login; a refused login is retried once with a new token, then the grant
 * is `needs_reauth` (notified once, never selected again until the web app stores a new grant).
 */
async function syncOAuthMailbox(
  ctx: JobContext,
  row: IntegrationRow,
  opts: InboxSyncOptions,
  out: IntegrationOutcome,
  fail: (err: Error, code: string) => Promise<IntegrationOutcome>,
  link: LinkProgress,
): Promise<IntegrationOutcome> {
  if (!row.imap_server || !row.email_address) return fail(new Error(CONFIG_INCOMPLETE.oauth), 'config_incomplete');
  let s: SessionResult;
  try {
    s = await withAccessToken(
      { db: ctx.db, config: ctx.config, log: ctx.log, ...opts.oauth },
      row.id,
      (t) => syncMailbox(ctx, row, { accessToken: t.accessToken }, opts, ctx.dryRun, out.seg, link),
      (err) => err instanceof ImapSyncError && err.code === 'auth_failed',
      { noRefresh: ctx.dryRun },
    );
  } catch (err) {
    if (err instanceof OAuthError && err.code === 'oauth_needs_reauth') {
      if (!ctx.dryRun) await releaseLease(ctx.db, row.id);
      out.status = 'needs_reauth';
      out.error = { scope: 'inbox_integration', id: row.id, code: err.code, message: err.message };
      ctx.log.warn(
        { integrationId: row.id, companyId: row.company_id, mailbox: maskEmail(row.email_address), code: err.code },
        'integration needs reauthorization',
      );
      return out;
    }
    if (err instanceof OAuthError) return fail(err, err.code); // transient or configuration: normal back-off
    const e = err instanceof ImapSyncError ? err : classifyImapError(err);
    if (e.code === 'deadline') return cutByDeadline(ctx, row, e, out, link);
    return fail(e, e.code);
  }
  return finishSync(ctx, row, s, out, link);
}

async function finishSync(
  ctx: JobContext,
  row: IntegrationRow,
  s: SessionResult,
  out: IntegrationOutcome,
  link: LinkProgress,
): Promise<IntegrationOutcome> {
  out.plan = s.plan.kind;
  out.toFetch = s.planned.length;
  if (ctx.dryRun) return out;
  await recordSuccess(ctx.db, row, s, ctx.now, link);
  out.status = s.stopped ? 'partial' : 'success';
  ctx.log.info(
    {
      integrationId: row.id,
      companyId: row.company_id,
      plan: s.plan.kind,
      planned: s.planned.length,
      processed: s.processed,
      imported: s.seg.imported,
      duplicates: s.seg.duplicates,
      poison: s.seg.poison,
      partial: s.stopped,
      linkBytes: link.bytes,
      linkMs: link.ms,
    },
    'integration synced',
  );
  return out;
}

export async function runInboxSync(ctx: JobContext, opts: InboxSyncOptions = {}): Promise<JobResult> {
  const runStartedAt = await databaseNow(ctx.db);
  const candidates = await selectDueIntegrations(ctx);
  const limit = pLimit(ctx.config.SYNC_CONCURRENCY);
  // the host's slot first, then a run slot: a mailbox waiting for a busy host holds no run slot
  const hostLimit = createHostLimiter(ctx.config.IMAP_HOST_MAX_CONNECTIONS);
  let notStarted = 0;
  let claimedElsewhere = 0;
  let finished = 0;
  let importedSoFar = 0;
  const reportProgress = (o: IntegrationOutcome | null) => {
    finished++;
    importedSoFar += o?.seg.imported ?? 0;
    ctx.progress?.(`${finished}/${candidates.length} mailboxes, ${importedSoFar} messages`);
    return o;
  };
  const outcomes = await Promise.all(
    candidates.map((cand) =>
      hostLimit(cand.imap_server ?? '', () =>
        limit(async (): Promise<IntegrationOutcome | null> => {
          if (budgetSpent(ctx, STOP_RESERVE_MS)) {
            notStarted++;
            return null;
          }
          const row = ctx.dryRun ? cand : await claimIntegration(ctx, cand.id, runStartedAt);
          if (!row) {
            claimedElsewhere++;
            return null;
          }
          try {
            return reportProgress(await syncOne(ctx, row, opts));
          } catch (err) {
            // a database error while storing: the integration is released and reported, the run goes on
            if (!ctx.dryRun) await releaseLease(ctx.db, row.id).catch(() => {});
            const e = err as Error;
            ctx.log.error({ integrationId: row.id, err: { message: e.message } }, 'integration sync crashed');
            return {
              integrationId: row.id,
              status: 'error',
              seg: emptySeg(),
              legacyPlaintext: false,
              error: { scope: 'inbox_integration', id: row.id, code: 'store_failed', message: e.message.slice(0, 300) },
            };
          }
        }),
      ),
    ),
  );
  const done = outcomes.filter((o): o is IntegrationOutcome => o !== null);
  // bounces and auto-replies of what was stored, and the platform bounce mailbox (docs/bounces.md)
  const companyOf = new Map(candidates.map((c) => [c.id, c.company_id]));
  const bounces = await afterInboxSync(
    ctx,
    done.map((o) => companyOf.get(o.integrationId)!),
    opts.tls,
  );
  const total = emptySeg();
  for (const o of done) addSeg(total, o.seg);
  const count = (st: IntegrationOutcome['status'][]) => done.filter((o) => st.includes(o.status)).length;
  const stats: Record<string, unknown> = {
    integrations: candidates.length,
    synced: count(['success', 'partial']),
    failed: count(['error', 'auth_error']),
    paused: count(['paused']),
    needsReauth: count(['needs_reauth']),
    skipped: notStarted + claimedElsewhere,
    notStartedBudget: notStarted,
    claimedElsewhere,
    incomplete: count(['partial']) + notStarted,
    messagesImported: total.imported,
    messagesDuplicate: total.duplicates,
    messagesPoison: total.poison,
    bytes: total.bytes,
    clientsCreated: total.clientsCreated,
    conversationsCreated: total.conversationsCreated,
    clientsNotCreated: total.clientsNotCreated,
    legacyPlaintextPasswords: done.filter((o) => o.legacyPlaintext).length,
    ...(bounces ? { bounces } : {}),
  };
  const result: JobResult = {
    stats,
    errors: done.flatMap((o) => (o.error ? [o.error] : [])),
    partial: notStarted > 0 || count(['partial']) > 0,
  };
  if (ctx.dryRun) {
    stats.messagesToFetch = done.reduce((n, o) => n + (o.toFetch ?? 0), 0);
    result.plan = done.map((o) => ({
      integrationId: o.integrationId,
      status: o.status,
      plan: o.plan ?? null,
      newMessages: o.toFetch ?? 0,
      ...(o.error ? { error: o.error.code } : {}),
    }));
  }
  return result;
}
