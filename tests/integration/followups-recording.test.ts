import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import pg from 'pg';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePg } from '../helpers/services.js';
import { startSmtpSink } from '../../devtools/smtp.js';
import { followupsJob } from '../../lib/jobs/followups/index.js';
import { recordSentBatch, type SentRecord } from '../../lib/jobs/followups/sql-record.js';
import { queryRows, type Db } from '../../db/client.js';
import { conversations, followupHistory } from '../../db/schema/index.js';
import { encryptSecret } from '../../lib/crypto/fernet.js';
import {
  addClient,
  addMailbox,
  followupRow,
  handContext,
  history,
  seedCompany,
  seedFollowup,
  seedInvoice,
  wipe,
} from './followups-fixtures.js';

const NOW = new Date('2026-03-11T10:00:00Z');
const MASTER = 'demo-master-key-not-a-secret-0123456789';

/** One run of the job function itself; its pooled SMTP connections are closed afterwards. */
async function runOnce(db: Db, smtpUrl: string, now: Date) {
  const ctx = handContext(db, { SMTP_URL: smtpUrl }, now);
  try {
    return await followupsJob.run(ctx);
  } finally {
    ctx.mail.closeAll();
  }
}

/** A real SMTP server that counts the connections it is given and how many are open. */
async function countingSmtpServer(opts: SMTPServerOptions = {}) {
  const stats = { opened: 0, accepted: 0, users: new Set<string>() };
  const server = new SMTPServer({
    logger: false,
    authOptional: true,
    ...opts,
    onConnect(_session, cb) {
      stats.opened++;
      cb();
    },
    onAuth(auth, _s, cb) {
      stats.users.add(auth.username ?? '');
      cb(null, { user: auth.username });
    },
    onData(stream, _session, cb) {
      stream.resume();
      stream.on('end', () => {
        stats.accepted++;
        cb();
      });
    },
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.server.address() as AddressInfo).port;
  const openNow = () => (server as unknown as { connections: Set<unknown> }).connections.size;
  /** Waits (bounded) until the clients have closed every connection. */
  const drained = async () => {
    for (let i = 0; i < 200 && openNow() > 0; i++) await new Promise((r) => setTimeout(r, 25));
    return openNow();
  };
  return { stats, port, drained, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const count = async (db: Db, table: string) =>
  (await queryRows<{ n: number }>(db, sql`select count(*)::int as n from ${sql.raw(table)}`))[0].n;

describePg('followups: accepted sends are recorded in batches, exactly once', () => {
  let t: TestDatabase;
  let sink: Awaited<ReturnType<typeof startSmtpSink>>;
  beforeAll(async () => {
    t = await createTestDatabase('fu_record');
    sink = await startSmtpSink();
  });
  afterAll(async () => {
    await sink?.close();
    await t?.drop();
  });
  beforeEach(async () => {
    await t.handle.db.execute(sql`drop trigger if exists fail_outbound on inbox_messages`);
    await wipe(t.handle.db);
    sink.received.length = 0;
  });

  it('one batch, several follow-ups of one client: one conversation created for them, an existing one reused and touched', async () => {
    const db = t.handle.db;
    const s = await seedCompany(db);
    // client A already has an email conversation (no message from them: nothing stops the relance)
    const [existing] = await db
      .insert(conversations)
      .values({
        companyId: s.companyId,
        clientId: s.clientId,
        subject: 'Devis',
        status: 'Répondu',
        lastMessageAt: new Date('2026-02-01T08:00:00Z'),
      })
      .returning();
    const a = await seedFollowup(db, s, { sourceId: await seedInvoice(db, s) });
    // client B has none, and three unpaid invoices
    const b = { companyId: s.companyId, clientId: await addClient(db, s.companyId) };
    const bIds: number[] = [];
    for (let i = 0; i < 3; i++) bIds.push(await seedFollowup(db, b, { sourceId: await seedInvoice(db, b) }));

    const res = await runOnce(db, sink.url, NOW);
    expect(res.stats.sent).toBe(4);
    expect(sink.received).toHaveLength(4);

    // recorded by the time the run returned (the last partial batch is written before the end)
    const rows = await history(db);
    expect(rows.map((r) => r.delivery)).toEqual(['sent', 'sent', 'sent', 'sent']);
    expect(rows.find((r) => r.followup_id === a)!.conversation_id).toBe(existing.id);
    const bConv = new Set(rows.filter((r) => bIds.includes(r.followup_id)).map((r) => r.conversation_id));
    expect(bConv.size).toBe(1);
    const [created] = await queryRows<{ id: number; thread_key: string; client_id: number }>(
      db,
      sql`select id, thread_key, client_id from conversations where id <> ${existing.id}`,
    );
    expect(created).toEqual({ id: [...bConv][0], thread_key: `followups:client:${b.clientId}`, client_id: b.clientId });
    expect(await count(db, 'conversations')).toBe(2);

    const messages = await queryRows<{ conversation_id: number; n: number }>(
      db,
      sql`select conversation_id, count(*)::int as n from inbox_messages where not is_from_client group by conversation_id order by conversation_id`,
    );
    expect(messages).toEqual([
      { conversation_id: existing.id, n: 1 },
      { conversation_id: created.id, n: 3 },
    ]);
    const [touched] = await queryRows<{ last_message_at: Date }>(
      db,
      sql`select last_message_at from conversations where id = ${existing.id}`,
    );
    expect(new Date(touched.last_message_at).toISOString()).toBe(NOW.toISOString());
    // each follow-up moved to its next step
    for (const id of [a, ...bIds]) expect((await followupRow(db, id)).actual_date?.toISOString()).toBe(NOW.toISOString());
  });

  it('a record batch writes `sent` over `sending` and over `unknown` (a late success is the truth), never over `failed`', async () => {
    const db = t.handle.db;
    const s = await seedCompany(db);
    const ids: number[] = [];
    for (let i = 0; i < 3; i++) ids.push(await seedFollowup(db, s, { sourceId: await seedInvoice(db, s) }));
    const deliveries = ['sending', 'unknown', 'failed'] as const;
    await db.insert(followupHistory).values(
      ids.map((id, i) => ({
        followupId: id,
        companyId: s.companyId,
        message: 'relance',
        messageType: 'email',
        status: 'ENVOYE' as const,
        sentByName: 'Système automatique',
        sentAt: NOW,
        step: 1,
        delivery: deliveries[i],
        attempts: 1,
        claimedAt: NOW,
        messageId: `<lokario.followup.${id}.1@lokario.test>`,
      })),
    );
    const record = (id: number): SentRecord => ({
      followupId: id,
      step: 1,
      companyId: s.companyId,
      clientId: s.clientId,
      nextStatus: 'A_FAIRE',
      nextDueDate: new Date('2026-03-25T10:00:00Z'),
      subject: 'Rappel',
      fromName: 'Société',
      fromEmail: 'noreply@lokario.test',
      externalId: `lokario.followup.${id}.1@lokario.test`,
      inReplyTo: null,
    });
    const { recorded } = await recordSentBatch(db, ids.map(record), NOW);
    expect(recorded.map((r) => r.followup_id).sort((x, y) => x - y)).toEqual([ids[0], ids[1]]);
    expect((await history(db)).map((r) => r.delivery)).toEqual(['sent', 'sent', 'failed']);
    expect(await count(db, 'inbox_messages')).toBe(2);
    // the outbound message carries the text the claim stored, i.e. what was sent
    expect(await queryRows<{ content: string }>(db, sql`select content from inbox_messages`)).toEqual([
      { content: 'relance' },
      { content: 'relance' },
    ]);
    expect((await followupRow(db, ids[2])).actual_date).toBeNull();
    // written twice (a retried flush): the second is a no-op, nothing doubles
    expect((await recordSentBatch(db, ids.map(record), NOW)).recorded).toEqual([]);
    expect(await count(db, 'inbox_messages')).toBe(2);
    expect(await count(db, 'conversations')).toBe(1);
  });

  it('a record statement chosen as a deadlock victim is run again: every send recorded, nothing doubled', async () => {
    const db = t.handle.db;
    const x = await seedCompany(db);
    const y = { companyId: x.companyId, clientId: await addClient(db, x.companyId) };
    const [convX] = await db
      .insert(conversations)
      .values({ companyId: x.companyId, clientId: x.clientId, subject: 'X', lastMessageAt: new Date('2026-02-01T08:00:00Z') })
      .returning();
    await db
      .insert(conversations)
      .values({ companyId: y.companyId, clientId: y.clientId, subject: 'Y', lastMessageAt: new Date('2026-02-01T08:00:00Z') });
    const fx = await seedFollowup(db, x, { sourceId: await seedInvoice(db, x) });
    const fy = await seedFollowup(db, y, { sourceId: await seedInvoice(db, y) });
    const [hx] = await db
      .insert(followupHistory)
      .values(
        [fx, fy].map((id, i) => ({
          followupId: id,
          companyId: x.companyId,
          message: 'relance',
          messageType: 'email',
          status: 'ENVOYE' as const,
          sentByName: 'Système automatique',
          sentAt: NOW,
          step: 1,
          delivery: 'sending' as const,
          attempts: 1,
          claimedAt: NOW,
          messageId: `<m${i}@lokario.test>`,
        })),
      )
      .returning();
    const record = (id: number, clientId: number, i: number): SentRecord => ({
      followupId: id,
      step: 1,
      companyId: x.companyId,
      clientId,
      nextStatus: 'A_FAIRE',
      nextDueDate: new Date('2026-03-25T10:00:00Z'),
      subject: 'Rappel',
      fromName: 'Société',
      fromEmail: 'noreply@lokario.test',
      externalId: `m${i}@lokario.test`,
      inReplyTo: null,
    });

    // another transaction holds X's conversation; the record statement locks its history rows
    // first, then waits for that conversation; the other transaction then wants a history row
    // the statement holds: a deadlock, and the statement (waiting longest) is the victim
    const other = new pg.Client({ connectionString: t.url });
    await other.connect();
    try {
      await other.query(`set deadlock_timeout = '20s'`); // this side never gives up first
      await other.query('begin');
      await other.query('update conversations set subject = subject where id = $1', [convX.id]);
      const recording = recordSentBatch(db, [record(fx, x.clientId, 0), record(fy, y.clientId, 1)], NOW);
      recording.catch(() => {});
      for (let i = 0; i < 400; i++) {
        const [w] = await queryRows<{ n: number }>(db, sql`select count(*)::int as n from pg_locks where not granted`);
        if (w.n > 0) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      await other.query('select id from followup_history where id = $1 for update', [hx.id]); // the statement is rolled back
      await other.query('commit');
      const { recorded } = await recording;
      expect(recorded.map((r) => r.followup_id).sort((a, b) => a - b)).toEqual([fx, fy].sort((a, b) => a - b));
    } finally {
      await other.query('rollback').catch(() => {});
      await other.end();
    }
    expect((await history(db)).map((r) => r.delivery)).toEqual(['sent', 'sent']);
    expect(await count(db, 'inbox_messages')).toBe(2);
    expect(await count(db, 'conversations')).toBe(2);
  });

  it('the record statement fails after the SMTP server accepted: rows stay `sending`, then `unknown`, never sent again', async () => {
    const db = t.handle.db;
    const s = await seedCompany(db);
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) ids.push(await seedFollowup(db, s, { sourceId: await seedInvoice(db, s) }));
    await db.execute(sql`create or replace function fail_outbound() returns trigger language plpgsql as $$
      begin raise exception 'disk full'; end $$`);
    await db.execute(sql`create trigger fail_outbound before insert on inbox_messages for each row execute function fail_outbound()`);

    const res = await runOnce(db, sink.url, NOW);
    expect(sink.received).toHaveLength(5);
    expect(
      res.errors
        .filter((e) => e.code === 'record_failed')
        .map((e) => Number(e.id))
        .sort((x, y) => x - y),
    ).toEqual(ids);
    // the whole batch statement rolled back: nothing half-recorded
    expect((await history(db)).map((r) => r.delivery)).toEqual(Array(5).fill('sending'));
    expect(await count(db, 'conversations')).toBe(0);
    await db.execute(sql`drop trigger fail_outbound on inbox_messages`);

    // the next run, within the lease: the steps are in flight, not sent again
    const again = await runOnce(db, sink.url, new Date(NOW.getTime() + 60_000));
    expect(again.stats.sent).toBe(0);
    expect(sink.received).toHaveLength(5);

    // after the lease: `unknown`, on hold, still never re-sent
    await db.execute(sql`update followup_history set claimed_at = now() - interval '11 minutes'`);
    const later = await runOnce(db, sink.url, new Date(NOW.getTime() + 3 * 24 * 3600_000));
    expect(later.stats.markedUnknown).toBe(5);
    expect(later.stats.sent).toBe(0);
    expect(sink.received).toHaveLength(5);
    expect((await history(db)).map((r) => r.delivery)).toEqual(Array(5).fill('unknown'));
    for (const id of ids) expect((await followupRow(db, id)).status).toBe('EN_ATTENTE');
  });

  it('simultaneous first sends share ONE pool: the platform relay sees at most 5 connections, a mailbox 1, all closed at the end', async () => {
    const db = t.handle.db;
    const relay = await countingSmtpServer({ disabledCommands: ['STARTTLS'] });
    // the mailbox requires STARTTLS: smtp-server's built-in self-signed certificate
    const mailbox = await countingSmtpServer({ authMethods: ['PLAIN', 'LOGIN'] });
    const previous = process.env.NODE_TLS_REJECT_UNAUTHORIZED;
    process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
    try {
      const viaRelay = await seedCompany(db);
      const viaMailbox = await seedCompany(db);
      await addMailbox(db, viaMailbox.companyId, {
        emailAddress: 'facturation@atelier.example',
        emailPassword: encryptSecret('app-password-1234', MASTER),
        smtpServer: '127.0.0.1',
        smtpPort: mailbox.port,
        smtpUseSsl: false,
      });
      for (let i = 0; i < 30; i++) await seedFollowup(db, viaRelay, { sourceId: await seedInvoice(db, viaRelay) });
      for (let i = 0; i < 10; i++) await seedFollowup(db, viaMailbox, { sourceId: await seedInvoice(db, viaMailbox) });

      const ctx = handContext(db, { SMTP_URL: `smtp://127.0.0.1:${relay.port}`, ENCRYPTION_MASTER_KEY: MASTER }, NOW);
      const res = await followupsJob.run(ctx);
      ctx.mail.closeAll();
      expect(res.stats.via).toEqual({ platform: 30, mailbox: 10 });
      expect(relay.stats.accepted).toBe(30);
      expect(mailbox.stats.accepted).toBe(10);
      // PLATFORM_SMTP_CONNECTIONS = 5 and MAILBOX_SMTP_CONNECTIONS = 1, even for the first sends
      expect(relay.stats.opened).toBeLessThanOrEqual(5);
      expect(mailbox.stats.opened).toBe(1);
      expect(mailbox.stats.users).toEqual(new Set(['facturation@atelier.example']));
      // closeAll() closed every pool: no connection is left to the servers
      expect(await relay.drained()).toBe(0);
      expect(await mailbox.drained()).toBe(0);
    } finally {
      if (previous === undefined) delete process.env.NODE_TLS_REJECT_UNAUTHORIZED;
      else process.env.NODE_TLS_REJECT_UNAUTHORIZED = previous;
      await relay.close();
      await mailbox.close();
    }
  });
});
