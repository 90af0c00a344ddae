import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePg } from '../helpers/services.js';
import { testRuntime } from '../helpers/runtime.js';
import { startBadSmtp, startSmtpSink } from '../../devtools/smtp.js';
import { neonHandle, startNeonProxy, useNeonProxy } from '../helpers/neon-proxy.js';
import { runJob } from '../../lib/cron/run.js';
import { readStatus } from '../../lib/cron/status.js';
import { followupsJob } from '../../lib/jobs/followups/index.js';
import { queryRows, type Db } from '../../db/client.js';
import { followupRow, handContext, history, seedCompany, seedFollowup, seedInvoice, wipe } from './followups-fixtures.js';
import { httpStatusOf } from '../../lib/cron/outcome.js';
import { JOB_REGISTRY } from '../../lib/jobs/registry.js';

const SECRET = 'x'.repeat(24);

/** N due follow-ups spread over `companies` companies (PROFESSIONAL: no quota). */
async function seedDue(db: Db, companies: number, perCompany: number) {
  const ids: number[] = [];
  for (let c = 0; c < companies; c++) {
    const s = await seedCompany(db);
    for (let i = 0; i < perCompany; i++) {
      const inv = await seedInvoice(db, s);
      ids.push(await seedFollowup(db, s, { sourceId: inv }));
    }
  }
  return ids;
}

const count = async (db: Db, table: string) =>
  (await queryRows<{ n: number }>(db, sql`select count(*)::int as n from ${sql.raw(table)}`))[0].n;

describePg('followups: each step is sent exactly once', () => {
  let t: TestDatabase;
  let sink: Awaited<ReturnType<typeof startSmtpSink>>;
  beforeAll(async () => {
    t = await createTestDatabase('fu_once');
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

  const NOW = new Date('2026-03-11T10:00:00Z');

  it('defect 24: 10 simultaneous invocations through runJob → every due follow-up received once', async () => {
    const db = t.handle.db;
    const ids = await seedDue(db, 3, 10);
    const { rt } = testRuntime({ CRON_SECRET: SECRET, SMTP_URL: sink.url }, t.handle);
    const results = await Promise.all(
      Array.from({ length: 10 }, () => runJob(followupsJob, 'http', { dryRun: false, scope: {}, nowOverride: NOW }, rt)),
    );
    expect(results.every((r) => httpStatusOf(r) === 200)).toBe(true);
    expect(sink.received).toHaveLength(ids.length);
    expect(new Set(sink.received.map((m) => m.messageId)).size).toBe(ids.length);
    expect(await count(db, 'inbox_messages')).toBe(ids.length);
    // the same run repeated: nothing more
    await runJob(followupsJob, 'http', { dryRun: false, scope: {}, nowOverride: NOW }, rt);
    expect(sink.received).toHaveLength(ids.length);
  });

  it('defect 24: 10 invocations of the job function at once, without the lease (pg driver) → each once', async () => {
    const db = t.handle.db;
    const ids = await seedDue(db, 4, 15);
    const runs = await Promise.all(Array.from({ length: 10 }, () => followupsJob.run(handContext(db, { SMTP_URL: sink.url }, NOW))));
    expect(sink.received).toHaveLength(ids.length);
    expect(new Set(sink.received.map((m) => m.messageId)).size).toBe(ids.length);
    const sentTotal = runs.reduce((n, r) => n + (r.stats.sent as number), 0);
    expect(sentTotal).toBe(ids.length);
    const h = await history(db);
    expect(h).toHaveLength(ids.length);
    expect(h.every((x) => x.delivery === 'sent' && x.step === 1 && x.attempts === 1)).toBe(true);
    expect(await count(db, 'inbox_messages')).toBe(ids.length);
    // one conversation per client, not one per run
    expect(await count(db, 'conversations')).toBe(4);
  });

  it('the same concurrency over the Neon driver (WebSocket proxy) → each once', async () => {
    const proxy = await startNeonProxy();
    useNeonProxy(proxy.port);
    const handles = Array.from({ length: 5 }, () => neonHandle(t.url, 4));
    try {
      const ids = await seedDue(t.handle.db, 2, 10);
      await Promise.all(handles.map((h) => followupsJob.run(handContext(h.db, { SMTP_URL: sink.url }, NOW))));
      expect(sink.received).toHaveLength(ids.length);
      expect(new Set(sink.received.map((m) => m.messageId)).size).toBe(ids.length);
    } finally {
      await Promise.all(handles.map((h) => h.close()));
      await proxy.close();
    }
  });

  it('SMTP 4xx then success → one email, same Message-ID, attempts 2; nothing recorded as sent before (defect 22)', async () => {
    const db = t.handle.db;
    const [f] = await seedDue(db, 1, 1);
    sink.failNext(1, 451);
    const env = { CRON_SECRET: SECRET, SMTP_URL: sink.url };
    const first = await runJob(followupsJob, 'http', { dryRun: false, scope: {}, nowOverride: NOW }, testRuntime(env, t.handle).rt);
    expect((first.body.stats as any).failedTries).toBe(1);
    expect(first.body.errors).toEqual([expect.objectContaining({ scope: 'followup', id: f, code: 'smtp_temporary' })]);
    let h = await history(db, f);
    expect(h).toEqual([expect.objectContaining({ step: 1, delivery: 'failed', attempts: 1 })]);
    expect(h[0].error).toMatch(/451/);
    // no phantom outbound message, no conversation for a send that failed
    expect(await count(db, 'inbox_messages')).toBe(0);
    expect(await count(db, 'conversations')).toBe(0);

    const early = await runJob(
      followupsJob,
      'http',
      { dryRun: false, scope: {}, nowOverride: new Date(NOW.getTime() + 10 * 60_000) },
      testRuntime(env, t.handle).rt,
    );
    expect((early.body.stats as any).due).toBe(0); // the due date follows the back-off (15 min)
    await runJob(
      followupsJob,
      'http',
      { dryRun: false, scope: {}, nowOverride: new Date(NOW.getTime() + 16 * 60_000) },
      testRuntime(env, t.handle).rt,
    );
    expect(sink.received).toHaveLength(1);
    h = await history(db, f);
    expect(h).toEqual([expect.objectContaining({ step: 1, delivery: 'sent', attempts: 2, error: null })]);
    expect(sink.received[0].messageId).toBe(`<${h[0].message_id!.replace(/^<|>$/g, '')}>`);
    expect(await count(db, 'inbox_messages')).toBe(1);
  });

  it('SMTP 5xx three times → failed, one FOLLOWUP_FAILED notification, no email, no fourth try', async () => {
    const db = t.handle.db;
    const [f] = await seedDue(db, 1, 1);
    sink.failNext(3, 550);
    const env = { CRON_SECRET: SECRET, SMTP_URL: sink.url };
    const at = (min: number) => new Date(NOW.getTime() + min * 60_000);
    const run = (now: Date) => runJob(followupsJob, 'http', { dryRun: false, scope: {}, nowOverride: now }, testRuntime(env, t.handle).rt);
    await run(at(0)); // try 1; a permanent refusal waits 1 h
    await run(at(30)); // backing off: not due
    expect((await history(db, f))[0].attempts).toBe(1);
    await run(at(61)); // try 2; then 4 h
    await run(at(61 + 241)); // try 3: the last
    const h = await history(db, f);
    expect(h).toEqual([expect.objectContaining({ step: 1, delivery: 'failed', attempts: 3 })]);
    expect((await followupRow(db, f)).status).toBe('EN_ATTENTE');
    const notes = await queryRows<{
      type: string;
      source_type: string;
      source_id: number;
      dedupe_key: string;
      title: string;
      link_url: string;
    }>(db, sql`select type::text, source_type, source_id, dedupe_key, title, link_url from notifications`);
    expect(notes).toEqual([
      expect.objectContaining({ type: 'FOLLOWUP_FAILED', source_type: 'followup', source_id: f, dedupe_key: 'step:1' }),
    ]);
    expect(notes[0].link_url).toMatch(/^http:\/\/localhost:3000\/app\/billing\/invoices\/\d+$/);
    await run(at(60 * 48));
    expect(sink.received).toHaveLength(0);
    expect((await history(db, f))[0].attempts).toBe(3);
    expect(await count(db, 'notifications')).toBe(1);
    expect(await count(db, 'inbox_messages')).toBe(0);
  });

  it('a run whose SMTP server hangs after DATA → `unknown` at the deadline, never re-sent, shown in /cron/status', async () => {
    const db = t.handle.db;
    const [f] = await seedDue(db, 1, 1);
    const bad = await startBadSmtp('hang-after-data');
    try {
      const started = Date.now();
      const hung = await runJob(
        followupsJob,
        'http',
        { dryRun: false, scope: {}, nowOverride: NOW },
        testRuntime({ CRON_SECRET: SECRET, SMTP_URL: bad.url, CRON_BUDGET_MS: '4000', SMTP_SOCKET_TIMEOUT_MS: '600000' }, t.handle).rt,
      );
      // the run answers at its deadline, not when the socket times out
      expect(Date.now() - started).toBeLessThan(4_000 + 5_000);
      expect(httpStatusOf(hung)).toBe(200);
      expect(bad.bodies).toBe(1);
      expect((hung.body.stats as any).unknown).toBe(1);
      expect(await history(db, f)).toEqual([expect.objectContaining({ step: 1, delivery: 'unknown', attempts: 1 })]);
      expect((await followupRow(db, f)).status).toBe('EN_ATTENTE');
      expect((await readStatus(db, new Date(), JOB_REGISTRY)).followups.sendsInUnknownState).toBe(1);

      const env = { CRON_SECRET: SECRET, SMTP_URL: sink.url };
      await runJob(
        followupsJob,
        'http',
        { dryRun: false, scope: {}, nowOverride: new Date(NOW.getTime() + 3 * 24 * 3600_000) },
        testRuntime(env, t.handle).rt,
      );
      expect(sink.received).toHaveLength(0);
      expect(await count(db, 'notifications')).toBe(0);
    } finally {
      await bad.close();
    }
  });
});
