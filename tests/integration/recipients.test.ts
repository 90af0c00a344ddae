import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { simpleParser } from 'mailparser';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePg } from '../helpers/services.js';
import { testRuntime } from '../helpers/runtime.js';
import { startSmtpSink } from '../../devtools/smtp.js';
import { runJob } from '../../lib/cron/run.js';
import { followupsJob } from '../../lib/jobs/followups/index.js';
import type { Job } from '../../lib/cron/types.js';
import { overdueRemindersJob } from '../../lib/jobs/overdue-reminders/index.js';
import { parseConfig } from '../../lib/config.js';
import { createMailFactory, MailError } from '../../lib/mail/transport.js';
import { history, seedCompany, seedFollowup, seedInvoice, wipe } from './followups-fixtures.js';
import { appointment, appointmentType, client, company } from './overdue-fixtures.js';
import { accountDeletionsJob } from '../../lib/jobs/account-deletions/index.js';
import { DAY_MS, insertCompany, insertUser } from './deletions-seed.js';
import { httpStatusOf } from '../../lib/cron/outcome.js';

/** The injections of the production probes, and the bare non-address that used to be only a counter. */
const INJECTED = ['x@t.test\r\nBcc: victim@evil.test', 'a@x, b@evil', 'a@x;Bcc: b@evil'];
const EVIL = /victim@evil\.test|b@evil/;

/**
 * Recipients are one address (docs/security.md), end to end: real PostgreSQL, a real SMTP server
 * (smtp-server) that records every envelope; nothing may ever reach an injected address.
 */
describePg('recipients: one address, never an injected one', () => {
  let t: TestDatabase;
  let sink: Awaited<ReturnType<typeof startSmtpSink>>;
  beforeAll(async () => {
    t = await createTestDatabase('recipients');
    sink = await startSmtpSink();
  });
  afterAll(async () => {
    await sink?.close();
    await t?.drop();
  });
  beforeEach(async () => {
    await wipe(t.handle.db);
    sink.received.length = 0;
  });

  const NOW = '2026-03-10T09:00:00Z';
  const run = async (job: Job = followupsJob, env: Record<string, string> = {}) => {
    const { rt } = testRuntime({ CRON_SECRET: 'x'.repeat(24), SMTP_URL: sink.url, ...env }, t.handle);
    const res = await runJob(job, 'http', { dryRun: false, scope: {}, nowOverride: new Date(NOW) }, rt);
    expect(httpStatusOf(res)).toBe(200);
    return res.body as { stats: Record<string, any>; errors: { scope: string; id: unknown; code: string; message: string }[] };
  };
  const envelopes = () => sink.received.flatMap((m) => m.to);

  it('follow-ups: an injected or invalid client email is an item error with the follow-up id; nothing is claimed or sent; the others go out', async () => {
    const db = t.handle.db;
    const bad: number[] = [];
    for (const email of [...INJECTED, 'not-an-email']) {
      const s = await seedCompany(db, { clientEmail: email });
      bad.push(await seedFollowup(db, s, { sourceId: await seedInvoice(db, s) }));
    }
    const good = await seedCompany(db, { clientEmail: 'jeanne@client.example' });
    await seedFollowup(db, good, { sourceId: await seedInvoice(db, good) });

    for (const env of [{}, { MAIL_REDIRECT_TO: 'staging@lokario.test' }] as Record<string, string>[]) {
      sink.received.length = 0;
      const body = await run(followupsJob, env);
      expect(body.stats.waiting).toEqual({ invalid_client_email: 4 });
      const errs = body.errors.filter((e) => e.code === 'invalid_recipient');
      expect(errs.map((e) => e.id).sort()).toEqual([...bad].sort());
      expect(errs.every((e) => e.scope === 'followup')).toBe(true);
      expect(errs.find((e) => e.id === bad[3])!.message).toContain('not-an-email');
      for (const id of bad) expect(await history(db, id)).toEqual([]); // never claimed
      expect(envelopes().join(' ')).not.toMatch(EVIL);
      expect(sink.received.every((m) => !/^bcc:/im.test(m.raw.split(/\r?\n\r?\n/)[0]))).toBe(true);
      if (!('MAIL_REDIRECT_TO' in env)) expect(envelopes()).toEqual(['jeanne@client.example']);
      else expect(envelopes()).toEqual([]); // the good one was sent by the first run
    }
  });

  it('follow-ups: a company Reply-To that is not one address waits with a visible reason, nothing sent', async () => {
    const db = t.handle.db;
    const ids: number[] = [];
    for (const email of INJECTED) {
      const s = await seedCompany(db, {
        settings: {
          billing: { auto_followups: { invoices_enabled: true } },
          company_info: { email },
          followups: { send_window: { start: '00:00', end: '23:59', weekdays: [1, 2, 3, 4, 5, 6, 7] } },
        },
      });
      ids.push(await seedFollowup(db, s, { sourceId: await seedInvoice(db, s) }));
    }
    const body = await run();
    expect(body.stats.waiting).toEqual({ invalid_sender_address: 3 });
    expect(
      body.errors
        .filter((e) => e.code === 'invalid_sender_address')
        .map((e) => e.id)
        .sort(),
    ).toEqual([...ids].sort());
    expect(sink.received).toHaveLength(0);
  });

  it('subjects, names and Reply-To stay free of header injection', async () => {
    const db = t.handle.db;
    const evilName = 'Atelier\r\nBcc: victim@evil.test\r\nX-Evil: 1';
    const s = await seedCompany(db, {
      name: evilName,
      clientName: 'Jeanne\r\nBcc: victim@evil.test',
      clientEmail: 'jeanne@client.example',
      settings: {
        billing: { auto_followups: { invoices_enabled: true } },
        company_info: { email: 'contact@atelier.example' },
        followups: {
          send_window: { start: '00:00', end: '23:59', weekdays: [1, 2, 3, 4, 5, 6, 7] },
          messages: [
            { type: 'FACTURE_IMPAYEE', subject: 'Relance\r\nBcc: victim@evil.test\r\nX-Evil: 1', content: 'Bonjour {client_name}' },
          ],
        },
      },
    });
    await seedFollowup(db, s, { sourceId: await seedInvoice(db, s) });
    const body = await run();
    expect(body.stats.sent).toBe(1);
    expect(envelopes()).toEqual(['jeanne@client.example']);
    const parsed = await simpleParser(sink.received[0].raw);
    expect(parsed.headers.has('bcc')).toBe(false);
    expect(parsed.headers.has('x-evil')).toBe(false);
    expect(parsed.subject).not.toMatch(/[\r\n]/);
    expect(parsed.replyTo?.value.map((a) => a.address)).toEqual(['contact@atelier.example']);
    expect(parsed.from?.value.map((a) => a.address)).toEqual(['noreply@lokario.fr']);
    expect(parsed.to && !Array.isArray(parsed.to) ? parsed.to.value.map((a) => a.address) : null).toEqual(['jeanne@client.example']);
  });

  it('appointment reminders: an injected client email is an item error, nothing sent; the valid one goes out', async () => {
    const db = t.handle.db;
    const c = await company(db, { settings: {} });
    const type = await appointmentType(db, c);
    const ids: number[] = [];
    for (const email of [...INJECTED, 'not-an-email']) {
      ids.push(await appointment(db, { companyId: c, clientId: await client(db, c, email), typeId: type, start: '2026-03-11T08:00:00Z' }));
    }
    await appointment(db, {
      companyId: c,
      clientId: await client(db, c, 'paul@client.example'),
      typeId: type,
      start: '2026-03-11T08:00:00Z',
    });
    const body = await run(overdueRemindersJob);
    expect(body.stats.reminders).toMatchObject({ sent: 1, skipped: { invalid_client_email: 4 } });
    expect(
      body.errors
        .filter((e) => e.code === 'invalid_recipient')
        .map((e) => e.id)
        .sort(),
    ).toEqual(ids.map((id) => `${id}:24`).sort());
    expect(envelopes()).toEqual(['paul@client.example']);
  });

  it('appointment reminders: a company email that is not one address holds its reminders (settings_invalid), nothing sent', async () => {
    const db = t.handle.db;
    const c = await company(db, { settings: { company_info: { email: INJECTED[0] } } });
    const type = await appointmentType(db, c);
    await appointment(db, {
      companyId: c,
      clientId: await client(db, c, 'paul@client.example'),
      typeId: type,
      start: '2026-03-11T08:00:00Z',
    });
    const body = await run(overdueRemindersJob);
    expect(body.stats.reminders).toMatchObject({ sent: 0, skipped: { invalid_reply_to: 1 } });
    expect(body.errors).toEqual([expect.objectContaining({ scope: 'company', id: c, code: 'settings_invalid' })]);
    expect(sink.received).toHaveLength(0);
  });

  it('deletion reminders: an injected account email is an item error with the user id, nothing reaches it, not retried', async () => {
    const db = t.handle.db;
    const now = new Date(NOW);
    const companyId = await insertCompany(db, 'Suppression');
    await insertUser(db, { companyId, role: 'owner' });
    const bad: number[] = [];
    for (const email of INJECTED) {
      bad.push(
        await insertUser(db, {
          companyId,
          email,
          deletionRequestedAt: new Date(now.getTime() - 25 * DAY_MS),
          deletionScheduledAt: new Date(now.getTime() + 5 * DAY_MS),
        }),
      );
    }
    const body = await run(accountDeletionsJob);
    const errs = body.errors.filter((e) => e.code === 'invalid_recipient');
    expect(errs.map((e) => e.id).sort()).toEqual([...bad].sort());
    expect(envelopes().join(' ')).not.toMatch(EVIL);
    const again = await run(accountDeletionsJob);
    expect(again.errors.filter((e) => e.code === 'invalid_recipient')).toEqual([]); // kept, not re-tried every run
    expect(sink.received).toHaveLength(0);
  });

  it('every sender (deletion emails included): the transport refuses To / Reply-To that are not one address, before any connection, even with MAIL_REDIRECT_TO', async () => {
    for (const env of [
      { SMTP_URL: sink.url },
      { SMTP_URL: sink.url, MAIL_REDIRECT_TO: 'staging@lokario.test' },
      { OUTBOX_DIR: `${t.name}-outbox` },
    ]) {
      const factory = createMailFactory(parseConfig(env));
      const base = { from: 'Lokario <noreply@lokario.fr>', subject: 'Votre compte', text: 'Bonjour', messageId: '<del@lokario.fr>' };
      for (const bad of [...INJECTED, 'not-an-email']) {
        for (const mail of [
          { ...base, to: bad },
          { ...base, to: 'ok@client.example', replyTo: bad },
        ]) {
          const err = await factory
            .platform()
            .send(mail)
            .then(
              () => null,
              (e: unknown) => e,
            );
          expect(err).toBeInstanceOf(MailError);
          expect(err).toMatchObject({ code: 'invalid_recipient', permanent: true });
        }
      }
      factory.closeAll();
    }
    expect(sink.received).toHaveLength(0);
  });
});
