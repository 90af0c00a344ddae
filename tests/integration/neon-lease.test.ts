import { afterAll, beforeAll, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePg } from '../helpers/services.js';
import { startNeonProxy, useNeonProxy } from '../helpers/neon-proxy.js';
import { testRuntime } from '../helpers/runtime.js';
import { runJob } from '../../lib/cron/run.js';
import { queryRows } from '../../db/client.js';
import type { Job } from '../../lib/cron/types.js';
import { httpStatusOf } from '../../lib/cron/outcome.js';
import { inboxSyncJob } from '../../lib/jobs/inbox-sync/index.js';
import { followupsJob } from '../../lib/jobs/followups/index.js';

describePg('lease over the Neon serverless driver (WebSocket proxy → real PostgreSQL)', () => {
  let t: TestDatabase;
  let proxy: Awaited<ReturnType<typeof startNeonProxy>>;
  beforeAll(async () => {
    t = await createTestDatabase('neonlease');
    proxy = await startNeonProxy();
    useNeonProxy(proxy.port);
  });
  afterAll(async () => {
    await proxy?.close();
    await t?.drop();
  });

  it('ten invocations, each with its own Neon pool as in production: one runs, nine skip, lease released', async () => {
    let inside = 0;
    let maxInside = 0;
    const job: Job = {
      ...inboxSyncJob,
      async run(ctx) {
        inside++;
        maxInside = Math.max(maxInside, inside);
        // a real transaction over the WebSocket driver while holding the lease
        await ctx.db.transaction(async (tx) => {
          await tx.execute(sql`select pg_sleep(0.3)`);
        });
        inside--;
        return { stats: { ok: 1 }, errors: [], partial: false };
      },
    };
    // no handle given: the runtime opens (and closes) a Neon pool per invocation from the config
    const { rt } = testRuntime({ CRON_SECRET: 'x'.repeat(24), DATABASE_URL: t.url, DATABASE_DRIVER: 'neon' });
    const results = await Promise.all(Array.from({ length: 10 }, () => runJob(job, 'http', { dryRun: false, scope: {} }, rt)));
    expect(results.every((r) => httpStatusOf(r) === 200)).toBe(true);
    expect(results.filter((r) => r.body.skipped === true)).toHaveLength(9);
    expect(maxInside).toBe(1);
    const rows = await queryRows<{ outcome: string; n: number }>(
      t.handle.db,
      sql`select outcome::text, count(*)::int as n from cron_runs group by 1 order by 1`,
    );
    expect(rows).toEqual([
      { outcome: 'skipped', n: 9 },
      { outcome: 'succeeded', n: 1 },
    ]);
    expect(await queryRows(t.handle.db, sql`select * from cron_leases`)).toEqual([]);
  });

  it('a run that throws over Neon releases the lease', async () => {
    const { rt } = testRuntime({ CRON_SECRET: 'x'.repeat(24), DATABASE_URL: t.url, DATABASE_DRIVER: 'neon' });
    const res = await runJob(
      {
        ...followupsJob,
        run: async () => {
          throw new Error('crash');
        },
      },
      'http',
      { dryRun: false, scope: {} },
      rt,
    );
    expect(httpStatusOf(res)).toBe(500);
    expect(await queryRows(t.handle.db, sql`select * from cron_leases`)).toEqual([]);
  });
});
