/**
 * The send window (lib/mail/send-window.ts) on real PostgreSQL and real SMTP servers: the crash
 * bound holds at every DATA, hand-overs and records go in groups, a sweep's claim is never sent,
 * a failed record statement sends nothing more, the deadline gives claims back, and a server that
 * hangs after DATA leaves `unknown`. Claims live in `mail_sends` (the generic claim table).
 */
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { sql, type SQL } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePg } from '../helpers/services.js';
import { startBadSmtp, startSmtpSink } from '../../devtools/smtp.js';
import { queryRows, type Db } from '../../db/client.js';
import { parseConfig } from '../../lib/config.js';
import { createMailFactory, type OutgoingMail } from '../../lib/mail/transport.js';
import { createSendWindow, type WindowOutcome } from '../../lib/mail/send-window.js';
import { claimMailSend } from '../../lib/jobs/account-deletions/sql.js';
import type { ClaimTable } from '../../lib/mail/claimed-send.js';

/** The protocol's own test sender: rows of `mail_sends` of kind `test` (a shared table, as a new sender would use it). */
const T: ClaimTable = { name: 'mail_sends', rows: sql`kind = 'test'` };
const SIZE = 20;
const GROUP = 10;

const mailOf = (key: string): OutgoingMail => ({
  from: 'Lokario <noreply@lokario.test>',
  to: 'dest@example.test',
  subject: `test ${key}`,
  text: 'Bonjour',
  messageId: `<lokario.window.${key.replace(/[^A-Za-z0-9]/g, '_')}@lokario.test>`,
});

/** The record of a test claim: `sent`, in the same statement as the hand-over when there is one. */
function recorder(db: Db, calls: { records: number; handOvers: number }[]) {
  return async (ids: number[], handOver: SQL | null): Promise<number[]> => {
    calls.push({ records: ids.length, handOvers: handOver ? 1 : 0 });
    const rows = await queryRows<{ id: number | null }>(
      db,
      sql`
      with handed as (${handOver ?? sql`select null::int as id where false`}),
      recorded as (update mail_sends set delivery = 'sent', sent_at = now() where id = any(${`{${ids.join(',')}}`}::int[]) and delivery = 'sending' returning id)
      select id from handed`,
    );
    return rows.map((r) => Number(r.id));
  };
}

describePg('the send window against real PostgreSQL and SMTP', () => {
  let t: TestDatabase;
  let seq = 0;
  beforeAll(async () => {
    t = await createTestDatabase('send_window');
  });
  afterAll(async () => {
    await t?.drop();
  });
  beforeEach(async () => {
    await t.handle.db.execute(sql`truncate mail_sends, cron_runs restart identity`);
  });

  const platform = (env: Record<string, string>) => createMailFactory(parseConfig({ NODE_ENV: 'test', ...env })).platform();
  /** A fresh SMTP sink and the platform sender to it, both closed after `fn`. */
  const withSink = async (fn: (sink: Awaited<ReturnType<typeof startSmtpSink>>, sender: ReturnType<typeof platform>) => Promise<void>) => {
    const sink = await startSmtpSink();
    const sender = platform({ SMTP_URL: sink.url });
    try {
      await fn(sink, sender);
    } finally {
      sender.close();
      await sink.close();
    }
  };
  async function claims(db: Db, n: number, runId: string) {
    await db.execute(
      sql`insert into cron_runs (id, job, trigger, started_at, outcome) values (${runId}, 'account-deletions', 'http', now(), 'running')`,
    );
    const ids: number[] = [];
    for (let i = 0; i < n; i++) ids.push((await claimMailSend(db, `${runId}:${i}`, 'test', runId))!);
    return ids;
  }
  const deliveries = async (db: Db) =>
    await queryRows<{ delivery: string; n: number }>(
      db,
      sql`select delivery::text, count(*)::int as n from mail_sends group by 1 order by 1`,
    );

  it('60 emails: never more than 20 handed over and unrecorded at any DATA, each sent once, about one statement per 10', async () => {
    const db = t.handle.db;
    const runId = `window-${++seq}`;
    const ids = await claims(db, 60, runId);
    let maxInFlight = 0;
    // at every DATA, before accepting: the rows a crash would leave `unknown` right now
    const sink = await startSmtpSink({ delayMs: 2 });
    const checks: Promise<void>[] = [];
    const origPush = sink.received.push.bind(sink.received);
    sink.received.push = (...items) => {
      checks.push(
        queryRows<{ n: number }>(
          db,
          sql`select count(*)::int as n from mail_sends where delivery = 'sending' and handed_at is not null`,
        ).then((r) => {
          maxInFlight = Math.max(maxInFlight, r[0].n);
        }),
      );
      return origPush(...items);
    };
    const calls: { records: number; handOvers: number }[] = [];
    const sender = platform({ SMTP_URL: sink.url });
    try {
      const window = createSendWindow<number>({
        db,
        table: T,
        runId,
        deadline: Date.now() + 60_000,
        size: SIZE,
        group: GROUP,
        recordAndHandOver: recorder(db, calls),
      });
      const outcomes = await Promise.all(ids.map((id, i) => window.submit(id, sender, mailOf(`${runId}:${i}`), id)));
      await Promise.all(checks);
      expect(outcomes.every((o) => o.state === 'sent' && !('recordError' in o))).toBe(true);
      expect(sink.received).toHaveLength(60);
      expect(new Set(sink.received.map((r) => r.messageId)).size).toBe(60);
      expect(await deliveries(db)).toEqual([{ delivery: 'sent', n: 60 }]);
      expect(maxInFlight).toBeGreaterThan(0);
      expect(maxInFlight).toBeLessThanOrEqual(SIZE);
      // 60 records and 60 hand-overs in about 60 / 10 statements (plus the first hand-over and the tail)
      expect(calls.length).toBeLessThanOrEqual(60 / GROUP + 3);
      expect(calls.reduce((a, c) => a + c.records, 0)).toBe(60);
    } finally {
      sender.close();
      await sink.close();
    }
  });

  it('claims a sweep took back are never sent (`lost`), the others go out', async () => {
    const db = t.handle.db;
    const runId = `window-${++seq}`;
    const ids = await claims(db, 6, runId);
    // another run took three of them back (it judged this run dead)
    await db.execute(sql`update mail_sends set claimed_by = 'someone-else' where id = any(${`{${ids.slice(0, 3).join(',')}}`}::int[])`);
    await withSink(async (sink, sender) => {
      const window = createSendWindow<number>({
        db,
        table: T,
        runId,
        deadline: Date.now() + 60_000,
        size: SIZE,
        group: GROUP,
        recordAndHandOver: recorder(db, []),
      });
      const outcomes = await Promise.all(ids.map((id, i) => window.submit(id, sender, mailOf(`${runId}:${i}`), id)));
      expect(outcomes.map((o) => o.state)).toEqual(['lost', 'lost', 'lost', 'sent', 'sent', 'sent']);
      expect(sink.received).toHaveLength(3);
    });
  });

  it('a record statement that fails: the accepted emails report it (their rows stay `sending`), the next ones are not sent but given back', async () => {
    const db = t.handle.db;
    const runId = `window-${++seq}`;
    const ids = await claims(db, 30, runId);
    await withSink(async (sink, sender) => {
      const window = createSendWindow<number>({
        db,
        table: T,
        runId,
        deadline: Date.now() + 60_000,
        size: SIZE,
        group: GROUP,
        recordAndHandOver: async () => {
          throw new Error('disk full');
        },
      });
      const outcomes: WindowOutcome[] = await Promise.all(ids.map((id, i) => window.submit(id, sender, mailOf(`${runId}:${i}`), id)));
      // the first 20 were handed over and went out; the statement that recorded the first of them
      // and would have handed over more failed: nothing beyond the window was sent
      expect(sink.received.length).toBe(SIZE);
      const unrecorded = outcomes.filter((o) => o.state === 'sent' && 'recordError' in o);
      expect(unrecorded).toHaveLength(SIZE);
      expect(outcomes.filter((o) => o.state === 'not_started')).toHaveLength(30 - SIZE);
      // sent but unrecorded: still `sending` and handed over (the next run marks them `unknown`); the rest given back
      expect(await deliveries(db)).toEqual([{ delivery: 'sending', n: SIZE }]);
      expect((await queryRows<{ n: number }>(db, sql`select count(*)::int as n from mail_sends where handed_at is not null`))[0].n).toBe(
        SIZE,
      );
    });
  });

  it('the deadline near: nothing is handed over, every claim is given back', async () => {
    const db = t.handle.db;
    const runId = `window-${++seq}`;
    const ids = await claims(db, 5, runId);
    await withSink(async (sink, sender) => {
      const window = createSendWindow<number>({
        db,
        table: T,
        runId,
        deadline: Date.now() + 500,
        size: SIZE,
        group: GROUP,
        recordAndHandOver: recorder(db, []),
      });
      const outcomes = await Promise.all(ids.map((id, i) => window.submit(id, sender, mailOf(`${runId}:${i}`), id)));
      expect(outcomes.every((o) => o.state === 'not_started' && o.reason === 'deadline')).toBe(true);
      expect(sink.received).toHaveLength(0);
      expect(await deliveries(db)).toEqual([]);
    });
  });

  it('a server that hangs after DATA: `unknown` at the deadline, within the window; the rest given back', async () => {
    const db = t.handle.db;
    const runId = `window-${++seq}`;
    const ids = await claims(db, 3, runId);
    const bad = await startBadSmtp('hang-after-data');
    const sender = platform({ SMTP_URL: bad.url, SMTP_SOCKET_TIMEOUT_MS: '600000' });
    try {
      const started = Date.now();
      const window = createSendWindow<number>({
        db,
        table: T,
        runId,
        deadline: Date.now() + 3_000,
        size: SIZE,
        group: GROUP,
        recordAndHandOver: recorder(db, []),
      });
      const outcomes = await Promise.all(ids.map((id, i) => window.submit(id, sender, mailOf(`${runId}:${i}`), id)));
      expect(Date.now() - started).toBeLessThan(3_000 + 3_000);
      // the relay's 5 connections each took one email into DATA, or the deadline gave it back
      const states = outcomes.map((o) => o.state);
      expect(states.filter((s) => s === 'unknown').length).toBe(bad.bodies);
      expect(states.every((s) => s === 'unknown' || s === 'retry')).toBe(true);
      const rows = await deliveries(db);
      expect(rows.find((r) => r.delivery === 'unknown')?.n).toBe(bad.bodies);
      expect(rows.find((r) => r.delivery === 'sent')).toBeUndefined();
    } finally {
      sender.close();
      await bad.close();
    }
  });
});
