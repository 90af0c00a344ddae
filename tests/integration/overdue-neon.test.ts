import { afterAll, beforeAll, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePg } from '../helpers/services.js';
import { neonHandle, startNeonProxy, useNeonProxy } from '../helpers/neon-proxy.js';
import { startSmtpSink } from '../../devtools/smtp.js';
import { queryRows, type DbHandle } from '../../db/client.js';
import { overdueRemindersJob } from '../../lib/jobs/overdue-reminders/index.js';
import { appointment, appointmentType, client, company, handContext, invoice, notificationsOf, testConfig } from './overdue-fixtures.js';

describePg('overdue-reminders over the Neon driver (WebSocket proxy to the real PostgreSQL)', () => {
  let t: TestDatabase;
  let proxy: Awaited<ReturnType<typeof startNeonProxy>>;
  let neon: DbHandle;
  let sink: Awaited<ReturnType<typeof startSmtpSink>>;
  beforeAll(async () => {
    t = await createTestDatabase('overdue-neon');
    proxy = await startNeonProxy();
    useNeonProxy(proxy.port);
    neon = neonHandle(t.url, 10);
    sink = await startSmtpSink();
  });
  afterAll(async () => {
    await neon?.close();
    await proxy?.close();
    await sink?.close();
    await t?.drop();
  });

  it('5 simultaneous runs claim and send each reminder once and notify once', async () => {
    const db = neon.db;
    const c = await company(db);
    const cl = await client(db, c, 'neon-client@example.com');
    const ty = await appointmentType(db, c);
    for (let i = 0; i < 12; i++)
      await appointment(db, { companyId: c, clientId: cl, typeId: ty, start: `2026-04-10T${String(8 + i).padStart(2, '0')}:00:00Z` });
    for (let i = 0; i < 12; i++) await invoice(db, c, { due: '2026-04-01T00:00:00Z' });
    const config = testConfig({ SMTP_URL: sink.url });
    const runs = await Promise.all(
      Array.from({ length: 5 }, async () => {
        const ctx = handContext(db, { now: new Date('2026-04-09T20:00:00Z'), scope: { companyId: c }, config });
        try {
          return await overdueRemindersJob.run(ctx);
        } finally {
          ctx.close();
        }
      }),
    );
    expect(runs.reduce((n, r) => n + (r.stats.reminders as { sent: number }).sent, 0)).toBe(12);
    expect(sink.received).toHaveLength(12);
    expect(new Set(sink.received.map((m) => m.messageId)).size).toBe(12);
    expect(await notificationsOf(db, c, 'INVOICE_OVERDUE')).toHaveLength(12);
    expect(await notificationsOf(db, c, 'APPOINTMENT_REMINDER')).toHaveLength(12);
    const rows = await queryRows<{ n: number }>(
      db,
      sql`select count(*)::int as n from appointment_reminders where company_id = ${c} and delivery = 'sent'`,
    );
    expect(rows[0].n).toBe(12);
  });
});
