import { httpStatusOf } from '../../lib/cron/outcome.js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describeWithService, hasPostgres } from '../helpers/services.js';
import { hasDovecot, startDovecot, type Dovecot } from '../../devtools/dovecot.js';
import { startSmtpSink } from '../../devtools/smtp.js';
import { runSync } from '../helpers/inbox-fixtures.js';
import { BOUNCE_SAMPLES } from '../helpers/bounce-samples.js';
import { seedInvoice } from './followups-fixtures.js';
import {
  FRONTEND,
  NOW,
  bounceNotifications,
  bouncesOf,
  dueFollowup,
  followupState,
  runFollowups,
  sentStep,
  tenant,
  type BounceTenant,
} from './bounces-fixtures.js';

const describeImap = describeWithService(hasDovecot() && hasPostgres(), 'Dovecot (apt-get install dovecot-imapd) and PostgreSQL');

describeImap('bounces of follow-ups, every format (real SMTP sink, real Dovecot, real PostgreSQL)', () => {
  let t: TestDatabase;
  let d: Dovecot;
  let sink: Awaited<ReturnType<typeof startSmtpSink>>;
  beforeAll(async () => {
    t = await createTestDatabase('bounce_formats');
    d = await startDovecot({ pool: 20 });
    sink = await startSmtpSink();
  }, 60_000);
  afterAll(async () => {
    await sink?.close();
    await d?.stop();
    await t?.drop();
  });

  it('a follow-up sent, its bounce appended to the mailbox: the next sync marks the send bounced, holds the follow-up, notifies once; the next run sends nothing there', async () => {
    const db = t.handle.db;
    const tenants: (BounceTenant & { followupId: number; sample: (typeof BOUNCE_SAMPLES)[number] })[] = [];
    for (const [i, sample] of BOUNCE_SAMPLES.entries()) {
      const s = await tenant(db, d, `${sample.format}-${i}`);
      tenants.push({ ...s, followupId: await dueFollowup(db, s), sample });
    }
    const sent = await runFollowups(db, sink.url);
    expect(sent.stats.sent).toBe(BOUNCE_SAMPLES.length);
    expect(sink.received).toHaveLength(BOUNCE_SAMPLES.length);

    for (const [i, x] of tenants.entries()) {
      const step = await sentStep(db, x.followupId);
      expect(step.delivery).toBe('sent');
      const raw = x.sample.build({
        rcpt: x.email,
        messageId: step.message_id,
        subject: step.subject,
        sender: 'contact@societe.example',
        date: new Date(NOW.getTime() + 5 * 60_000),
        tag: `bounce-${i}-${process.pid}`,
      });
      await d.append(x.box.user, x.box.password, [raw]);
    }
    const sync = await runSync(t.handle, d, { env: { FRONTEND_URL: FRONTEND }, now: new Date(NOW.getTime() + 10 * 60_000) });
    expect(httpStatusOf(sync)).toBe(200);
    expect((sync.body as { stats: { bounces: unknown } }).stats.bounces).toMatchObject({
      hard: BOUNCE_SAMPLES.length,
      soft: 0,
      ignored: 0,
      errors: 0,
    });

    for (const x of tenants) {
      const label = `${x.sample.format}: ${x.sample.name}`;
      const step = await sentStep(db, x.followupId);
      expect(step.delivery, label).toBe('bounced');
      expect(step.error, label).toMatch(/^bounced/);
      expect(await followupState(db, x.followupId), label).toMatchObject({ status: 'EN_ATTENTE', hold_reason: 'bounced' });
      expect(await bouncesOf(db, x.companyId), label).toEqual([
        expect.objectContaining({
          outcome: 'hard',
          send_kind: 'followup_step',
          recipient: x.email,
          matched_by: x.sample.names,
          severity: 'hard',
        }),
      ]);
      const notes = await bounceNotifications(db, x.companyId);
      expect(notes, label).toHaveLength(1);
      expect(notes[0], label).toMatchObject({
        source_type: 'client',
        source_id: x.clientId,
        link_url: `${FRONTEND}/app/clients/${x.clientId}`,
        link_text: 'Voir le client',
      });
      expect(notes[0].title, label).toContain(x.clientName);
      expect(notes[0].message, label).toContain(x.email);
      expect(notes[0].message, label).toMatch(
        /n'a pas pu être distribué : (adresse inconnue|domaine introuvable|boîte désactivée|refusé par le serveur du destinataire)/,
      );
    }
    const byFormat = Object.fromEntries(
      await Promise.all(tenants.map(async (x) => [x.sample.name, (await bounceNotifications(db, x.companyId))[0].message])),
    );
    expect(byFormat['Postfix RFC 3464 report, user unknown, text/rfc822-headers']).toMatch(/adresse inconnue \(5\.1\.1\)/);

    // a new unpaid invoice for each of these clients: the next run sends nothing to the bounced addresses
    for (const x of tenants) await seedInvoice(db, x);
    const before = sink.received.length;
    const next = await runFollowups(db, sink.url, new Date(NOW.getTime() + 60 * 60_000));
    expect(next.stats.sent).toBe(0);
    expect(next.stats.waiting).toMatchObject({ bounced: BOUNCE_SAMPLES.length });
    expect(next.stats.bounces).toMatchObject({ hard: BOUNCE_SAMPLES.length });
    expect(sink.received.length).toBe(before);
    // a second sync: nothing new, nothing acts again
    const again = await runSync(t.handle, d, { env: { FRONTEND_URL: FRONTEND }, now: new Date(NOW.getTime() + 70 * 60_000) });
    expect((again.body as { stats: { bounces: unknown } }).stats.bounces).toMatchObject({ hard: 0, soft: 0, ignored: 0 });
    for (const x of tenants) expect(await bounceNotifications(db, x.companyId)).toHaveLength(1);
  }, 120_000);
});
