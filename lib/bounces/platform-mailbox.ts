/**
 * The platform bounce mailbox (BOUNCE_IMAP_URL, where BOUNCE_ADDRESS delivers): read by inbox-sync
 * after the companies' mailboxes, with the same parsing and classification. Its messages are not
 * stored as inbox messages (they belong to no company); its bounces are matched across companies
 * by Message-ID or VERP id only, and recorded in send_bounces under the scope `platform`.
 * Cursor and lease: `bounce_mailbox_cursors`. docs/bounces.md.
 */
import type { ConnectionOptions } from 'node:tls';
import { budgetSpent, type JobContext } from '../cron/types.js';
import { closeSession, connectAndLogin } from '../imap/session.js';
import { examineFolder, searchUidsFrom, searchUidsSince, streamSources } from '../imap/commands.js';
import { ImapDeadline } from '../imap/deadline.js';
import { parseMessage } from '../mime/parse.js';
import { actOnBounces, evidenceOf, noBounces, type BounceCounts } from './act.js';
import type { BounceEvidence } from './match.js';
import { claimBounceMailbox, releaseBounceMailbox } from './sql.js';

/** Messages read per run: a bounce mailbox gets a few a day; a backlog is worked off over runs. */
export const PLATFORM_BATCH = 200;
/** The first read (or after UIDVALIDITY changed) goes this far back: the match window. */
export const PLATFORM_FIRST_SYNC_DAYS = 14;
/** The IMAP work ends this long before the run's deadline (time to write the decisions). */
const RESERVE_MS = 3_000;
const LEASE_EXTRA_SEC = 120;

export type PlatformMailbox = { host: string; port: number; secure: boolean; user: string; pass: string; folder: string; key: string };

/** imap(s)://user:pass@host:port/FOLDER → the connection; the key names it without the password. */
export function parseBounceImapUrl(url: string): PlatformMailbox {
  const u = new URL(url);
  const secure = u.protocol === 'imaps:';
  const folder = decodeURIComponent(u.pathname.replace(/^\/+/, '')) || 'INBOX';
  const user = decodeURIComponent(u.username);
  const port = u.port ? Number(u.port) : secure ? 993 : 143;
  return {
    host: u.hostname,
    port,
    secure,
    user,
    pass: decodeURIComponent(u.password),
    folder,
    key: `${user}@${u.hostname}:${port}/${folder}`,
  };
}

export type PlatformResult = BounceCounts & { read: number; status: 'not_configured' | 'busy' | 'ok' | 'error'; error?: string };

export async function syncPlatformBounces(ctx: JobContext, tls?: ConnectionOptions): Promise<PlatformResult> {
  const url = ctx.config.BOUNCE_IMAP_URL;
  if (!url || ctx.dryRun) return { ...noBounces(), read: 0, status: 'not_configured' };
  const box = parseBounceImapUrl(url);
  const leaseSec = Math.max(60, Math.ceil((ctx.deadline - Date.now()) / 1000)) + LEASE_EXTRA_SEC;
  const cursor = await claimBounceMailbox(ctx.db, box.key, leaseSec, ctx.runId);
  if (!cursor) return { ...noBounces(), read: 0, status: 'busy' };
  const result: PlatformResult = { ...noBounces(), read: 0, status: 'ok' };
  const deadline = new ImapDeadline(ctx.deadline - RESERVE_MS);
  let next: { uidValidity: number; lastUid: number } | null = null;
  try {
    const client = await connectAndLogin(
      { host: box.host, port: box.port, useSsl: box.secure, user: box.user, pass: box.pass },
      {
        connectTimeoutMs: ctx.config.IMAP_CONNECT_TIMEOUT_MS,
        greetingTimeoutMs: ctx.config.IMAP_GREETING_TIMEOUT_MS,
        socketTimeoutMs: ctx.config.IMAP_SOCKET_TIMEOUT_MS,
        tls,
      },
      deadline,
    );
    try {
      const folder = await examineFolder(client, box.folder);
      const same = cursor.uid_validity !== null && Number(cursor.uid_validity) === folder.uidValidity;
      const lastUid = same ? Number(cursor.last_uid ?? 0) : 0;
      const uids = (
        same
          ? await searchUidsFrom(client, lastUid + 1)
          : await searchUidsSince(client, new Date(ctx.now.getTime() - PLATFORM_FIRST_SYNC_DAYS * 86_400_000))
      )
        .filter((u) => u > lastUid)
        .sort((a, b) => a - b)
        .slice(0, PLATFORM_BATCH);
      const bounces: BounceEvidence[] = [];
      let readUpTo = lastUid;
      for await (const { uid, source } of streamSources(client, uids)) {
        if (budgetSpent(ctx, RESERVE_MS)) break;
        result.read++;
        readUpTo = Math.max(readUpTo, uid);
        try {
          const m = await parseMessage(uid, source, { maxAttachmentBytes: 0 });
          if (m.kind === 'bounce' && m.reports?.bounce)
            bounces.push(evidenceOf(m.externalId, null, m.reports.bounce, m.subject, m.sentAt ?? ctx.now));
        } catch {
          // unreadable: nothing to act on, the cursor moves past it
        }
      }
      Object.assign(
        result,
        await ctx.db.transaction(async (tx) => {
          const counts = await actOnBounces(tx, { scope: 'platform', companyId: null, bounces, frontendUrl: ctx.config.FRONTEND_URL });
          return { hard: counts.hard, soft: counts.soft, ignored: counts.ignored };
        }),
      );
      next = { uidValidity: folder.uidValidity, lastUid: uids.length ? readUpTo : Math.max(lastUid, folder.uidNext - 1) };
    } finally {
      await closeSession(client);
    }
  } catch (err) {
    result.status = 'error';
    result.error = (err as Error).message.slice(0, 300);
    ctx.log.warn({ mailbox: 'bounce mailbox', err: result.error }, 'bounce mailbox not read');
  } finally {
    deadline.disarm();
    await releaseBounceMailbox(ctx.db, box.key, next, result.error ?? null).catch(() => {});
  }
  return result;
}
