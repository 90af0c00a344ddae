/**
 * The follow-ups job in a child process (`npm start`'s server on real PostgreSQL, a real SMTP
 * server that answers each message after a pause), killed mid-run with SIGKILL, or stopped with
 * SIGTERM; then a restart polled like a cron caller would. Exactly once is checked on what the
 * SMTP server received.
 */
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePg } from '../helpers/services.js';
import { startSmtpSink } from '../../devtools/smtp.js';
import { startLocalServer, type LocalServer } from '../../devtools/server.js';
import { testRuntime } from '../helpers/runtime.js';
import { queryRows, type Db } from '../../db/client.js';
import { runJob } from '../../lib/cron/run.js';
import { followupsJob } from '../../lib/jobs/followups/index.js';
import { SEND_CONCURRENCY } from '../../lib/jobs/followups/run.js';
import { seedCompany, wipe } from './followups-fixtures.js';
import { httpStatusOf } from '../../lib/cron/outcome.js';
import { insertDueInvoiceFollowups } from '../helpers/seed.js';
import { CRASHED_RUN_ERROR } from '../../lib/cron/runs.js';

const NOW = '2026-03-11T10:00:00.000Z';
const TOTAL = 300;

/** TOTAL due follow-ups over 3 companies, written set-based (the seeding is not what is tested). */
async function seed(db: Db) {
  const ids: number[] = [];
  for (let c = 0; c < 3; c++) {
    const s = await seedCompany(db);
    ids.push(
      ...(await insertDueInvoiceFollowups(db, s, {
        count: TOTAL / 3,
        numberPrefix: `FAC-${s.companyId}-`,
        totalTtc: 1200,
        dueDate: '2026-01-01T00:00:00Z',
      })),
    );
  }
  return ids;
}

const steps = (db: Db) =>
  queryRows<{ followup_id: number; delivery: string; handed: boolean }>(
    db,
    sql`
  select followup_id, delivery::text, handed_at is not null as handed from followup_history where step = 1 order by followup_id`,
  );

async function waitFor(cond: () => boolean, what: string, ms = 60_000) {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describePg('followups: kill -9 and SIGTERM of the process mid-run, then a restart', () => {
  let t: TestDatabase;
  let sink: Awaited<ReturnType<typeof startSmtpSink>>;
  let server: LocalServer | undefined;
  beforeAll(async () => {
    t = await createTestDatabase('send_crash');
    // ~25 ms per answer on 5 connections: a run of 300 emails lasts long enough to be interrupted
    sink = await startSmtpSink({ delayMs: 25 });
  });
  afterAll(async () => {
    server?.child.kill('SIGKILL');
    await sink?.close();
    await t?.drop();
  });
  beforeEach(async () => {
    await wipe(t.handle.db);
    sink.received.length = 0;
  });

  const start = () => startLocalServer({ DATABASE_URL: t.url, SMTP_URL: sink.url, SCHEDULER: 'off', PORT: '0', LOG_LEVEL: 'warn' });
  const trigger = (s: LocalServer) =>
    fetch(`${s.url}/followups/process-automatic?now=${NOW}`).then(
      (r) => r.json(),
      () => null,
    );
  const restart = async () => {
    const { rt } = testRuntime({ SMTP_URL: sink.url }, t.handle);
    for (let i = 0; i < 10; i++) {
      const res = await runJob(followupsJob, 'http', { dryRun: false, scope: {}, nowOverride: new Date(NOW) }, rt);
      expect(httpStatusOf(res)).toBe(200);
      expect(res.body.skipped).toBeUndefined();
      if (!res.body.partial) return;
    }
    throw new Error('the restart never finished');
  };
  const receivedPerFollowup = () => {
    const n = new Map<number, number>();
    for (const m of sink.received) {
      const id = Number(/followup\.(\d+)\.1@/.exec(m.messageId ?? '')?.[1]);
      n.set(id, (n.get(id) ?? 0) + 1);
    }
    return n;
  };

  it(
    'kill -9 mid-run, restart, poll every 5 s like a cron caller (no lease edited by hand): a run within 60 s, 0 duplicates, unknown ≤ the send concurrency, every other email sent exactly once',
    { timeout: 240_000 },
    async () => {
      const db = t.handle.db;
      const ids = await seed(db);
      server = await start();
      void trigger(server);
      await waitFor(() => sink.received.length >= 10, '10 emails');
      const exited = new Promise((r) => server!.child.once('exit', r));
      server.child.kill('SIGKILL');
      const killedAt = Date.now();
      await exited;

      const residue = (await steps(db)).filter((s) => s.delivery === 'sending');
      // what a crash can leave `maybe`: the emails in an SMTP transaction or waiting for their record
      expect(residue.filter((s) => s.handed).length).toBeLessThanOrEqual(SEND_CONCURRENCY);
      const [dead] = await queryRows<{ id: string }>(db, sql`select id from cron_runs where finished_at is null`);

      // a new process, and a caller that pings the route every 5 s until a run completes
      server = await start();
      const answers: { atMs: number; skipped: boolean; partial: boolean }[] = [];
      while (Date.now() - killedAt < 180_000) {
        const body = (await trigger(server)) as { skipped?: boolean; partial?: boolean; success?: boolean } | null;
        expect(body?.success, JSON.stringify(body)).toBe(true);
        answers.push({ atMs: Date.now() - killedAt, skipped: body?.skipped === true, partial: body?.partial === true });
        if (!body?.skipped && !body?.partial) break;
        await new Promise((r) => setTimeout(r, 5_000));
      }
      const firstRun = answers.find((a) => !a.skipped);
      console.log(`kill -9 → restart: answers after the kill ${JSON.stringify(answers)}`);
      expect(firstRun, JSON.stringify(answers)).toBeDefined();
      expect(firstRun!.atMs, JSON.stringify(answers)).toBeLessThan(60_000);
      expect(answers.at(-1), JSON.stringify(answers)).toMatchObject({ skipped: false, partial: false });

      const final = await steps(db);
      const unknown = final.filter((s) => s.delivery === 'unknown');
      expect(unknown.length).toBeLessThanOrEqual(SEND_CONCURRENCY);
      expect(final.filter((s) => s.delivery === 'sending')).toEqual([]);
      const got = receivedPerFollowup();
      expect([...got.values()].filter((n) => n > 1)).toEqual([]); // no duplicate, ever
      const unknownIds = new Set(unknown.map((s) => s.followup_id));
      for (const id of ids) {
        if (unknownIds.has(id)) expect(got.get(id) ?? 0).toBeLessThanOrEqual(1);
        else {
          expect(final.find((s) => s.followup_id === id)?.delivery, `follow-up ${id}`).toBe('sent');
          expect(got.get(id), `follow-up ${id}`).toBe(1);
        }
      }
      // the dead run's ledger row was closed by the takeover, at its last heartbeat
      const [closed] = await queryRows<{ outcome: string; error: string; at_last_beat: boolean }>(
        db,
        sql`
      select outcome::text, error, finished_at = heartbeat_at as at_last_beat from cron_runs where id = ${dead.id}`,
      );
      expect(closed).toEqual({ outcome: 'failed', error: CRASHED_RUN_ERROR, at_last_beat: true });
    },
  );

  it(
    'SIGTERM mid-run: stops claiming, finishes and records what is in flight, releases the lease, exits 0; the next run sends the rest once',
    { timeout: 180_000 },
    async () => {
      const db = t.handle.db;
      const ids = await seed(db);
      server = await start();
      const answer = trigger(server);
      await waitFor(() => sink.received.length >= 60, '60 emails');
      const exited = new Promise<number | null>((r) => server!.child.once('exit', (code) => r(code)));
      const stoppedAt = Date.now();
      server.child.kill('SIGTERM');
      const code = await exited;
      const output = server.output();
      server = undefined;
      expect(code, output).toBe(0);
      expect(Date.now() - stoppedAt).toBeLessThan(20_000 + 5_000);
      const body = (await answer) as { partial?: boolean } | null;
      expect(body?.partial).toBe(true);

      // nothing left in flight, nothing unknown, the lease free, the run closed
      const after = await steps(db);
      expect(after.filter((s) => s.delivery !== 'sent')).toEqual([]);
      expect(after.length).toBe(sink.received.length);
      expect(after.length).toBeLessThan(TOTAL);
      expect((await queryRows<{ n: number }>(db, sql`select count(*)::int as n from cron_leases`))[0].n).toBe(0);
      expect((await queryRows<{ n: number }>(db, sql`select count(*)::int as n from cron_runs where finished_at is null`))[0].n).toBe(0);

      // no waiting for any timeout: the next run starts at once and sends the rest, once each
      await restart();
      const got = receivedPerFollowup();
      expect(ids.map((id) => got.get(id))).toEqual(ids.map(() => 1));
      expect((await steps(db)).every((s) => s.delivery === 'sent')).toBe(true);
    },
  );
});
