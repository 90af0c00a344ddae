/**
 * The heartbeat lease on real PostgreSQL and a real SMTP server: a live run keeps its lease far
 * past the TTL, a run that loses its lease stops and the next one sends the rest once, a takeover
 * closes the dead holder's ledger row, and every row lease follows its holder's heartbeat. The
 * kill -9 of a real process is tests/integration/send-crash.test.ts (default timings).
 */
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePg } from '../helpers/services.js';
import { testRuntime } from '../helpers/runtime.js';
import { startSmtpSink } from '../../devtools/smtp.js';
import { queryRows, type Db } from '../../db/client.js';
import { runJob } from '../../lib/cron/run.js';
import { CRASHED_RUN_ERROR, acquireLease, recordRunStart, renewLease, type LeaseTiming } from '../../lib/cron/runs.js';
import { rowLeaseFree } from '../../db/liveness.js';
import { followupsJob } from '../../lib/jobs/followups/index.js';
import { insertDueInvoiceFollowups } from '../helpers/seed.js';
import { seedCompany, wipe } from './followups-fixtures.js';

const NOW = new Date('2026-03-11T10:00:00.000Z');
// a TTL of one second, four beats per TTL: a run of several seconds outlives many TTLs
const FAST: LeaseTiming = { ttlSec: 1, everySec: 0.25 };
const params = { dryRun: false, scope: {}, nowOverride: NOW };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const sentSteps = async (db: Db) =>
  (
    await queryRows<{ n: number }>(
      db,
      sql`
  select count(*)::int as n from followup_history where step = 1 and delivery = 'sent'`,
    )
  )[0].n;

describePg('heartbeat lease', () => {
  let t: TestDatabase;
  let sink: Awaited<ReturnType<typeof startSmtpSink>>;
  beforeAll(async () => {
    t = await createTestDatabase('heartbeat_lease');
    // each answer to DATA waits 200 ms: 120 emails take several seconds
    sink = await startSmtpSink({ delayMs: 200 });
  });
  afterAll(async () => {
    await sink?.close();
    await t?.drop();
  });
  beforeEach(async () => {
    await wipe(t.handle.db);
    sink.received.length = 0;
  });

  const seed = async (count: number) => {
    const s = await seedCompany(t.handle.db);
    return insertDueInvoiceFollowups(t.handle.db, s, {
      count,
      numberPrefix: `HB-${s.companyId}-`,
      totalTtc: 500,
      dueDate: '2026-01-01T00:00:00Z',
    });
  };

  it(
    'a live run keeps its lease for its whole run, many TTLs long: a second call meanwhile is skipped, and every email goes once',
    { timeout: 60_000 },
    async () => {
      const ids = await seed(120);
      const { rt } = testRuntime({ SMTP_URL: sink.url }, t.handle, { leaseTiming: FAST });
      const first = runJob(followupsJob, 'http', params, rt);
      await sleep(3_000); // three TTLs: without the heartbeat the lease would have expired
      expect(sink.received.length).toBeLessThan(ids.length);
      const second = await runJob(followupsJob, 'http', params, rt);
      expect(second.body).toMatchObject({ skipped: true, reason: 'already-running' });
      const res = await first;
      expect(res.body).toMatchObject({ success: true, partial: false });
      expect(await sentSteps(t.handle.db)).toBe(ids.length);
      expect(sink.received.length).toBe(ids.length);
      const [run] = await queryRows<{ beat_after_start_ms: number }>(
        t.handle.db,
        sql`
      select (extract(epoch from heartbeat_at - started_at) * 1000)::int as beat_after_start_ms from cron_runs where id = ${res.body.runId as string}`,
      );
      expect(run.beat_after_start_ms).toBeGreaterThan(2_000);
    },
  );

  it(
    'a run that loses its lease stops: nothing new is claimed, its outcome says lease_lost, and the next run sends the rest exactly once',
    { timeout: 60_000 },
    async () => {
      const ids = await seed(120);
      const { rt } = testRuntime({ SMTP_URL: sink.url }, t.handle, { leaseTiming: FAST });
      const first = runJob(followupsJob, 'http', params, rt);
      while (sink.received.length < 10) await sleep(20);
      // what a takeover leaves behind: the lease is another run's
      await t.handle.db.execute(sql`update cron_leases set holder = 'someone-else'`);
      const res = await first;
      expect(res.body).toMatchObject({ success: true, partial: true });
      expect((res.body.errors as { code: string }[]).map((e) => e.code)).toContain('lease_lost');
      const sentByFirst = await sentSteps(t.handle.db);
      expect(sentByFirst).toBeLessThan(ids.length);
      const left = await queryRows<{ n: number }>(
        t.handle.db,
        sql`select count(*)::int as n from followup_history where delivery = 'sending'`,
      );
      expect(left[0].n).toBe(0); // what it had claimed but not sent was given back

      await t.handle.db.execute(sql`delete from cron_leases`);
      const next = await runJob(followupsJob, 'http', params, rt);
      expect(next.body).toMatchObject({ success: true, partial: false });
      expect(await sentSteps(t.handle.db)).toBe(ids.length);
      const perFollowup = new Map<string, number>();
      for (const m of sink.received) perFollowup.set(m.messageId ?? '', (perFollowup.get(m.messageId ?? '') ?? 0) + 1);
      expect(perFollowup.size).toBe(ids.length);
      expect([...perFollowup.values()].every((n) => n === 1)).toBe(true);
    },
  );

  it('taking over a silent holder closes its ledger row as failed at its last beat; the old holder can no longer renew', async () => {
    const db = t.handle.db;
    await recordRunStart(db, { id: 'silent-1', job: 'followups', trigger: 'http', dryRun: false, startedAt: new Date() });
    expect(await acquireLease(db, 'followups', 'silent-1', 1)).toBe(true);
    expect(await renewLease(db, 'followups', 'silent-1', 1)).toBe(true);
    expect(await acquireLease(db, 'followups', 'next-1', 1)).toBe(false); // alive: not taken
    await sleep(1_100); // silent for one TTL
    expect(await acquireLease(db, 'followups', 'next-1', 30)).toBe(true);
    const [row] = await queryRows<{ outcome: string; error: string; at_last_beat: boolean }>(
      db,
      sql`
      select outcome::text, error, finished_at = heartbeat_at as at_last_beat from cron_runs where id = 'silent-1'`,
    );
    expect(row).toEqual({ outcome: 'failed', error: CRASHED_RUN_ERROR, at_last_beat: true });
    expect(await renewLease(db, 'followups', 'silent-1', 30)).toBe(false);
  });

  it('a row lease (a mailbox, the bounce mailbox) is free when expired, when its holder finished or went silent, and only then', async () => {
    const db = t.handle.db;
    await db.execute(sql`insert into cron_runs (id, job, trigger, started_at, outcome, heartbeat_at) values
      ('alive', 'inbox-sync', 'http', now(), 'running', now()),
      ('silent', 'inbox-sync', 'http', now() - interval '2 minutes', 'running', now() - interval '31 seconds'),
      ('done', 'inbox-sync', 'http', now(), 'succeeded', now())`);
    await db.execute(sql`update cron_runs set finished_at = now() where id = 'done'`);
    const free = async (until: string | null, holder: string | null) =>
      (
        await queryRows<{ free: boolean }>(
          db,
          sql`
      select ${rowLeaseFree(sql`${until}::timestamptz`, sql`${holder}::text`)} as free`,
        )
      )[0].free;
    const later = new Date(Date.now() + 10 * 60_000).toISOString();
    const earlier = new Date(Date.now() - 1_000).toISOString();
    expect(await free(null, null)).toBe(true);
    expect(await free(earlier, 'alive')).toBe(true);
    expect(await free(later, 'alive')).toBe(false);
    expect(await free(later, 'silent')).toBe(true);
    expect(await free(later, 'done')).toBe(true);
    expect(await free(later, null)).toBe(false); // no holder recorded: its bound decides
    expect(await free(later, 'no-such-run')).toBe(false);
  });
});
