/** What inbox-sync calls once its mailboxes are stored: the delivery reports, then the platform bounce mailbox. */
import type { ConnectionOptions } from 'node:tls';
import type { JobContext } from '../cron/types.js';
import { processReportsOf } from './act.js';
import { syncPlatformBounces } from './platform-mailbox.js';

export type InboxBounceStats = {
  hard: number;
  soft: number;
  ignored: number;
  absences: number;
  errors: number;
  platform?: { status: string; read: number; hard: number; soft: number; ignored: number };
};

export async function afterInboxSync(
  ctx: JobContext,
  companyIds: Iterable<number>,
  tls?: ConnectionOptions,
): Promise<InboxBounceStats | undefined> {
  if (ctx.dryRun) return undefined;
  const stats: InboxBounceStats = await processReportsOf(ctx.db, companyIds, ctx.config.FRONTEND_URL, ctx.log);
  if (ctx.config.BOUNCE_IMAP_URL) {
    const p = await syncPlatformBounces(ctx, tls);
    stats.platform = { status: p.status, read: p.read, hard: p.hard, soft: p.soft, ignored: p.ignored };
    stats.hard += p.hard;
    stats.soft += p.soft;
    stats.ignored += p.ignored;
  }
  return stats;
}
