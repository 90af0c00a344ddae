/**
 * The send protocol itself (lib/mail/claimed-send.ts) on real PostgreSQL and real SMTP servers:
 * smtp-server for the well-behaved cases, servers written with `net` that never greet or hang
 * after DATA. Claims live in `mail_sends` (the generic claim table).
 */
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePg } from '../helpers/services.js';
import { startBadSmtp, startSmtpSink } from '../../devtools/smtp.js';
import { queryRows, type Db } from '../../db/client.js';
import { parseConfig } from '../../lib/config.js';
import { createMailFactory, type OutgoingMail } from '../../lib/mail/transport.js';
import { STALE_CLAIM_SEC, createClaimedSend, sweepClaims } from '../../lib/mail/claimed-send.js';
import type { ClaimTable } from '../../lib/mail/claimed-send.js';
import { claimMailSend } from '../../lib/jobs/account-deletions/sql.js';

/** The protocol's own test sender: rows of `mail_sends` of kind `test` (a shared table, as a new sender would use it). */
const T: ClaimTable = { name: 'mail_sends', rows: sql`kind = 'test'` };
let seq = 0;

const mailOf = (key: string): OutgoingMail => ({
  from: 'Lokario <noreply@lokario.test>',
  to: 'dest@example.test',
  subject: `test ${key}`,
  text: 'Bonjour',
  messageId: `<lokario.test.${key.replace(/[^A-Za-z0-9]/g, '_')}@lokario.test>`,
});

async function run(db: Db, opts: { finished?: boolean; startedSecAgo?: number } = {}) {
  const id = `run-${++seq}-${Date.now()}`;
  await db.execute(sql`insert into cron_runs (id, job, trigger, started_at, finished_at, outcome)
    values (${id}, 'account-deletions', 'http', now() - make_interval(secs => ${opts.startedSecAgo ?? 0}),
            ${opts.finished ? sql`now()` : sql`null`}, ${opts.finished ? 'succeeded' : 'running'})`);
  return id;
}
const finish = (db: Db, runId: string) =>
  db.execute(sql`update cron_runs set finished_at = now(), outcome = 'succeeded' where id = ${runId}`);
const row = async (db: Db, id: number) =>
  (
    await queryRows<{ delivery: string; handed_at: Date | null; error: string | null }>(
      db,
      sql`select delivery::text, handed_at, error from mail_sends where id = ${id}`,
    )
  )[0];

describePg('the send protocol (claim, hand-over, answer) against real PostgreSQL and SMTP', () => {
  let t: TestDatabase;
  let sink: Awaited<ReturnType<typeof startSmtpSink>>;
  beforeAll(async () => {
    t = await createTestDatabase('claimed_send');
    sink = await startSmtpSink();
  });
  afterAll(async () => {
    await sink?.close();
    await t?.drop();
  });
  beforeEach(async () => {
    await t.handle.db.execute(sql`truncate mail_sends, cron_runs restart identity`);
    sink.received.length = 0;
  });

  const platform = (env: Record<string, string>) => createMailFactory(parseConfig({ NODE_ENV: 'test', ...env })).platform();

  it('claim race: 20 runs claiming one key at once → exactly one owns it', async () => {
    const db = t.handle.db;
    const runs = await Promise.all(Array.from({ length: 20 }, () => run(db)));
    const ids = await Promise.all(runs.map((r) => claimMailSend(db, 'race:1', 'test', r)));
    expect(ids.filter((x) => x !== null)).toHaveLength(1);
    expect((await queryRows<{ n: number }>(db, sql`select count(*)::int as n from mail_sends`))[0].n).toBe(1);
  });

  it('2xx → sent (handed over first); 4xx → given back; 5xx → failed, for the caller to record', async () => {
    const db = t.handle.db;
    const r = await run(db);
    const sender = platform({ SMTP_URL: sink.url });
    const claimed = createClaimedSend({ db, table: T, runId: r, deadline: Date.now() + 20_000 });
    const ok = (await claimMailSend(db, 'ok:1', 'test', r))!;
    expect(await claimed.send(ok, sender, mailOf('ok:1'))).toMatchObject({ state: 'sent' });
    expect((await row(db, ok)).handed_at).not.toBeNull();
    expect(sink.received).toHaveLength(1);

    sink.failNext(1, 451);
    const soft = (await claimMailSend(db, 'soft:1', 'test', r))!;
    expect(await claimed.send(soft, sender, mailOf('soft:1'))).toMatchObject({ state: 'retry', error: { code: 'smtp_temporary' } });
    expect(await row(db, soft)).toBeUndefined(); // released: a later run claims it again

    sink.failNext(1, 550);
    const hard = (await claimMailSend(db, 'hard:1', 'test', r))!;
    expect(await claimed.send(hard, sender, mailOf('hard:1'))).toMatchObject({ state: 'failed', error: { code: 'smtp_rejected' } });
    expect((await row(db, hard)).delivery).toBe('sending');
    sender.close();
  });

  it('a server that hangs after DATA → `unknown` at the deadline, never given back; the send answers in time', async () => {
    const db = t.handle.db;
    const bad = await startBadSmtp('hang-after-data');
    try {
      const r = await run(db);
      const sender = platform({ SMTP_URL: bad.url, SMTP_SOCKET_TIMEOUT_MS: '600000' });
      const claimed = createClaimedSend({ db, table: T, runId: r, deadline: Date.now() + 3_000 });
      const id = (await claimMailSend(db, 'hang:1', 'test', r))!;
      const started = Date.now();
      const outcome = await claimed.send(id, sender, mailOf('hang:1'));
      expect(Date.now() - started).toBeLessThan(3_000 + 3_000);
      expect(outcome).toMatchObject({ state: 'unknown', error: { code: 'smtp_deadline', stage: 'data' } });
      expect(bad.bodies).toBe(1);
      expect(await row(db, id)).toMatchObject({ delivery: 'unknown' });
      // the owner finishing, then a sweep: `unknown` stays, never released
      await finish(db, r);
      expect(await sweepClaims(db, T)).toEqual({ released: 0, unknownIds: [] });
      expect((await row(db, id)).delivery).toBe('unknown');
      sender.close();
    } finally {
      await bad.close();
    }
  });

  it('a server that never greets → given back (nothing can have been delivered), within the greeting cap, whatever SMTP_GREETING_TIMEOUT_MS says', async () => {
    const db = t.handle.db;
    const bad = await startBadSmtp('no-greeting');
    try {
      const r = await run(db);
      // a 5 s budget caps connecting and the greeting at 1 s
      const sender = platform({
        SMTP_URL: bad.url,
        SMTP_GREETING_TIMEOUT_MS: '600000',
        SMTP_CONNECT_TIMEOUT_MS: '600000',
        CRON_BUDGET_MS: '5000',
      });
      const claimed = createClaimedSend({ db, table: T, runId: r, deadline: Date.now() + 5_000 });
      const id = (await claimMailSend(db, 'mute:1', 'test', r))!;
      const started = Date.now();
      const outcome = await claimed.send(id, sender, mailOf('mute:1'));
      expect(Date.now() - started).toBeLessThan(5_000 + 3_000);
      expect(outcome).toMatchObject({ state: 'retry', error: { stage: 'queued' } });
      expect(await row(db, id)).toBeUndefined();
      sender.close();
    } finally {
      await bad.close();
    }
  });

  it('no transaction is started that cannot finish before the deadline, nor once stopping: given back, nothing sent', async () => {
    const db = t.handle.db;
    const r = await run(db);
    const sender = platform({ SMTP_URL: sink.url });
    const late = createClaimedSend({ db, table: T, runId: r, deadline: Date.now() + 200 });
    const a = (await claimMailSend(db, 'late:1', 'test', r))!;
    expect(await late.send(a, sender, mailOf('late:1'))).toEqual({ state: 'not_started', reason: 'deadline' });
    const stop = new AbortController();
    stop.abort();
    const stopping = createClaimedSend({ db, table: T, runId: r, deadline: Date.now() + 20_000, stopSignal: stop.signal });
    const b = (await claimMailSend(db, 'stop:1', 'test', r))!;
    expect(await stopping.send(b, sender, mailOf('stop:1'))).toEqual({ state: 'not_started', reason: 'stopping' });
    expect(sink.received).toHaveLength(0);
    expect(await row(db, a)).toBeUndefined();
    expect(await row(db, b)).toBeUndefined();
    sender.close();
  });

  it('crash before / during / after the SMTP transaction: the sweep gives back only what was never handed over', async () => {
    const db = t.handle.db;
    const dead = await run(db);
    const sender = platform({ SMTP_URL: sink.url });
    // before: claimed, never handed over
    const before = (await claimMailSend(db, 'crash:before', 'test', dead))!;
    // during: handed over (the server answered DATA), no answer recorded
    const during = (await claimMailSend(db, 'crash:during', 'test', dead))!;
    await db.execute(sql`update mail_sends set handed_at = now() where id = ${during}`);
    // after: delivered, the process died before recording it
    const after = (await claimMailSend(db, 'crash:after', 'test', dead))!;
    const claimed = createClaimedSend({ db, table: T, runId: dead, deadline: Date.now() + 20_000 });
    expect(await claimed.send(after, sender, mailOf('crash:after'))).toMatchObject({ state: 'sent' });
    // a live run's claims, handed over or not, are left alone
    const alive = await run(db);
    const busy = (await claimMailSend(db, 'alive:1', 'test', alive))!;
    const busyHanded = (await claimMailSend(db, 'alive:2', 'test', alive))!;
    await db.execute(sql`update mail_sends set handed_at = now() where id = ${busyHanded}`);
    // a claim written before the protocol (no owner), older than the stale timeout: nobody knows → unknown
    const [legacy] = await queryRows<{ id: number }>(
      db,
      sql`insert into mail_sends (key, kind, claimed_at, delivery)
      values ('legacy:1', 'test', now() - make_interval(secs => ${STALE_CLAIM_SEC + 60}), 'sending') returning id`,
    );

    expect(await sweepClaims(db, T)).toEqual({ released: 0, unknownIds: [Number(legacy.id)] }); // the dead run has not provably ended yet
    await finish(db, dead); // e.g. its ledger row was closed, or STALE_CLAIM_SEC passed (next case)
    const swept = await sweepClaims(db, T);
    expect(swept.released).toBe(1);
    expect(swept.unknownIds.sort()).toEqual([during, after].sort());
    expect(await row(db, before)).toBeUndefined();
    expect((await row(db, during)).delivery).toBe('unknown');
    expect((await row(db, after)).delivery).toBe('unknown');
    expect((await row(db, busy)).delivery).toBe('sending');
    expect((await row(db, busyHanded)).delivery).toBe('sending');

    // an owner that started longer ago than the stale timeout is gone too, finished or not
    const old = await run(db, { startedSecAgo: STALE_CLAIM_SEC + 5 });
    const oldClaim = (await claimMailSend(db, 'old:1', 'test', old))!;
    expect((await sweepClaims(db, T)).released).toBe(1);
    expect(await row(db, oldClaim)).toBeUndefined();
    sender.close();
  });

  it('a late answer after the sweep changes nothing: a run whose claim was taken back never sends the body', async () => {
    const db = t.handle.db;
    const r = await run(db);
    const id = (await claimMailSend(db, 'late-answer:1', 'test', r))!;
    // the run looked dead (its ledger row closed), the sweep gave its claim back...
    await finish(db, r);
    expect((await sweepClaims(db, T)).released).toBe(1);
    // ...and another run claimed the same email again
    const other = await run(db);
    const again = (await claimMailSend(db, 'late-answer:1', 'test', other))!;
    expect(again).not.toBeNull();
    // the first run wakes up and tries to send: its hand-over finds no claim of its own
    const sender = platform({ SMTP_URL: sink.url });
    const first = createClaimedSend({ db, table: T, runId: r, deadline: Date.now() + 20_000 });
    expect(await first.send(id, sender, mailOf('late-answer:1'))).toEqual({ state: 'lost' });
    expect(await first.send(again, sender, mailOf('late-answer:1'))).toEqual({ state: 'lost' });
    expect(sink.received).toHaveLength(0);
    // the new owner sends it, once
    const second = createClaimedSend({ db, table: T, runId: other, deadline: Date.now() + 20_000 });
    expect(await second.send(again, sender, mailOf('late-answer:1'))).toMatchObject({ state: 'sent' });
    expect(sink.received).toHaveLength(1);
    sender.close();
  });
});
