import { afterAll, beforeAll, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePg } from '../helpers/services.js';
import { testRuntime } from '../helpers/runtime.js';
import { runJob } from '../../lib/cron/run.js';
import { acquireLease, releaseLease } from '../../lib/cron/runs.js';
import { queryRows } from '../../db/client.js';
import type { Job } from '../../lib/cron/types.js';
import { httpStatusOf } from '../../lib/cron/outcome.js';
import { overdueRemindersJob } from '../../lib/jobs/overdue-reminders/index.js';
import { followupsJob } from '../../lib/jobs/followups/index.js';

describePg('lease on real PostgreSQL (pg driver)', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase('lease');
  });
  afterAll(async () => {
    await t?.drop();
  });

  it('ten runs started together: exactly one runs, the others answer skipped', async () => {
    let running = 0;
    let maxRunning = 0;
    const slowJob: Job = {
      ...followupsJob,
      async run() {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await new Promise((r) => setTimeout(r, 300));
        running--;
        return { stats: { done: 1 }, errors: [], partial: false };
      },
    };
    const { rt } = testRuntime({ CRON_SECRET: 'x'.repeat(24), DATABASE_URL: t.url }, t.handle);
    const results = await Promise.all(Array.from({ length: 10 }, () => runJob(slowJob, 'http', { dryRun: false, scope: {} }, rt)));
    const ran = results.filter((r) => httpStatusOf(r) === 200 && !r.body.skipped);
    const skipped = results.filter((r) => r.body.skipped === true);
    expect(ran).toHaveLength(1);
    expect(skipped).toHaveLength(9);
    expect(maxRunning).toBe(1);
    const rows = await queryRows<{ outcome: string; n: number }>(
      t.handle.db,
      sql`select outcome::text, count(*)::int as n from cron_runs group by outcome order by outcome::text`,
    );
    expect(rows).toEqual([
      { outcome: 'skipped', n: 9 },
      { outcome: 'succeeded', n: 1 },
    ]);
    const leases = await queryRows(t.handle.db, sql`select * from cron_leases`);
    expect(leases).toEqual([]); // released in finally
  });

  it('an expired lease is taken over; a live one is not', async () => {
    const db = t.handle.db;
    expect(await acquireLease(db, 'test-job', 'run-a', 60)).toBe(true);
    expect(await acquireLease(db, 'test-job', 'run-b', 60)).toBe(false);
    await db.execute(sql`update cron_leases set expires_at = now() - interval '1 second' where job = 'test-job'`);
    expect(await acquireLease(db, 'test-job', 'run-b', 60)).toBe(true);
    await releaseLease(db, 'test-job', 'run-a'); // not the holder any more: no effect
    expect(await acquireLease(db, 'test-job', 'run-c', 60)).toBe(false);
    await releaseLease(db, 'test-job', 'run-b');
    expect(await acquireLease(db, 'test-job', 'run-c', 60)).toBe(true);
  });

  it('a run that throws releases its lease and is recorded as failed with a 500', async () => {
    const boom: Job = {
      ...overdueRemindersJob,
      run: async () => {
        throw new Error('boom');
      },
    };
    const { rt } = testRuntime({ CRON_SECRET: 'x'.repeat(24) }, t.handle);
    const res = await runJob(boom, 'http', { dryRun: false, scope: {} }, rt);
    expect(httpStatusOf(res)).toBe(500);
    expect(res.body).toMatchObject({ success: false, job: 'overdue-reminders', error: 'job_failed', message: 'boom' });
    const leases = await queryRows(t.handle.db, sql`select * from cron_leases where job = 'overdue-reminders'`);
    expect(leases).toEqual([]);
    const again = await runJob(
      { ...boom, run: async () => ({ stats: {}, errors: [], partial: false }) },
      'http',
      { dryRun: false, scope: {} },
      rt,
    );
    expect(httpStatusOf(again)).toBe(200);
    expect(again.body.skipped).toBeUndefined();
  });
});
