import { sql } from 'drizzle-orm';
import { queryRows, type Db } from '../../db/client.js';
import { encryptSecret } from '../../lib/crypto/fernet.js';
import { runJob } from '../../lib/cron/run.js';
import { createInboxSyncJob } from '../../lib/jobs/inbox-sync/index.js';
import type { InboxSyncOptions } from '../../lib/jobs/inbox-sync/session.js';
import type { Dovecot } from '../../devtools/dovecot.js';
import { testRuntime } from './runtime.js';
import { insertCompany, insertCompanySettings } from './seed.js';

/** Fixtures shared by the inbox-sync integration tests. */
export const MASTER_KEY = 'test-master-key-for-inbox-sync';
let seq = 0;

export async function createCompany(db: Db, settings: unknown = {}): Promise<number> {
  const n = ++seq;
  const id = await insertCompany(db, { name: `Société ${n}` });
  await insertCompanySettings(db, id, settings);
  return id;
}

export async function createIntegration(
  db: Db,
  companyId: number,
  d: Pick<Dovecot, 'host' | 'port' | 'tlsPort'>,
  user: string,
  password: string,
  over: { tls?: boolean; folder?: string; plaintext?: boolean; port?: number; host?: string } = {},
): Promise<number> {
  const stored = over.plaintext ? password : encryptSecret(password, MASTER_KEY);
  const [row] = await queryRows<{ id: number }>(
    db,
    sql`
    insert into inbox_integrations (company_id, integration_type, name, imap_server, imap_port, email_address, email_password, use_ssl, imap_folder)
    values (${companyId}, 'imap', 'Boîte principale', ${over.host ?? '127.0.0.1'}, ${over.port ?? (over.tls ? d.tlsPort : d.port)}, ${user}, ${stored}, ${!!over.tls}, ${over.folder ?? 'INBOX'})
    returning id`,
  );
  return row.id;
}

export function inboxEnv(extra: Record<string, string> = {}) {
  return {
    CRON_SECRET: 'x'.repeat(24),
    ENCRYPTION_MASTER_KEY: MASTER_KEY,
    IMAP_CONNECT_TIMEOUT_MS: '3000',
    IMAP_GREETING_TIMEOUT_MS: '3000',
    IMAP_SOCKET_TIMEOUT_MS: '10000',
    ...extra,
  };
}

/** One whole run through the cron contract (ledger, lease, response), as the route does it. */
export async function runSync(
  handle: { db: Db },
  d: Pick<Dovecot, 'cert'>,
  opts: { env?: Record<string, string>; dryRun?: boolean; now?: Date; scope?: Record<string, unknown>; job?: InboxSyncOptions } = {},
) {
  const { rt } = testRuntime(inboxEnv(opts.env), handle as never);
  const job = createInboxSyncJob({ tls: { ca: d.cert }, ...opts.job });
  return runJob(job, 'http', { dryRun: opts.dryRun ?? false, scope: (opts.scope ?? {}) as never, nowOverride: opts.now }, rt);
}

export async function integrationRow(db: Db, id: number) {
  const [r] = await queryRows<{
    uid_validity: string | null;
    last_uid: string | null;
    last_sync_status: string | null;
    last_sync_error: string | null;
    consecutive_failures: number;
    next_sync_at: Date | null;
    sync_lease_until: Date | null;
    last_sync_at: Date | null;
    highest_modseq: string | null;
  }>(
    db,
    sql`
    select uid_validity, last_uid, last_sync_status, last_sync_error, consecutive_failures, next_sync_at, sync_lease_until, last_sync_at, highest_modseq from inbox_integrations where id = ${id}`,
  );
  return r;
}

export async function messagesOf(db: Db, companyId: number) {
  return queryRows<{
    id: number;
    external_id: string;
    conversation_id: number;
    content: string;
    from_email: string | null;
    from_name: string;
    sent_at: Date | null;
    external_metadata: Record<string, unknown>;
    kind: string;
  }>(
    db,
    sql`
    select id, external_id, conversation_id, content, from_email, from_name, sent_at, external_metadata, kind from inbox_messages where company_id = ${companyId} order by id`,
  );
}

/** A fresh mailbox (the label only documents the call site). */
export function newMailbox(d: Dovecot, _label = 'u'): { user: string; password: string } {
  return d.takeMailbox();
}

/** A simple message with a Message-ID. */
export function simpleMail(
  id: string,
  opts: { from?: string; subject?: string; body?: string; headers?: Record<string, string> } = {},
): string {
  const h = {
    From: opts.from ?? 'Client <client@exemple.fr>',
    To: 'me@test.local',
    Subject: opts.subject ?? `Sujet ${id}`,
    Date: new Date().toUTCString(),
    'Message-ID': `<${id}>`,
    ...(opts.headers ?? {}),
  };
  return `${Object.entries(h)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\r\n')}\r\n\r\n${opts.body ?? `corps ${id}`}\r\n`;
}
