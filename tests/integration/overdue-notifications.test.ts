import { afterAll, beforeAll, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePg } from '../helpers/services.js';
import { testRuntime } from '../helpers/runtime.js';
import { runJob } from '../../lib/cron/run.js';
import { queryRows, type Db } from '../../db/client.js';
import { overdueRemindersJob } from '../../lib/jobs/overdue-reminders/index.js';
import { company, handContext, invoice, notificationsOf, one, payment, subscription, task, testConfig, user } from './overdue-fixtures.js';
import { httpStatusOf } from '../../lib/cron/outcome.js';

describePg('overdue-reminders: notifications, invoice status, trials (real PostgreSQL)', () => {
  let t: TestDatabase;
  let db: Db;
  const config = testConfig();
  beforeAll(async () => {
    t = await createTestDatabase('overdue-notif');
    db = t.handle.db;
  });
  afterAll(async () => {
    await t?.drop();
  });

  /** One run of the job function for one company at a given instant. */
  async function runAt(companyId: number, now: string, dryRun = false) {
    const ctx = handContext(db, { now: new Date(now), scope: { companyId }, config, dryRun });
    try {
      return await overdueRemindersJob.run(ctx);
    } finally {
      ctx.close();
    }
  }
  const statusOf = async (id: number) => (await one<{ s: string }>(db, sql`select status::text as s from invoices where id = ${id}`)).s;

  it('due yesterday vs due today, in Europe/Paris, across the spring DST change (2026-03-29)', async () => {
    const c = await company(db);
    // due 2026-03-29 (Paris midnight, CET +1 before the change at 02:00)
    const inv = await invoice(db, c, { due: '2026-03-28T23:00:00Z' });
    // 23:59 Paris on the 29th (CEST +2): still the due day
    await runAt(c, '2026-03-29T21:59:00Z');
    expect(await notificationsOf(db, c, 'INVOICE_OVERDUE')).toHaveLength(0);
    expect(await statusOf(inv)).toBe('ENVOYEE');
    // 00:30 Paris on the 30th, still the 29th in UTC and with a fixed +1 offset: overdue in Paris
    await runAt(c, '2026-03-29T22:30:00Z');
    const n = await notificationsOf(db, c, 'INVOICE_OVERDUE');
    expect(n).toHaveLength(1);
    expect(n[0].message).toContain('en retard de 1 jour (échéance le 29/03/2026)');
    expect(await statusOf(inv)).toBe('EN_RETARD');
  });

  it('due yesterday vs due today across the autumn DST change (2026-10-25)', async () => {
    const c = await company(db);
    // due 2026-10-25 (Paris midnight, CEST +2); the day is 25 hours long
    await invoice(db, c, { due: '2026-10-24T22:00:00Z' });
    // 23:30 Paris on the 25th (CET +1): a fixed +2 offset would already say the 26th
    await runAt(c, '2026-10-25T22:30:00Z');
    expect(await notificationsOf(db, c, 'INVOICE_OVERDUE')).toHaveLength(0);
    await runAt(c, '2026-10-25T23:00:00Z'); // 00:00 Paris on the 26th
    const n = await notificationsOf(db, c, 'INVOICE_OVERDUE');
    expect(n).toHaveLength(1);
    expect(n[0].message).toContain('(échéance le 25/10/2026)');
  });

  it('defect 33: ENVOYEE invoices are included; credit notes, deleted, archived, paid (by payments) and other statuses are not', async () => {
    const c = await company(db);
    const due = '2026-02-01T10:00:00Z';
    const included = {
      envoyee: await invoice(db, c, { due, status: 'ENVOYEE', number: 'F-ENV' }),
      impayee: await invoice(db, c, { due, status: 'IMPAYEE' }),
      enRetard: await invoice(db, c, { due, status: 'EN_RETARD' }),
      partlyPaid: await invoice(db, c, { due, total: '100.00' }),
    };
    await payment(db, included.partlyPaid, '60.00');
    const excluded = {
      avoir: await invoice(db, c, { due, type: 'AVOIR' }),
      deleted: await invoice(db, c, { due, deleted: true }),
      archived: await invoice(db, c, { due, archived: true }),
      payee: await invoice(db, c, { due, status: 'PAYEE' }),
      brouillon: await invoice(db, c, { due, status: 'BROUILLON' }),
      annulee: await invoice(db, c, { due, status: 'ANNULEE' }),
      paidByPayments: await invoice(db, c, { due, total: '100.00' }),
      noDueDate: await invoice(db, c, { due: null }),
      notYetDue: await invoice(db, c, { due: '2026-03-01T10:00:00Z' }),
    };
    await payment(db, excluded.paidByPayments, '40.00');
    await payment(db, excluded.paidByPayments, '60.00');
    const res = await runAt(c, '2026-02-10T09:00:00Z');
    const n = await notificationsOf(db, c, 'INVOICE_OVERDUE');
    expect(n.map((x) => x.source_id).sort((a, b) => a - b)).toEqual(Object.values(included).sort((a, b) => a - b));
    for (const id of Object.values(included)) expect(await statusOf(id)).toBe('EN_RETARD');
    expect(await statusOf(excluded.paidByPayments)).toBe('ENVOYEE');
    expect(await statusOf(excluded.avoir)).toBe('ENVOYEE');
    expect(res.stats.invoices).toMatchObject({ candidates: 4, created: 4, alreadyNotified: 0, markedOverdue: 3 });
    const env = n.find((x) => x.source_id === included.envoyee)!;
    expect(env).toMatchObject({
      user_id: null,
      title: 'Facture en retard',
      source_type: 'invoice',
      link_text: 'Voir la facture',
      link_url: `https://app.lokario.fr/app/billing/invoices/${included.envoyee}`,
      message: 'La facture F-ENV est en retard de 9 jours (échéance le 01/02/2026).',
    });
  });

  it('defect 33: an overdue invoice is notified when it becomes overdue and then every 7 days, not every hour or day', async () => {
    const c = await company(db);
    const inv = await invoice(db, c, { due: '2026-01-09T23:00:00Z' }); // due 2026-01-10 in Paris
    // every hour for 25 days
    const start = Date.parse('2026-01-10T00:00:00Z');
    for (let h = 0; h < 25 * 24; h += 1) {
      // hourly through the first two days, then once an hour at :00 only every 6 hours (keeps the test quick)
      if (h > 48 && h % 6 !== 0) continue;
      await runAt(c, new Date(start + h * 3_600_000).toISOString());
    }
    const n = await notificationsOf(db, c, 'INVOICE_OVERDUE');
    const created = await queryRows<{ d: string }>(
      db,
      sql`select dedupe_key as d from notifications where source_id = ${inv} and type = 'INVOICE_OVERDUE' order by id`,
    );
    expect(n).toHaveLength(4); // overdue days 1, 8, 15, 22 (Jan 11, 18, 25, Feb 1)
    expect(created.map((r) => r.d.split(';')[1])).toEqual(['week:0', 'week:1', 'week:2', 'week:3']);
    expect(n.map((x) => /de (\d+) jours?/.exec(x.message)![1])).toEqual(['1', '8', '15', '22']);
  });

  it('overdue tasks: once per (task, due date) for the assignee or the company; moving the due date re-arms; TERMINE excluded', async () => {
    const c = await company(db);
    const alice = await user(db, c);
    const gone = await user(db, c, { active: false });
    const mine = await task(db, c, { due: '2026-04-01T08:00:00Z', assignee: alice, title: 'Relancer le fournisseur' });
    const nobody = await task(db, c, { due: '2026-04-01T08:00:00Z' });
    const inactive = await task(db, c, { due: '2026-04-01T08:00:00Z', assignee: gone });
    await task(db, c, { due: '2026-04-01T08:00:00Z', status: 'TERMINE' });
    await task(db, c, { due: '2026-04-02T08:00:00Z' }); // due "today" at 18:00 Paris: not overdue yet
    await task(db, c, { due: null });
    for (const at of ['2026-04-02T16:00:00Z', '2026-04-02T17:00:00Z', '2026-04-03T09:00:00Z']) await runAt(c, at);
    let n = await notificationsOf(db, c, 'TASK_OVERDUE');
    // the 2026-04-02 task became overdue on the 3rd
    expect(n).toHaveLength(4);
    const byTask = new Map(n.map((x) => [x.source_id, x]));
    expect(byTask.get(mine)).toMatchObject({
      user_id: alice,
      title: 'Tâche en retard',
      link_url: 'https://app.lokario.fr/app/tasks',
      link_text: 'Voir les tâches',
      message: 'La tâche « Relancer le fournisseur » est en retard de 1 jour (échéance le 01/04/2026).',
    });
    expect(byTask.get(nobody)!.user_id).toBeNull();
    expect(byTask.get(inactive)!.user_id).toBeNull();
    // the due date moves: a new notification once it is overdue again, and only once
    await db.execute(sql`update tasks set due_date = '2026-04-05T08:00:00Z' where id = ${mine}`);
    await runAt(c, '2026-04-05T20:00:00Z');
    expect((await notificationsOf(db, c, 'TASK_OVERDUE')).filter((x) => x.source_id === mine)).toHaveLength(1);
    await runAt(c, '2026-04-06T07:00:00Z');
    await runAt(c, '2026-04-07T07:00:00Z');
    n = (await notificationsOf(db, c, 'TASK_OVERDUE')).filter((x) => x.source_id === mine);
    expect(n).toHaveLength(2);
    expect(n[1].message).toContain('(échéance le 05/04/2026)');
  });

  it('defect 32: TASK_CRITICAL is produced for high|critical|urgent tasks due within 48 h, once per (task, due date)', async () => {
    const c = await company(db);
    const now = '2026-05-10T08:00:00Z'; // 10:00 Paris
    const high = await task(db, c, { due: '2026-05-11T07:00:00Z', priority: 'high', title: 'Signer le bail' });
    const urgentToday = await task(db, c, { due: '2026-05-10T06:00:00Z', priority: 'urgent' }); // earlier today: not overdue yet
    const critical = await task(db, c, { due: '2026-05-12T07:00:00Z', priority: 'critical' }); // 47 h ahead
    await task(db, c, { due: '2026-05-12T12:00:00Z', priority: 'critical' }); // 52 h ahead (49 h at the last run)
    await task(db, c, { due: '2026-05-11T07:00:00Z', priority: 'normal' });
    await task(db, c, { due: '2026-05-11T07:00:00Z', priority: 'high', status: 'TERMINE' });
    const res = await runAt(c, now);
    expect(res.stats.criticalTasks).toMatchObject({ candidates: 3, created: 3 });
    await runAt(c, '2026-05-10T09:00:00Z');
    await runAt(c, '2026-05-10T10:00:00Z');
    const n = await notificationsOf(db, c, 'TASK_CRITICAL');
    expect(n.map((x) => x.source_id).sort((a, b) => a - b)).toEqual([high, urgentToday, critical].sort((a, b) => a - b));
    expect(n.find((x) => x.source_id === high)).toMatchObject({
      title: 'Tâche critique à venir',
      link_url: 'https://app.lokario.fr/app/tasks',
      message: 'La tâche « Signer le bail » (priorité haute) arrive à échéance demain (le 11/05/2026).',
    });
    expect(n.find((x) => x.source_id === urgentToday)!.message).toContain("(priorité urgente) arrive à échéance aujourd'hui");
    expect(n.find((x) => x.source_id === critical)!.message).toContain('dans 2 jours');
    await db.execute(sql`update tasks set due_date = '2026-05-11T15:00:00Z' where id = ${high}`);
    await runAt(c, '2026-05-10T11:00:00Z');
    expect((await notificationsOf(db, c, 'TASK_CRITICAL')).filter((x) => x.source_id === high)).toHaveLength(2);
  });

  it('expired trials without a Stripe subscription become INCOMPLETE_EXPIRED; others are untouched', async () => {
    const expired = await company(db);
    const paying = await company(db);
    const running = await company(db);
    await subscription(db, expired, { trialEnd: '2026-01-01T00:00:00Z' });
    await subscription(db, paying, { trialEnd: '2026-01-01T00:00:00Z', stripeId: `sub_${expired}` });
    await subscription(db, running, { trialEnd: '2026-03-01T00:00:00Z' });
    const res = await runAt(expired, '2026-02-01T00:00:00Z');
    expect(res.stats.trials).toEqual({ expired: 1 });
    for (const c of [paying, running]) await runAt(c, '2026-02-01T00:00:00Z');
    const rows = await queryRows<{ company_id: number; status: string }>(
      db,
      sql`select company_id, status::text from subscriptions where company_id in (${expired}, ${paying}, ${running}) order by company_id`,
    );
    expect(Object.fromEntries(rows.map((r) => [r.company_id, r.status]))).toEqual({
      [expired]: 'INCOMPLETE_EXPIRED',
      [paying]: 'TRIALING',
      [running]: 'TRIALING',
    });
  });

  it("today is the company's zone; an unknown zone falls back to Europe/Paris without breaking the statement", async () => {
    const ny = await company(db, { settings: { company_info: { timezone: 'America/New_York' } } });
    const bad = await company(db, { settings: { company_info: { timezone: 'Mars/Olympus_Mons' } } });
    const weird = await company(db, { settings: { company_info: 'not an object' } });
    for (const c of [ny, bad, weird]) await invoice(db, c, { due: '2026-06-01T12:00:00Z' }); // June 1st in both zones
    // 2026-06-01T23:30Z: June 2nd 01:30 in Paris, still June 1st 19:30 in New York
    for (const c of [ny, bad, weird]) await runAt(c, '2026-06-01T23:30:00Z');
    expect(await notificationsOf(db, ny, 'INVOICE_OVERDUE')).toHaveLength(0);
    expect(await notificationsOf(db, bad, 'INVOICE_OVERDUE')).toHaveLength(1);
    expect(await notificationsOf(db, weird, 'INVOICE_OVERDUE')).toHaveLength(1);
    await runAt(ny, '2026-06-02T04:30:00Z'); // 00:30 on June 2nd in New York
    expect(await notificationsOf(db, ny, 'INVOICE_OVERDUE')).toHaveLength(1);
  });

  it('dry run: the plan and counts, nothing written', async () => {
    const c = await company(db);
    const inv = await invoice(db, c, { due: '2026-02-01T10:00:00Z', number: 'F-DRY' });
    await task(db, c, { due: '2026-02-01T10:00:00Z' });
    await subscription(db, c, { trialEnd: '2026-01-01T00:00:00Z' });
    const res = await runAt(c, '2026-02-10T09:00:00Z', true);
    expect(res.stats.invoices).toMatchObject({ candidates: 1, created: 1, alreadyNotified: 0, markedOverdue: 1 });
    expect(res.stats.overdueTasks).toMatchObject({ candidates: 1, created: 1 });
    expect(res.stats.trials).toEqual({ expired: 1 });
    expect(res.plan).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ part: 'invoices', action: 'notify', sourceId: inv, title: 'Facture en retard' }),
        expect.objectContaining({ part: 'trials', action: 'expire_trial', companyId: c }),
      ]),
    );
    expect(await notificationsOf(db, c)).toHaveLength(0);
    expect(await statusOf(inv)).toBe('ENVOYEE');
    expect((await one<{ s: string }>(db, sql`select status::text as s from subscriptions where company_id = ${c}`)).s).toBe('TRIALING');
    // after the real run, the dry run counts them as already notified
    await runAt(c, '2026-02-10T09:00:00Z');
    const again = await runAt(c, '2026-02-10T10:00:00Z', true);
    expect(again.stats.invoices).toMatchObject({ candidates: 1, created: 0, alreadyNotified: 1, markedOverdue: 0 });
  });

  it('10 simultaneous invocations of the job function (no lease) create every notification exactly once', async () => {
    const c = await company(db);
    const alice = await user(db, c);
    for (let i = 0; i < 30; i++) await invoice(db, c, { due: '2026-02-01T10:00:00Z' });
    for (let i = 0; i < 30; i++) await task(db, c, { due: '2026-02-01T10:00:00Z', assignee: alice });
    for (let i = 0; i < 10; i++) await task(db, c, { due: '2026-02-11T10:00:00Z', priority: 'urgent' });
    const results = await Promise.all(Array.from({ length: 10 }, () => runAt(c, '2026-02-10T09:00:00Z')));
    const created = (part: string) => results.reduce((s, r) => s + (r.stats[part] as { created: number }).created, 0);
    expect(created('invoices')).toBe(30);
    expect(created('overdueTasks')).toBe(30);
    expect(created('criticalTasks')).toBe(10);
    const dupes = await queryRows(
      db,
      sql`select type, source_id, count(*) from notifications where company_id = ${c}
      group by type, source_id having count(*) > 1`,
    );
    expect(dupes).toEqual([]);
    expect(await notificationsOf(db, c)).toHaveLength(70);
    const overdue = await one<{ n: number }>(
      db,
      sql`select count(*)::int as n from invoices where company_id = ${c} and status = 'EN_RETARD'`,
    );
    expect(overdue.n).toBe(30);
  });

  it('through runJob (the route contract): real stats in the body; 10 at once → one runs, nine skip', async () => {
    const c = await company(db);
    await invoice(db, c, { due: '2026-02-01T10:00:00Z' });
    const { rt } = testRuntime({ CRON_SECRET: 'x'.repeat(24), FRONTEND_URL: 'https://app.lokario.fr' }, t.handle);
    const params = { dryRun: false, scope: { companyId: c }, nowOverride: new Date('2026-02-10T09:00:00Z') };
    const results = await Promise.all(Array.from({ length: 10 }, () => runJob(overdueRemindersJob, 'http', params, rt)));
    const ran = results.filter((r) => httpStatusOf(r) === 200 && !r.body.skipped);
    expect(ran).toHaveLength(1);
    expect(results.filter((r) => r.body.skipped === true)).toHaveLength(9);
    expect(ran[0].body).toMatchObject({
      success: true,
      job: 'overdue-reminders',
      message: 'Vérification des éléments en retard et des rappels terminée avec succès',
      partial: false,
      stats: { invoices: { candidates: 1, created: 1 }, trials: { expired: 0 } },
    });
    expect(await notificationsOf(db, c, 'INVOICE_OVERDUE')).toHaveLength(1);
  });

  it('inactive companies and companies outside the scope are left alone', async () => {
    const inactive = await company(db, { active: false });
    const other = await company(db);
    await invoice(db, inactive, { due: '2026-02-01T10:00:00Z' });
    await invoice(db, other, { due: '2026-02-01T10:00:00Z' });
    await runAt(inactive, '2026-02-10T09:00:00Z');
    expect(await notificationsOf(db, inactive)).toHaveLength(0);
    expect(await notificationsOf(db, other)).toHaveLength(0); // scope companyId=inactive
  });
});
