import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { openPgliteSnapshot } from '../helpers/pglite.js';
import { testRuntime } from '../helpers/runtime.js';
import { runJob } from '../../lib/cron/run.js';
import { acquireLease } from '../../lib/cron/runs.js';
import { readStatus } from '../../lib/cron/status.js';
import { queryRows, type DbHandle } from '../../db/client.js';
import { httpStatusOf } from '../../lib/cron/outcome.js';
import { overdueRemindersJob } from '../../lib/jobs/overdue-reminders/index.js';
import { JOB_REGISTRY } from '../../lib/jobs/registry.js';

describe('the embedded database (PGlite) runs the same drizzle code', () => {
  let h: DbHandle;
  beforeAll(async () => {
    h = await openPgliteSnapshot();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('is migrated: every table of the schema exists', async () => {
    const rows = await queryRows<{ n: number }>(
      h.db,
      sql`select count(*)::int as n from information_schema.tables where table_schema = 'public' and table_name in ('cron_runs', 'cron_leases', 'followups', 'inbox_messages', 'appointment_reminders', 'notifications')`,
    );
    expect(rows[0].n).toBe(6);
  });

  it('runs a job through the contract: ledger row, lease taken and released, status readable', async () => {
    const { rt } = testRuntime({}, h);
    const res = await runJob(
      { ...overdueRemindersJob, run: async () => ({ stats: { n: 1 }, errors: [], partial: false }) },
      'cli',
      { dryRun: false, scope: {} },
      rt,
    );
    expect(httpStatusOf(res)).toBe(200);
    expect(await queryRows(h.db, sql`select * from cron_leases`)).toEqual([]);
    expect(await acquireLease(h.db, 'x', 'a', 60)).toBe(true);
    expect(await acquireLease(h.db, 'x', 'b', 60)).toBe(false);
    const status = await readStatus(h.db, new Date(), JOB_REGISTRY);
    expect(status.jobs.find((j) => j.job === 'overdue-reminders')?.health).toBe('healthy');
  });
});
