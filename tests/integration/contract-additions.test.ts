import { afterAll, beforeAll, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePg } from '../helpers/services.js';
import { testRuntime } from '../helpers/runtime.js';
import { serveHandler } from '../helpers/http.js';
import { startSmtpSink } from '../../devtools/smtp.js';
import { cronRoute } from '../../lib/cron/route.js';
import { runJob } from '../../lib/cron/run.js';
import { scopeFilter } from '../../lib/cron/scope.js';
import { queryRows } from '../../db/client.js';
import { companies } from '../../db/schema/index.js';
import { parseConfig } from '../../lib/config.js';
import { createMailFactory } from '../../lib/mail/transport.js';
import type { Job, JobContext } from '../../lib/cron/types.js';
import { overdueRemindersJob } from '../../lib/jobs/overdue-reminders/index.js';

const SECRET = 'contract-additions-secret-0123';
const auth = { headers: { authorization: `Bearer ${SECRET}` } };

describePg('preview safety, shards and the clock override (SPEC §2.3, §2.8, §2.9)', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase('additions');
    await t.handle.db.execute(
      sql`insert into companies (id, code, name) select g, 'C' || g, 'Société ' || g from generate_series(1, 12) g`,
    );
  });
  afterAll(async () => {
    await t?.drop();
  });

  const seen: Record<string, JobContext[]> = {};
  const recorder: Job = {
    ...overdueRemindersJob,
    async run(ctx) {
      (seen[ctx.runId] ??= []).push(ctx);
      const rows = await queryRows<{ id: number }>(
        ctx.db,
        sql`select id from ${companies} where ${scopeFilter(companies.id, ctx.scope)} order by id`,
      );
      await new Promise((r) => setTimeout(r, 300)); // hold the lease while the other shard runs
      return { stats: { companies: rows.map((r) => r.id) }, errors: [], partial: false };
    },
  };

  it('preview: a dry run unless PREVIEW_SIDE_EFFECTS=on, and the response says so', async () => {
    for (const [env, expectDry] of [
      [{}, true],
      [{ PREVIEW_SIDE_EFFECTS: 'on' }, false],
    ] as const) {
      const { rt } = testRuntime({ VERCEL_ENV: 'preview', CRON_SECRET: SECRET, ...env }, t.handle);
      const s = await serveHandler(cronRoute(recorder, () => rt));
      try {
        const body = await (await fetch(`${s.url}/`, auth)).json();
        expect(body.success).toBe(true);
        expect(body.dryRun).toBe(expectDry);
        expect(body.previewDryRun ?? false).toBe(expectDry);
        const ctx = seen[body.runId][0];
        expect(ctx.dryRun).toBe(expectDry);
      } finally {
        await s.close();
      }
    }
  });

  it('preview: the secret is required (403 without it, 500 misconfigured when unset)', async () => {
    const { rt } = testRuntime({ VERCEL_ENV: 'preview', CRON_SECRET: SECRET }, t.handle);
    const s = await serveHandler(cronRoute(recorder, () => rt));
    try {
      expect((await fetch(`${s.url}/`)).status).toBe(403);
    } finally {
      await s.close();
    }
    const { rt: rt2 } = testRuntime({ VERCEL_ENV: 'preview' }, t.handle);
    const s2 = await serveHandler(cronRoute(recorder, () => rt2));
    try {
      expect((await fetch(`${s2.url}/`)).status).toBe(500);
    } finally {
      await s2.close();
    }
  });

  it('MAIL_REDIRECT_TO: every email goes to one address, the intended recipient in X-Original-To', async () => {
    const sink = await startSmtpSink();
    try {
      const factory = createMailFactory(parseConfig({ SMTP_URL: sink.url, MAIL_REDIRECT_TO: 'staging@lokario.test' }));
      await factory.platform().send({
        from: 'Lokario <noreply@lokario.fr>',
        to: 'client@example.com',
        subject: 'Relance',
        text: 'Bonjour',
        messageId: '<redirect-test@lokario.fr>',
      });
      factory.closeAll();
      expect(sink.received).toHaveLength(1);
      expect(sink.received[0].to).toEqual(['staging@lokario.test']);
      expect(sink.received[0].header('X-Original-To')).toBe('client@example.com');
    } finally {
      await sink.close();
    }
  });

  it('two shards at the same time hold different leases and touch disjoint companies that cover all', async () => {
    const { rt } = testRuntime({ CRON_SECRET: SECRET }, t.handle);
    const leaseKeys = new Set<string>();
    const spy = setInterval(async () => {
      for (const r of await queryRows<{ job: string }>(t.handle.db, sql`select job from cron_leases`)) leaseKeys.add(r.job);
    }, 50);
    const [a, b] = await Promise.all([0, 1].map((k) => runJob(recorder, 'http', { dryRun: false, scope: { shard: { k, n: 2 } } }, rt)));
    clearInterval(spy);
    expect(a.body.skipped).toBeUndefined();
    expect(b.body.skipped).toBeUndefined();
    const ca = (a.body.stats as { companies: number[] }).companies;
    const cb = (b.body.stats as { companies: number[] }).companies;
    expect(ca).toEqual([2, 4, 6, 8, 10, 12]);
    expect(cb).toEqual([1, 3, 5, 7, 9, 11]);
    expect(leaseKeys).toEqual(new Set(['overdue-reminders#0/2', 'overdue-reminders#1/2']));
    // the same shard twice at once: one is skipped
    const same = await Promise.all([0, 0].map((k) => runJob(recorder, 'http', { dryRun: false, scope: { shard: { k, n: 2 } } }, rt)));
    expect(same.filter((r) => r.body.skipped === true)).toHaveLength(1);
  });

  it('invalid shard combinations are a 400', async () => {
    const { rt } = testRuntime({ CRON_SECRET: SECRET }, t.handle);
    const s = await serveHandler(cronRoute(recorder, () => rt));
    try {
      for (const q of ['shard=0', 'shards=3', 'shard=3&shards=3', 'shard=-1&shards=3', 'shard=0&shards=65', 'shard=a&shards=2']) {
        expect((await fetch(`${s.url}/?${q}`, auth)).status, q).toBe(400);
      }
    } finally {
      await s.close();
    }
  });

  it('now= sets the job clock locally; leases and the ledger keep the real clock', async () => {
    const { rt } = testRuntime({ CRON_SECRET: SECRET }, t.handle);
    const s = await serveHandler(cronRoute(recorder, () => rt));
    try {
      const before = Date.now();
      const body = await (await fetch(`${s.url}/?now=2026-03-29T00:30:00Z`, auth)).json();
      expect(body.now).toBe('2026-03-29T00:30:00.000Z');
      expect(seen[body.runId][0].now.toISOString()).toBe('2026-03-29T00:30:00.000Z');
      const [run] = await queryRows<{ started_at: Date }>(t.handle.db, sql`select started_at from cron_runs where id = ${body.runId}`);
      expect(new Date(run.started_at).getTime()).toBeGreaterThanOrEqual(before - 1000);
    } finally {
      await s.close();
    }
  });

  it('now= is refused in production and on a preview deployment', async () => {
    for (const env of [{ NODE_ENV: 'production' }, { VERCEL_ENV: 'preview' }, { VERCEL_ENV: 'production' }]) {
      const { rt } = testRuntime({ CRON_SECRET: SECRET, ...env }, t.handle);
      const s = await serveHandler(cronRoute(recorder, () => rt));
      try {
        const r = await fetch(`${s.url}/?now=2026-03-29T00:30:00Z`, auth);
        expect(r.status).toBe(400);
        expect(JSON.stringify(await r.json())).toContain('now');
      } finally {
        await s.close();
      }
    }
  });
});
