import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { readStatus } from '../../lib/cron/status.js';
import { readMissedRuns } from '../../lib/cron/schedule.js';
import { statusRoute } from '../../lib/cron/route.js';
import { runJob } from '../../lib/cron/run.js';
import { PING_TIMEOUT_MS } from '../../lib/cron/healthcheck.js';
import type { Job } from '../../lib/cron/types.js';
import { seedHealthyRuns } from '../../devtools/console-fixtures.js';
import { serveHandler } from '../helpers/http.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { testRuntime } from '../helpers/runtime.js';
import { describePg } from '../helpers/services.js';
import { httpStatusOf } from '../../lib/cron/outcome.js';
import { inboxSyncJob } from '../../lib/jobs/inbox-sync/index.js';
import { followupsJob } from '../../lib/jobs/followups/index.js';
import { JOB_REGISTRY } from '../../lib/jobs/registry.js';

const SECRET = 'alerts-secret-0123456789abcdef';

describePg('missed runs: the ledger against the schedules (real PostgreSQL, injected clock)', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase('missed');
  });
  afterAll(async () => {
    await t?.drop();
  });
  beforeEach(async () => {
    await t.handle.db.execute(sql`delete from cron_runs`);
  });

  it('a healthy ledger: nothing missed; a gap of two hours in an hourly job: missed, and /cron/status answers 503', async () => {
    const now = new Date('2026-03-10T14:30:00Z');
    await seedHealthyRuns(t.handle.db, now, 3);
    let status = await readStatus(t.handle.db, now, JOB_REGISTRY);
    expect(status.jobs.map((j) => j.health)).toEqual(['healthy', 'healthy', 'healthy', 'healthy']);
    expect(status.healthy).toBe(true);

    // followups' schedule stopped firing after 11:00 (the 12:00, 13:00 and 14:00 runs never came)
    await t.handle.db.execute(sql`delete from cron_runs where job = 'followups' and started_at > '2026-03-10T11:00:00Z'`);
    status = await readStatus(t.handle.db, now, JOB_REGISTRY);
    const f = status.jobs.find((j) => j.job === 'followups')!;
    expect(f.health).toBe('missed');
    expect(f.missed.expected).toEqual(['2026-03-10T12:00:00.000Z', '2026-03-10T13:00:00.000Z']);
    expect(status.healthy).toBe(false);
    expect(status.jobs.filter((j) => j.health === 'missed').map((j) => j.job)).toEqual(['followups']);

    // a console or CLI run does not prove the schedule fires
    await t.handle.db.execute(sql`insert into cron_runs (id, job, trigger, started_at, finished_at, outcome) values
      ('manual-1', 'followups', 'console', '2026-03-10T14:10:00Z', '2026-03-10T14:10:01Z', 'succeeded')`);
    expect((await readMissedRuns(t.handle.db, now, JOB_REGISTRY.jobs)).followups.missed).toBe(true);

    // through HTTP with the real clock: the same ledger, shifted to end now
    await t.handle.db.execute(sql`delete from cron_runs where job <> 'followups'`);
    await seedHealthyRuns(t.handle.db, new Date(), 3);
    await t.handle.db.execute(sql`delete from cron_runs where job = 'followups'`);
    const { rt } = testRuntime({ CRON_SECRET: SECRET }, t.handle);
    const s = await serveHandler(statusRoute(JOB_REGISTRY, () => rt));
    try {
      const res = await fetch(`${s.url}/cron/status`, { headers: { authorization: `Bearer ${SECRET}` } });
      expect(res.status).toBe(503);
      const body = (await res.json()) as { jobs: { job: string; health: string }[] };
      expect(body.jobs.find((j) => j.job === 'followups')?.health).toBe('missed');
    } finally {
      await s.close();
    }
  });

  it('the Hobby hour: a daily run that arrives 50 minutes late is not missed', async () => {
    const now = new Date('2026-03-10T04:00:00Z');
    await seedHealthyRuns(t.handle.db, now, 3);
    await t.handle.db
      .execute(sql`update cron_runs set started_at = started_at + interval '50 minutes', finished_at = finished_at + interval '50 minutes'
      where job = 'account-deletions'`);
    expect((await readMissedRuns(t.handle.db, now, JOB_REGISTRY.jobs))['account-deletions'].missed).toBe(false);
    expect((await readMissedRuns(t.handle.db, new Date('2026-03-12T03:00:00Z'), JOB_REGISTRY.jobs))['account-deletions'].missed).toBe(true);
  });
});

type Ping = { path: string; body: string };

/** A local health-check service that records every ping. */
async function pingServer(): Promise<{ url: string; pings: Ping[]; close(): Promise<void> }> {
  const pings: Ping[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      pings.push({ path: req.url ?? '', body });
      res.end('OK');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    pings,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describePg('health-check pings against a local HTTP server (real PostgreSQL)', () => {
  let t: TestDatabase;
  let hc: Awaited<ReturnType<typeof pingServer>>;
  beforeAll(async () => {
    t = await createTestDatabase('healthcheck');
    hc = await pingServer();
  });
  afterAll(async () => {
    await hc?.close();
    await t?.drop();
  });
  beforeEach(() => {
    hc.pings.length = 0;
  });

  const ok: Job = { ...followupsJob, run: async () => ({ stats: { sent: 3 }, errors: [], partial: false }) };
  const broken: Job = {
    ...inboxSyncJob,
    run: async () => {
      throw Object.assign(new Error('IMAP en panne'), { code: 'imap_down' });
    },
  };

  it('start then success (bare URL), each with a short text body; the template takes {job}', async () => {
    const { rt } = testRuntime({ HEALTHCHECK_URL: `${hc.url}/ping/{job}` }, t.handle);
    const res = await runJob(ok, 'http', { dryRun: false, scope: {} }, rt);
    expect(httpStatusOf(res)).toBe(200);
    expect(hc.pings.map((p) => p.path)).toEqual(['/ping/followups/start', '/ping/followups']);
    expect(hc.pings[0].body).toBe('followups : démarrage');
    expect(hc.pings[1].body).toMatch(/^followups : réussi en \d+ ms, 0 erreur\(s\) d'élément — \{"sent":3\}$/);
  });

  it('failure pings /fail with the error; a per-job variable wins over the template; dry runs ping nothing', async () => {
    const { rt } = testRuntime({ HEALTHCHECK_URL: `${hc.url}/tpl/{job}`, HEALTHCHECK_URL_INBOX_SYNC: `${hc.url}/own-uuid` }, t.handle);
    const res = await runJob(broken, 'http', { dryRun: false, scope: {} }, rt);
    expect(httpStatusOf(res)).toBe(500);
    expect(hc.pings.map((p) => p.path)).toEqual(['/own-uuid/start', '/own-uuid/fail']);
    expect(hc.pings[1].body).toBe('inbox-sync : échec (HTTP 500) — imap_down : IMAP en panne');
    hc.pings.length = 0;
    await runJob(ok, 'http', { dryRun: true, scope: {} }, rt);
    expect(hc.pings).toEqual([]);
  });

  it('a dead endpoint (refused, or accepting and never answering) neither fails nor holds the run beyond the ping timeout', async () => {
    const refused = await new Promise<number>((r) => {
      const s = net.createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => r(p));
      });
    });
    const sockets: net.Socket[] = [];
    const silent = net.createServer((sock) => {
      sockets.push(sock);
    }); // never answers
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const silentPort = (silent.address() as AddressInfo).port;
    try {
      for (const url of [`http://127.0.0.1:${refused}/x`, `http://127.0.0.1:${silentPort}/x`]) {
        const { rt } = testRuntime({ HEALTHCHECK_URL: url }, t.handle);
        const started = Date.now();
        const res = await runJob(ok, 'http', { dryRun: false, scope: {} }, rt);
        const elapsed = Date.now() - started;
        expect(httpStatusOf(res)).toBe(200);
        expect(res.body.success).toBe(true);
        // the job itself takes milliseconds: start (3 s timeout, from the start) then the end ping (3 s)
        expect(elapsed).toBeLessThan(2 * PING_TIMEOUT_MS + 5_000);
      }
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  }, 30_000);
});
