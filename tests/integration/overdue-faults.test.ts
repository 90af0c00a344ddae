import { afterAll, beforeAll, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePg } from '../helpers/services.js';
import { testRuntime } from '../helpers/runtime.js';
import { runJob } from '../../lib/cron/run.js';
import { queryRows, type Db } from '../../db/client.js';
import { overdueRemindersJob } from '../../lib/jobs/overdue-reminders/index.js';
import { company, invoice, notificationsOf, task } from './overdue-fixtures.js';
import { httpStatusOf } from '../../lib/cron/outcome.js';

describePg('overdue-reminders: a failing part (real PostgreSQL)', () => {
  let t: TestDatabase;
  let db: Db;
  beforeAll(async () => {
    t = await createTestDatabase('overdue-fault');
    db = t.handle.db;
  });
  afterAll(async () => {
    await t?.drop();
  });

  it('defect 35: one part failing does not poison the others, and the run is a 500, never a silent 200', async () => {
    const c = await company(db);
    await invoice(db, c, { due: '2026-02-01T10:00:00Z' });
    await task(db, c, { due: '2026-02-01T10:00:00Z' });
    // this database only: the trials part's table disappears, as after a botched migration
    await db.execute(sql`alter table subscriptions rename to subscriptions_gone`);
    const { rt } = testRuntime({ CRON_SECRET: 'x'.repeat(24) }, t.handle);
    const res = await runJob(overdueRemindersJob, 'http', { dryRun: false, scope: {}, nowOverride: new Date('2026-02-10T09:00:00Z') }, rt);
    expect(httpStatusOf(res)).toBe(500);
    expect(res.body).toMatchObject({ success: false, job: 'overdue-reminders', error: 'part_failed' });
    expect(String(res.body.message)).toContain('trials');
    // the other parts ran and committed
    expect(await notificationsOf(db, c, 'INVOICE_OVERDUE')).toHaveLength(1);
    expect(await notificationsOf(db, c, 'TASK_OVERDUE')).toHaveLength(1);
    const runs = await queryRows<{ outcome: string }>(db, sql`select outcome::text from cron_runs order by started_at desc limit 1`);
    expect(runs[0].outcome).toBe('failed');
    await db.execute(sql`alter table subscriptions_gone rename to subscriptions`);
    const again = await runJob(
      overdueRemindersJob,
      'http',
      { dryRun: false, scope: {}, nowOverride: new Date('2026-02-10T10:00:00Z') },
      rt,
    );
    expect(httpStatusOf(again)).toBe(200);
    expect(again.body.stats).toMatchObject({ invoices: { created: 0, alreadyNotified: 1 } });
  });

  it('budget spent before a part: the part is left for the next run and the run says partial', async () => {
    const c = await company(db);
    await invoice(db, c, { due: '2026-02-01T10:00:00Z' });
    const { rt } = testRuntime({ CRON_SECRET: 'x'.repeat(24) }, t.handle);
    // a job wrapper that hands over an already-spent deadline
    const spent = {
      ...overdueRemindersJob,
      run: (ctx: Parameters<typeof overdueRemindersJob.run>[0]) => overdueRemindersJob.run({ ...ctx, deadline: Date.now() - 1 }),
    };
    const res = await runJob(spent, 'http', { dryRun: false, scope: { companyId: c }, nowOverride: new Date('2026-02-20T09:00:00Z') }, rt);
    expect(httpStatusOf(res)).toBe(200);
    expect(res.body).toMatchObject({ partial: true, stats: { invoices: { skipped: 'budget' }, reminders: { skipped: 'budget' } } });
  });
});
