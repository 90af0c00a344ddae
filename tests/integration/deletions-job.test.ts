import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import pg from 'pg';
import { drizzle } from 'drizzle-orm/node-postgres';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePg } from '../helpers/services.js';
import { testRuntime } from '../helpers/runtime.js';
import { startSmtpSink } from '../../devtools/smtp.js';
import { runJob } from '../../lib/cron/run.js';
import { accountDeletionsJob } from '../../lib/jobs/account-deletions/index.js';
import { queryRows, type Db, type DbHandle } from '../../db/client.js';
import * as schema from '../../db/schema/index.js';
import type { Scope } from '../../lib/cron/types.js';
import {
  DAY_MS,
  checksumExcept,
  dueOwnerCompany,
  dueRequest,
  insertCompany,
  insertUser,
  livingCompany,
  remainingRows,
  seedTenant,
} from './deletions-seed.js';
import { httpStatusOf } from '../../lib/cron/outcome.js';

const NOW = new Date('2026-03-10T02:00:00Z');
const SECRET = 'x'.repeat(24);

describePg('account-deletions job on real PostgreSQL', () => {
  let t: TestDatabase;
  let db: Db;
  let sink: Awaited<ReturnType<typeof startSmtpSink>>;

  beforeAll(async () => {
    t = await createTestDatabase('deljob');
    db = t.handle.db;
    sink = await startSmtpSink();
  });
  afterAll(async () => {
    await sink?.close();
    await t?.drop();
  });
  beforeEach(() => {
    sink.received.length = 0;
  });

  const run = (opts: { dryRun?: boolean; scope?: Scope; env?: Record<string, string>; handle?: DbHandle; now?: Date } = {}) => {
    const { rt } = testRuntime({ CRON_SECRET: SECRET, SMTP_URL: sink.url, ...opts.env }, opts.handle ?? t.handle);
    return runJob(accountDeletionsJob, 'http', { dryRun: opts.dryRun ?? false, scope: opts.scope ?? {}, nowOverride: opts.now ?? NOW }, rt);
  };
  const exists = async (table: string, id: number) =>
    (await queryRows(db, sql`select 1 from ${sql.identifier(table)} where id = ${id}`)).length === 1;
  const clearRequests = () => db.execute(sql`update users set deletion_requested_at = null, deletion_scheduled_at = null`);

  it('single-user deletion in a company that lives on: own notifications deleted, assignments nulled, ownership handed over', async () => {
    await clearRequests();
    const companyId = await insertCompany(db, 'Plomberie Durand');
    const owner = await insertUser(db, {
      companyId,
      role: 'owner',
      fullName: 'Paul Durand',
      createdAt: new Date('2020-01-01Z'),
      ...dueRequest(NOW),
    });
    const older = await insertUser(db, { companyId, role: 'user', createdAt: new Date('2021-01-01Z') });
    const younger = await insertUser(db, { companyId, role: 'user', createdAt: new Date('2023-01-01Z') });
    const [client] = await db.insert(schema.clients).values({ companyId, name: 'Client' }).returning();
    const [type] = await db.insert(schema.appointmentTypes).values({ companyId, name: 'RDV' }).returning();
    const [task] = await db.insert(schema.tasks).values({ companyId, title: 'Devis', assignedToId: owner }).returning();
    const [otherTask] = await db.insert(schema.tasks).values({ companyId, title: 'Autre', assignedToId: older }).returning();
    const [appt] = await db
      .insert(schema.appointments)
      .values({ companyId, clientId: client.id, typeId: type.id, employeeId: owner, startDateTime: NOW })
      .returning();
    const [mine] = await db
      .insert(schema.notifications)
      .values({ companyId, userId: owner, type: 'TASK_OVERDUE', title: 't', message: 'm', sourceId: 1 })
      .returning();
    const [shared] = await db
      .insert(schema.notifications)
      .values({ companyId, userId: null, type: 'TASK_OVERDUE', title: 't', message: 'm', sourceId: 2 })
      .returning();

    const res = await run();
    expect(httpStatusOf(res)).toBe(200);
    expect(res.body.stats).toMatchObject({
      deletedUsers: 1,
      deletedCompanies: 0,
      ownersHandedOver: 1,
      rowsDeleted: { notifications: 1, users: 1 },
      rowsNulled: { tasks: 1, appointments: 1 },
    });
    expect(await exists('users', owner)).toBe(false);
    expect(await exists('notifications', mine.id)).toBe(false);
    expect(await exists('notifications', shared.id)).toBe(true);
    expect(await exists('companies', companyId)).toBe(true);
    const roles = await queryRows<{ id: number; role: string }>(
      db,
      sql`select id, role from users where company_id = ${companyId} order by id`,
    );
    expect(roles).toEqual([
      { id: older, role: 'owner' },
      { id: younger, role: 'user' },
    ]);
    expect((await queryRows(db, sql`select assigned_to_id from tasks where id = ${task.id}`))[0]).toEqual({ assigned_to_id: null });
    expect((await queryRows(db, sql`select assigned_to_id from tasks where id = ${otherTask.id}`))[0]).toEqual({ assigned_to_id: older });
    expect((await queryRows(db, sql`select employee_id from appointments where id = ${appt.id}`))[0]).toEqual({ employee_id: null });
    const [log] = await queryRows<Record<string, unknown>>(
      db,
      sql`select scope, company_id, counts from account_deletion_log where user_id = ${owner}`,
    );
    expect(log).toMatchObject({
      scope: 'user',
      company_id: companyId,
      counts: { deleted: { users: 1, notifications: 1 }, nulled: { tasks: 1, appointments: 1 }, ownerHandedOver: 1 },
    });
    expect(sink.received).toHaveLength(1);
    expect(sink.received[0].raw).toContain('a =C3=A9t=C3=A9 d=C3=A9finitivement supprim=C3=A9'); // quoted-printable French
  });

  it('whole-company deletion: rows of another company that still point at its users (a former employer) are nulled or deleted, not blocking', async () => {
    await clearRequests();
    const formerEmployer = await insertCompany(db, 'Ancien employeur');
    await insertUser(db, { companyId: formerEmployer, role: 'owner' });
    const own = await insertCompany(db, 'Nouvelle entreprise');
    const mover = await insertUser(db, { companyId: own, role: 'owner', ...dueRequest(NOW) });
    const [oldTask] = await db
      .insert(schema.tasks)
      .values({ companyId: formerEmployer, title: 'Ancienne tâche', assignedToId: mover })
      .returning();
    const [oldNotif] = await db
      .insert(schema.notifications)
      .values({ companyId: formerEmployer, userId: mover, type: 'TASK_OVERDUE', title: 't', message: 'm' })
      .returning();
    const res = await run();
    expect(res.body.errors).toEqual([]);
    expect(res.body.stats).toMatchObject({ deletedCompanies: 1, rowsNulled: { tasks: 1 } });
    expect(await exists('companies', own)).toBe(false);
    expect(await exists('companies', formerEmployer)).toBe(true);
    expect(await exists('tasks', oldTask.id)).toBe(true);
    expect((await queryRows(db, sql`select assigned_to_id from tasks where id = ${oldTask.id}`))[0]).toEqual({ assigned_to_id: null });
    expect(await exists('notifications', oldNotif.id)).toBe(false);
  });

  it('a super_admin without company: only the user row', async () => {
    await clearRequests();
    const admin = await insertUser(db, { role: 'super_admin', companyId: null, ...dueRequest(NOW) });
    const res = await run();
    expect(res.body.stats).toMatchObject({ deletedUsers: 1, deletedCompanies: 0, rowsDeleted: { users: 1 } });
    expect(await exists('users', admin)).toBe(false);
    const [log] = await queryRows(db, sql`select scope, company_id from account_deletion_log where user_id = ${admin}`);
    expect(log).toEqual({ scope: 'user', company_id: null });
  });

  it('requests not yet due, cancelled, or never made are left alone', async () => {
    await clearRequests();
    const companyId = await insertCompany(db);
    const notYet = await insertUser(db, {
      companyId,
      deletionRequestedAt: new Date(NOW.getTime() - 10 * DAY_MS),
      deletionScheduledAt: new Date(NOW.getTime() + 20 * DAY_MS),
    });
    const cancelled = await insertUser(db, { companyId, deletionRequestedAt: null, deletionScheduledAt: null });
    const halfCleared = await insertUser(db, {
      companyId,
      deletionRequestedAt: null,
      deletionScheduledAt: new Date(NOW.getTime() - DAY_MS),
    });
    const res = await run();
    expect(res.body.stats).toMatchObject({ due: 0, deletedUsers: 0 });
    for (const id of [notYet, cancelled, halfCleared]) expect(await exists('users', id)).toBe(true);
  });

  it('oldest first, at most DELETION_BATCH per run; what is left is reported', async () => {
    await clearRequests();
    const ids: number[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push(
        await insertUser(db, {
          companyId: null,
          role: 'super_admin',
          deletionRequestedAt: new Date(NOW.getTime() - (40 - i) * DAY_MS),
          deletionScheduledAt: new Date(NOW.getTime() - (10 - i) * DAY_MS),
        }),
      );
    }
    const res = await run({ env: { DELETION_BATCH: '2' } });
    expect(res.body.stats).toMatchObject({ due: 3, deletedUsers: 2, remaining: 1 });
    expect(await exists('users', ids[0])).toBe(false);
    expect(await exists('users', ids[1])).toBe(false);
    expect(await exists('users', ids[2])).toBe(true);
    expect((await run()).body.stats).toMatchObject({ deletedUsers: 1, remaining: 0 });
  });

  it('retained invoices are purged with their lines and payments once retained_until has passed', async () => {
    await clearRequests();
    const [expired] = await db
      .insert(schema.invoices)
      .values({ number: 'OLD-1', status: 'PAYEE', issueDate: new Date('2015-01-01Z'), retainedUntil: new Date('2025-01-01Z') })
      .returning();
    const [young] = await db
      .insert(schema.invoices)
      .values({ number: 'NEW-1', status: 'PAYEE', issueDate: new Date('2024-01-01Z'), retainedUntil: new Date('2034-01-01Z') })
      .returning();
    await db.insert(schema.invoiceLines).values([{ invoiceId: expired.id }, { invoiceId: young.id }]);
    await db.insert(schema.invoicePayments).values([
      { invoiceId: expired.id, amount: '5' },
      { invoiceId: young.id, amount: '5' },
    ]);
    const dry = await run({ dryRun: true });
    expect(dry.body.stats).toMatchObject({ purgedInvoices: 1 });
    expect(await exists('invoices', expired.id)).toBe(true);
    const res = await run();
    expect(res.body.stats).toMatchObject({ purgedInvoices: 1 });
    expect(await exists('invoices', expired.id)).toBe(false);
    expect(await exists('invoices', young.id)).toBe(true);
    expect(await queryRows(db, sql`select invoice_id from invoice_lines where invoice_id in (${expired.id}, ${young.id})`)).toEqual([
      { invoice_id: young.id },
    ]);
    expect(await queryRows(db, sql`select invoice_id from invoice_payments where invoice_id in (${expired.id}, ${young.id})`)).toEqual([
      { invoice_id: young.id },
    ]);
    // a company-scoped run never touches company-less rows
    await db
      .update(schema.invoices)
      .set({ retainedUntil: new Date('2025-01-01Z') })
      .where(sql`id = ${young.id}`);
    expect((await run({ scope: { companyId: 999_999 } })).body.stats).toMatchObject({ purgedInvoices: 0 });
    expect((await run({ scope: { shard: { k: 1, n: 2 } } })).body.stats).toMatchObject({ purgedInvoices: 0 });
    expect((await run({ scope: { shard: { k: 0, n: 2 } } })).body.stats).toMatchObject({ purgedInvoices: 1 });
  });

  it('dryRun: counts per table of what would be deleted; nothing written, nothing sent', async () => {
    await clearRequests();
    const a = await seedTenant(db, 'DRY', NOW, dueOwnerCompany('DRY', NOW));
    const before = await checksumExcept(db, new Map());
    const res = await run({ dryRun: true });
    expect(httpStatusOf(res)).toBe(200);
    expect(res.body.dryRun).toBe(true);
    expect(res.body.stats).toMatchObject({
      deletedUsers: 1,
      deletedCompanies: 1,
      retainedInvoices: 1,
      rowsDeleted: { users: 2, companies: 1, invoices: 1, invoice_lines: 1, clients: 1, inbox_messages: 1, message_attachments: 1 },
    });
    expect(res.body.plan).toEqual([
      expect.objectContaining({ action: 'delete-company', companyId: a.companyId, retained: { invoices: 1 } }),
    ]);
    expect(await checksumExcept(db, new Map())).toEqual(before);
    expect(await queryRows(db, sql`select 1 from account_deletion_log where company_id = ${a.companyId}`)).toEqual([]);
    expect(sink.received).toHaveLength(0);
    // and the real run deletes exactly what the dry run announced
    const real = await run();
    expect(real.body.stats).toMatchObject({ rowsDeleted: (res.body.stats as { rowsDeleted: object }).rowsDeleted });
  });

  it("companyId and shards restrict the selection to the run's tenants", async () => {
    await clearRequests();
    const c1 = await insertCompany(db);
    const c2 = await insertCompany(db);
    const u1 = await insertUser(db, { companyId: c1, ...dueRequest(NOW) });
    const u2 = await insertUser(db, { companyId: c2, ...dueRequest(NOW) });
    const admin = await insertUser(db, { companyId: null, role: 'super_admin', ...dueRequest(NOW) });
    expect((await run({ scope: { companyId: c1 } })).body.stats).toMatchObject({ deletedUsers: 1 });
    expect(await exists('users', u1)).toBe(false);
    expect(await exists('users', u2)).toBe(true);
    expect(await exists('users', admin)).toBe(true);
    const otherShard = c2 % 2 === 0 ? 1 : 0;
    await run({ scope: { shard: { k: otherShard, n: 2 } } });
    expect(await exists('users', u2)).toBe(true);
    await run({ scope: { shard: { k: 1 - otherShard, n: 2 } } });
    expect(await exists('users', u2)).toBe(false);
    expect(await exists('users', admin)).toBe(otherShard !== 0 && 1 - otherShard !== 0);
  });

  it('a failed confirmation email is logged and counted; the deletion stands', async () => {
    await clearRequests();
    const u = await insertUser(db, { companyId: null, role: 'super_admin', ...dueRequest(NOW) });
    sink.failNext(1, 550);
    const res = await run();
    expect(httpStatusOf(res)).toBe(200);
    expect(res.body.stats).toMatchObject({ deletedUsers: 1, confirmationsSent: 0, emailFailures: 1 });
    expect(res.body.errors).toEqual([expect.objectContaining({ scope: 'confirmation', code: 'smtp_rejected' })]);
    expect(await exists('users', u)).toBe(false);
    expect(await queryRows(db, sql`select 1 from account_deletion_log where user_id = ${u}`)).toHaveLength(1);
  });

  it('defect 29: a real single-user company (subscription, notifications, mailbox, appointment types, a viewed unsigned quote, kept invoices) is deleted, not rolled back every night', async () => {
    await clearRequests();
    const a = await seedTenant(db, 'D29', NOW, dueOwnerCompany('D29', NOW));
    const res = await run();
    expect(res.body.errors).toEqual([]);
    expect(res.body.stats).toMatchObject({ deletedCompanies: 1, failures: 0 });
    const left = await remainingRows(db, a.ids);
    expect(Object.keys(left).sort()).toEqual(['invoice_lines', 'invoice_payments', 'invoices']);
    expect(await exists('companies', a.companyId)).toBe(false);
  });

  it('defect 29: a multi-user deletion is not blocked by the rows that point at the user', async () => {
    await clearRequests();
    const b = await seedTenant(db, 'D29B', NOW, livingCompany('D29B'));
    const leaving = await insertUser(db, { companyId: b.companyId, ...dueRequest(NOW) });
    await db
      .insert(schema.notifications)
      .values({ companyId: b.companyId, userId: leaving, type: 'TASK_CRITICAL', title: 't', message: 'm' });
    await db
      .update(schema.tasks)
      .set({ assignedToId: leaving })
      .where(sql`company_id = ${b.companyId}`);
    await db
      .update(schema.appointments)
      .set({ employeeId: leaving })
      .where(sql`company_id = ${b.companyId}`);
    const res = await run();
    expect(res.body.errors).toEqual([]);
    expect(res.body.stats).toMatchObject({ deletedUsers: 1, deletedCompanies: 0 });
    expect(await exists('users', leaving)).toBe(false);
  });

  it('defect 30: mailbox credentials, attachments and settings go with the company; kept invoices lose their client link and notes', async () => {
    await clearRequests();
    const a = await seedTenant(db, 'D30', NOW, dueOwnerCompany('D30', NOW));
    await run();
    expect(
      await queryRows(db, sql`select 1 from inbox_integrations where email_password like 'gAAAAA%' and company_id = ${a.companyId}`),
    ).toEqual([]);
    expect(await exists('inbox_integrations', a.ids.get('inbox_integrations')![0])).toBe(false);
    expect(await exists('message_attachments', a.ids.get('message_attachments')![0])).toBe(false);
    expect(await exists('company_settings', a.ids.get('company_settings')![0])).toBe(false);
    const [inv] = await queryRows(db, sql`select client_id, company_id, notes from invoices where id = ${a.ids.get('invoices')![0]}`);
    expect(inv).toEqual({ client_id: null, company_id: null, notes: null });
  });

  it('defect 31: deletes are set-based: the statement count does not grow with the number of rows', async () => {
    await clearRequests();
    let statements = 0;
    const pool = new pg.Pool({ connectionString: t.url, max: 4 });
    const counted = drizzle({
      client: pool,
      schema,
      logger: {
        logQuery: () => {
          statements++;
        },
      },
    }) as unknown as Db;
    const handle: DbHandle = { db: counted, driver: 'pg', close: async () => {} };
    const many = (n: number) => Array.from({ length: n }, (_, i) => i);
    try {
      const small = await seedTenant(db, 'S31', NOW, dueOwnerCompany('S31', NOW));
      statements = 0;
      await run({ handle });
      const smallCount = statements;
      expect(await exists('companies', small.companyId)).toBe(false);

      const bigOverrides = {
        ...dueOwnerCompany('B31', NOW),
        clients: () => many(40).map((i) => ({ name: `Client ${i}` })),
        invoices: () => many(30).map((i) => ({ number: `F-${i}`, status: i % 3 ? 'PAYEE' : 'BROUILLON' })),
        invoice_lines: (ids: Map<string, number[]>) => ids.get('invoices')!.flatMap((invoiceId) => [{ invoiceId }, { invoiceId }]),
        invoice_payments: (ids: Map<string, number[]>) => ids.get('invoices')!.map((invoiceId) => ({ invoiceId, amount: '1' })),
        inbox_messages: (ids: Map<string, number[]>) =>
          many(60).map((i) => ({ conversationId: ids.get('conversations')![0], fromName: `x${i}`, content: 'c' })),
        tasks: () => many(25).map((i) => ({ title: `t${i}` })),
      };
      const big = await seedTenant(db, 'B31', NOW, bigOverrides as never);
      statements = 0;
      const res = await run({ handle });
      expect(res.body.stats).toMatchObject({ deletedCompanies: 1 });
      expect(await exists('companies', big.companyId)).toBe(false);
      expect(statements).toBe(smallCount);
    } finally {
      await pool.end();
    }
  });

  it('defect 31: a failing account is reported (errors, failures, ledger) with a 200, and the other accounts are still deleted', async () => {
    await clearRequests();
    const bad = await seedTenant(db, 'F31', NOW, dueOwnerCompany('F31', NOW));
    const good = await insertUser(db, { companyId: null, role: 'super_admin', ...dueRequest(NOW) });
    // a row the deletion order cannot know about blocks this one company (as the original's FKs did)
    await db.execute(sql`create table legacy_blocker (company_id integer not null references companies(id))`);
    await db.execute(sql`insert into legacy_blocker values (${bad.companyId})`);
    try {
      const res = await run();
      expect(httpStatusOf(res)).toBe(200);
      expect(res.body.stats).toMatchObject({ deletedUsers: 1, failures: 1 });
      expect(res.body.errors).toEqual([
        expect.objectContaining({ scope: 'account', id: bad.ids.get('users')![0], code: 'database_error' }),
      ]);
      expect(await exists('users', good)).toBe(false);
      expect(await exists('companies', bad.companyId)).toBe(true);
      const [ledger] = await queryRows<{ outcome: string; stats: { failures: number } }>(
        db,
        sql`select outcome::text, stats from cron_runs where id = ${res.body.runId as string}`,
      );
      expect(ledger.outcome).toBe('succeeded');
      expect(ledger.stats.failures).toBe(1);
    } finally {
      await db.execute(sql`drop table legacy_blocker`);
    }
    expect((await run()).body.stats).toMatchObject({ deletedCompanies: 1, failures: 0 });
  });
});
