import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { queryRows } from '../../db/client.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describeWithService, hasPostgres } from '../helpers/services.js';
import { hasDovecot, startDovecot, type Dovecot } from '../../devtools/dovecot.js';
import { createCompany, createIntegration, MASTER_KEY, newMailbox, simpleMail } from '../helpers/inbox-fixtures.js';
import { startLocalServer, stopLocalServer, type LocalServer } from '../../devtools/server.js';
import { startSmtpSink } from '../../devtools/smtp.js';
import { seedCompany, seedFollowup, seedInvoice } from './followups-fixtures.js';

const describeImap = describeWithService(hasDovecot() && hasPostgres(), 'Dovecot (apt-get install dovecot-imapd) and PostgreSQL');
const SECRET = 'fanout-secret-0123456789abcdef';
const SHARDS = 3;

type Body = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/**
 * The deployment's "own URL" in these tests: a real HTTP relay to the local server that can refuse
 * chosen shards (a shard invocation that cannot be reached), and counts every start attempt.
 */
function shardRelay() {
  let target = '';
  const refused = new Set<number>();
  const attempts: { shard: number; parent: string | undefined }[] = [];
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://relay');
    const shard = Number(u.searchParams.get('shard'));
    attempts.push({ shard, parent: req.headers['x-lokario-fanout-parent'] as string | undefined });
    if (refused.has(shard)) {
      req.socket.destroy();
      return;
    }
    const up = http.request(`${target}${req.url}`, { method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  return {
    refused,
    attempts,
    setTarget: (t: string) => {
      target = t;
    },
    listen: () =>
      new Promise<string>((r) => server.listen(0, '127.0.0.1', () => r(`http://127.0.0.1:${(server.address() as { port: number }).port}`))),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describeImap('fan-out against the real local server, PostgreSQL and Dovecot', () => {
  let t: TestDatabase;
  let d: Dovecot;
  let srv: LocalServer;
  let dataDir: string;
  let sink: Awaited<ReturnType<typeof startSmtpSink>>;
  const relay = shardRelay();
  const companies: number[] = [];
  const boxes: { id: number; user: string; password: string }[] = [];
  let mailSeq = 0;

  const call = async (query = '', headers: Record<string, string> = {}) => {
    const r = await fetch(`${srv.url}/api/inbox/integrations/sync-all${query}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${SECRET}`, ...headers },
    });
    return { status: r.status, body: (await r.json()) as Body };
  };
  const db = () => t.handle.db;
  async function addMail(boxIdx: number[], per = 2) {
    for (const i of boxIdx) {
      const b = boxes[i];
      await d.append(
        b.user,
        b.password,
        Array.from({ length: per }, () => simpleMail(`fan-${++mailSeq}@t`, { from: `Client ${mailSeq % 5} <c${mailSeq % 5}@exemple.fr>` })),
      );
    }
  }
  async function waitForChildren(parent: string, expected: number) {
    const until = Date.now() + 90_000;
    for (;;) {
      const rows = await queryRows<{ id: string; outcome: string; trigger: string; stats: Body | null }>(
        db(),
        sql`
        select id, outcome, trigger, stats from cron_runs where parent_run_id = ${parent}`,
      );
      if (rows.length >= expected && rows.every((r) => r.outcome !== 'running')) return rows;
      if (Date.now() > until) throw new Error(`shards of ${parent} did not finish: ${JSON.stringify(rows)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  async function messageCounts() {
    const [r] = await queryRows<{ n: number; distinct_ids: number }>(
      db(),
      sql`
      select count(*)::int as n, count(distinct (company_id, external_id))::int as distinct_ids from inbox_messages`,
    );
    return r;
  }

  beforeAll(async () => {
    t = await createTestDatabase('fanout');
    d = await startDovecot({ pool: 12 });
    for (let c = 0; c < 3; c++) companies.push(await createCompany(db()));
    for (let i = 0; i < 12; i++) {
      const box = newMailbox(d);
      // one big tenant (8 mailboxes) and two small ones
      const id = await createIntegration(db(), companies[i < 8 ? 0 : 1 + (i % 2)], d, box.user, box.password);
      boxes.push({ id, ...box });
    }
    await addMail(boxes.map((_, i) => i));
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lokario-fanout-'));
    const ca = path.join(dataDir, 'dovecot-ca.pem');
    fs.writeFileSync(ca, d.cert);
    const self = await relay.listen();
    sink = await startSmtpSink();
    srv = await startLocalServer({
      PORT: '0',
      SCHEDULER: 'off',
      CRON_SECRET: SECRET,
      DATABASE_URL: t.url,
      ENCRYPTION_MASTER_KEY: MASTER_KEY,
      NODE_EXTRA_CA_CERTS: ca,
      LOG_LEVEL: 'warn',
      SELF_URL: self,
      SMTP_URL: sink.url,
      // 12 mailboxes are enough work for FANOUT_MAX shards once each one is said to cost a minute
      FANOUT_ITEM_COST_MS: '600000',
      FANOUT_MAX: String(SHARDS),
      FANOUT_ACCEPT_TIMEOUT_MS: '5000',
    });
    relay.setTarget(srv.url);
  }, 120_000);

  afterAll(async () => {
    if (srv) await stopLocalServer(srv);
    await relay.close();
    await sink?.close();
    await d?.stop();
    await t?.drop();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('a coordinator starts n shards, answers at once, records the child runs; every mailbox is synced exactly once', async () => {
    const started = Date.now();
    const { status, body } = await call();
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(status).toBe(200);
    expect(body.budget).toEqual({ ms: 25_000, source: 'CRON_BUDGET_MS' });
    expect(body.stats).toMatchObject({ fanout: true, due: 12, shards: SHARDS, shardsAccepted: SHARDS, shardsFailed: 0 });
    const childIds: string[] = body.stats.childRunIds;
    expect(childIds).toHaveLength(SHARDS);
    expect(
      relay.attempts
        .filter((a) => a.parent === body.runId)
        .map((a) => a.shard)
        .sort(),
    ).toEqual([0, 1, 2]);

    const kids = await waitForChildren(body.runId, SHARDS);
    expect(kids.map((k) => k.id).sort()).toEqual([...childIds].sort());
    for (const k of kids) {
      expect(k.trigger).toBe('fanout');
      expect(k.outcome).toBe('succeeded');
      expect(k.stats?.budgetSource).toBe('maxDuration');
    }
    // each mailbox handled by exactly one shard: the shards' counts add up to the twelve
    expect(kids.reduce((n, k) => n + (k.stats?.synced ?? 0), 0)).toBe(12);
    expect(await messageCounts()).toEqual({ n: 24, distinct_ids: 24 });
    const [row] = await queryRows<{ fanout: Body; stats: Body }>(db(), sql`select fanout, stats from cron_runs where id = ${body.runId}`);
    expect(row.fanout.children.map((c: Body) => c.runId).sort()).toEqual([...childIds].sort());
    expect(row.fanout).toMatchObject({ n: SHARDS, due: 12 });
    const unsynced = await queryRows(db(), sql`select id from inbox_integrations where last_sync_status is distinct from 'success'`);
    expect(unsynced).toEqual([]);

    // /cron/status: the last sweep, and inbox freshness
    const st = await fetch(`${srv.url}/cron/status`, { headers: { authorization: `Bearer ${SECRET}` } });
    const sb = (await st.json()) as Body;
    expect(sb.sweeps['inbox-sync']).toMatchObject({
      runId: body.runId,
      due: 12,
      done: 12,
      left: 0,
      shards: SHARDS,
      shardsRunning: 0,
      shardsFailed: 0,
      budget: { ms: 25_000, source: 'CRON_BUDGET_MS' },
    });
    expect(sb.inboxFreshness).toMatchObject({ mailboxes: 12, healthy: true, limitSec: 900 });
    expect(sb.inboxFreshness.ageSec).toBeLessThan(900);
  }, 120_000);

  it('a shard that cannot be reached is tried twice, reported, and its share is picked up by the next run', async () => {
    await addMail(
      boxes.map((_, i) => i),
      1,
    );
    relay.refused.add(1);
    const first = await call();
    expect(first.status).toBe(200);
    expect(first.body.partial).toBe(true);
    expect(first.body.stats).toMatchObject({ shards: SHARDS, shardsAccepted: SHARDS - 1, shardsFailed: 1 });
    expect(first.body.errors).toEqual([expect.objectContaining({ scope: 'shard', id: `1/${SHARDS}`, code: 'shard_not_started' })]);
    expect(relay.attempts.filter((a) => a.parent === first.body.runId && a.shard === 1)).toHaveLength(2);
    const [fr] = await queryRows<{ outcome: string; fanout: Body }>(
      db(),
      sql`select outcome, fanout from cron_runs where id = ${first.body.runId}`,
    );
    expect(fr.outcome).toBe('partial');
    expect(fr.fanout.children.find((c: Body) => c.shard === 1)).toMatchObject({ status: 'failed', attempts: 2 });
    await waitForChildren(first.body.runId, SHARDS - 1);
    const missing = boxes.filter((b) => b.id % SHARDS === 1).length;
    expect(missing).toBeGreaterThan(0);
    expect((await messageCounts()).n).toBe(24 + 12 - missing);

    relay.refused.clear();
    const second = await call();
    expect(second.body.stats).toMatchObject({ shardsAccepted: SHARDS, shardsFailed: 0 });
    await waitForChildren(second.body.runId, SHARDS);
    expect(await messageCounts()).toEqual({ n: 36, distinct_ids: 36 });
  }, 120_000);

  it('two coordinators at once: one fans out, the other is skipped; nothing is imported twice', async () => {
    await addMail(
      boxes.map((_, i) => i),
      1,
    );
    const [a, b] = await Promise.all([call(), call()]);
    const coordinators = [a, b].filter((r) => r.body.stats?.fanout === true);
    expect(coordinators).toHaveLength(1);
    expect([a, b].filter((r) => r.body.skipped === true && r.body.reason === 'already-running')).toHaveLength(1);
    await waitForChildren(coordinators[0].body.runId, SHARDS);
    expect(await messageCounts()).toEqual({ n: 48, distinct_ids: 48 });
    const [{ n }] = await queryRows<{ n: number }>(
      db(),
      sql`
      select count(*)::int as n from cron_runs where trigger = 'fanout' and parent_run_id in (${a.body.runId}, ${b.body.runId})`,
    );
    expect(n).toBe(SHARDS);
  }, 120_000);

  it('a Vercel Cron call gets maxDuration minus the margin; a shard request is never a coordinator; a dry run never fans out', async () => {
    const cron = await call('?dryRun=1', { 'user-agent': 'vercel-cron/1.0' });
    expect(cron.body.budget).toEqual({ ms: 295_000, source: 'maxDuration' });
    expect(cron.body.stats?.fanout).toBeUndefined();
    const before = relay.attempts.length;
    const shard = await call(`?shard=0&shards=${SHARDS}`);
    expect(shard.status).toBe(200);
    expect(shard.body.stats?.fanout).toBeUndefined();
    expect(relay.attempts.length).toBe(before);
  }, 60_000);

  it('followups: a coordinator fans out and every due follow-up is sent exactly once', async () => {
    const ids: number[] = [];
    for (let c = 0; c < 6; c++) {
      const co = await seedCompany(db());
      for (let i = 0; i < 5; i++) ids.push(await seedFollowup(db(), co, { sourceId: await seedInvoice(db(), co) }));
    }
    const r = await fetch(`${srv.url}/followups/process-automatic`, { headers: { authorization: `Bearer ${SECRET}` } });
    const body = (await r.json()) as Body;
    expect(body.stats).toMatchObject({ fanout: true, due: ids.length, shards: SHARDS, shardsAccepted: SHARDS });
    const kids = await waitForChildren(body.runId, SHARDS);
    expect(kids.every((k) => k.outcome === 'succeeded' && k.trigger === 'fanout')).toBe(true);
    expect(kids.reduce((n, k) => n + (k.stats?.sent ?? 0), 0)).toBe(ids.length);
    expect(sink.received).toHaveLength(ids.length);
    expect(new Set(sink.received.map((m) => m.messageId)).size).toBe(ids.length);
    const [{ n }] = await queryRows<{ n: number }>(db(), sql`select count(*)::int as n from followup_history where delivery = 'sent'`);
    expect(n).toBe(ids.length);
    // the next run finds nothing due: it runs alone and sends nothing
    const again = (await (
      await fetch(`${srv.url}/followups/process-automatic`, { headers: { authorization: `Bearer ${SECRET}` } })
    ).json()) as Body;
    expect(again.stats.fanout).toBeUndefined();
    expect(again.stats.sent).toBe(0);
    expect(sink.received).toHaveLength(ids.length);
  }, 120_000);
});
