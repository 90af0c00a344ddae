import { afterAll, beforeAll, expect, it } from 'vitest';
import net from 'node:net';
import pg from 'pg';
import { sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePg } from '../helpers/services.js';
import { testRuntime } from '../helpers/runtime.js';
import { serveHandler } from '../helpers/http.js';
import { cronRoute, statusRoute } from '../../lib/cron/route.js';
import { JOB_REGISTRY } from '../../lib/jobs/registry.js';
import { queryRows } from '../../db/client.js';
import { decodeForRedaction } from '../../lib/log.js';
import type { Job } from '../../lib/cron/types.js';
import { freePort } from '../../devtools/ports.js';
import { overdueRemindersJob } from '../../lib/jobs/overdue-reminders/index.js';
import { followupsJob } from '../../lib/jobs/followups/index.js';
import { accountDeletionsJob } from '../../lib/jobs/account-deletions/index.js';

const SECRET = 'hardening-secret-0123456789';
const auth = { headers: { authorization: `Bearer ${SECRET}` } };

/** A raw HTTP/1.1 request on a socket, for what fetch() cannot send (a header twice). */
async function rawRequest(url: string, lines: string[]): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => socket.write(`${lines.join('\r\n')}\r\nConnection: close\r\n\r\n`));
    let data = '';
    socket.on('data', (d) => (data += d));
    socket.on('end', () =>
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1]), body: data.split('\r\n\r\n').slice(1).join('\r\n\r\n') }),
    );
    socket.on('error', reject);
  });
}

/** HTTP hardening (docs/security.md) over real HTTP against the route handlers, real PostgreSQL. */
describePg('HTTP hardening: integer bounds, duplicated credentials, encoded secrets, error texts', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase('hardening');
  });
  afterAll(async () => {
    await t?.drop();
  });

  it('companyId beyond int4 (and absurdly long): 400 on all four jobs, nothing runs, and /cron/status stays 200', async () => {
    await t.handle.db.execute(sql`delete from cron_runs`);
    const { rt } = testRuntime({ CRON_SECRET: SECRET }, t.handle);
    for (const job of JOB_REGISTRY.jobs) {
      const id = job.id;
      const s = await serveHandler(cronRoute(job, () => rt));
      try {
        for (const q of ['companyId=2147483648', 'companyId=4294967296', `companyId=${'9'.repeat(400)}`, 'companyId=99999999999']) {
          for (let i = 0; i < 3; i++) {
            const r = await fetch(`${s.url}/?${q}`, auth);
            expect(r.status, `${id} ${q}`).toBe(400);
            expect((await r.json()).issues[0].path).toBe('companyId');
          }
        }
        // the largest int4 is a valid (if empty) scope
        expect((await fetch(`${s.url}/?companyId=2147483647&dryRun=1`, auth)).status, id).toBe(200);
      } finally {
        await s.close();
      }
    }
    const failed = await queryRows<{ n: number }>(t.handle.db, sql`select count(*)::int as n from cron_runs where outcome = 'failed'`);
    expect(failed[0].n).toBe(0);
    const status = await serveHandler(statusRoute(JOB_REGISTRY, () => rt));
    try {
      const r = await fetch(`${status.url}/cron/status`, auth);
      expect(r.status).toBe(200);
    } finally {
      await status.close();
    }
  });

  it('two Authorization headers, or ?secret= twice: 400, the job does not start (even when both are right)', async () => {
    let started = 0;
    const job: Job = {
      ...followupsJob,
      run: async () => {
        started++;
        return { stats: {}, errors: [], partial: false };
      },
    };
    const { rt } = testRuntime({ CRON_SECRET: SECRET }, t.handle);
    const s = await serveHandler(cronRoute(job, () => rt));
    try {
      const host = `Host: ${new URL(s.url).host}`;
      for (const pair of [
        [SECRET, SECRET],
        [SECRET, 'wrong'],
        ['wrong', SECRET],
      ]) {
        const r = await rawRequest(s.url, [
          'GET /followups/process-automatic HTTP/1.1',
          host,
          `Authorization: Bearer ${pair[0]}`,
          `authorization: Bearer ${pair[1]}`,
        ]);
        expect(r.status, pair.join('/')).toBe(400);
        expect(JSON.parse(r.body)).toMatchObject({ success: false, error: 'bad_request' });
      }
      const q = await fetch(`${s.url}/?secret=${SECRET}&secret=${SECRET}`);
      expect(q.status).toBe(400);
      expect(started).toBe(0);
      // one header is still fine
      const ok = await rawRequest(s.url, ['GET / HTTP/1.1', host, `Authorization: Bearer ${SECRET}`]);
      expect(ok.status).toBe(200);
      expect(started).toBe(1);
    } finally {
      await s.close();
    }
  });

  it('the secret never reaches a log line, whatever the URL encoding of its name or value', async () => {
    const { rt, logs } = testRuntime({ CRON_SECRET: SECRET }, t.handle);
    const s = await serveHandler(cronRoute({ ...followupsJob, run: async () => ({ stats: {}, errors: [], partial: false }) }, () => rt));
    const every = (v: string) => [...v].map((c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`).join('');
    try {
      const accepted = [
        `s%65cret=${SECRET}`,
        `%73%65%63%72%65%74=${SECRET}`,
        `secret=${every(SECRET)}`,
        `SECRET=${SECRET}`.toLowerCase(),
        `s%65cret=${every(SECRET)}&dryRun=1`,
      ];
      for (const q of accepted) expect((await fetch(`${s.url}/followups/process-automatic?${q}`)).status, q).toBe(200);
      // encoded twice, or under another name: refused, and still not logged
      for (const q of [
        `s%2565cret=${every(SECRET).replace(/%/g, '%25')}`,
        `token=${SECRET}`,
        `x=${every(SECRET)}`,
        `pass%77ord=${SECRET}x`,
      ]) {
        expect((await fetch(`${s.url}/followups/process-automatic?${q}`)).status, q).toBe(403);
      }
      expect(logs.length).toBeGreaterThan(8);
      for (const line of logs) {
        expect(line).not.toContain(SECRET);
        expect(decodeForRedaction(line)).not.toContain(SECRET);
        expect(decodeForRedaction(line)).not.toContain(SECRET.slice(0, 12));
      }
      expect(logs.join('\n')).toContain('secret=[REDACTED]');
    } finally {
      await s.close();
    }
  });

  it('a failed run: response and ledger without SQL text, host or port; the full error is in the log, redacted', async () => {
    const port = await freePort();
    const jobs: Job[] = [
      {
        ...followupsJob,
        run: async (ctx) => {
          await ctx.db.execute(sql`select * from no_such_table where note = ${'client@exemple.fr'}`);
          return { stats: {}, errors: [], partial: false };
        },
      },
      {
        ...overdueRemindersJob,
        run: async () => {
          const c = new pg.Client({ host: '127.0.0.1', port });
          await c.connect();
          return { stats: {}, errors: [], partial: false };
        },
      },
      {
        ...accountDeletionsJob,
        run: async () => {
          const c = new pg.Client({ host: 'db.internal.lokario.example', port: 5433, connectionTimeoutMillis: 2_000 });
          await c.connect();
          return { stats: {}, errors: [], partial: false };
        },
      },
    ];
    for (const job of jobs) {
      const { rt, logs } = testRuntime({ CRON_SECRET: SECRET }, t.handle);
      const s = await serveHandler(cronRoute(job, () => rt));
      try {
        const r = await fetch(`${s.url}/`, auth);
        expect(r.status, job.id).toBe(500);
        const text = await r.text();
        const body = JSON.parse(text);
        const [run] = await queryRows<{ error: string }>(t.handle.db, sql`select error from cron_runs where id = ${body.runId}`);
        for (const out of [text, run.error]) {
          expect(out, job.id).not.toMatch(/select|Failed query|params:|no_such_table where/i);
          expect(out, job.id).not.toContain('127.0.0.1');
          expect(out, job.id).not.toContain(String(port));
          expect(out, job.id).not.toContain('5433');
          expect(out, job.id).not.toContain('db.internal.lokario.example');
          expect(out, job.id).not.toContain('client@exemple.fr');
        }
        if (job.id === 'followups')
          expect(body).toMatchObject({ error: 'database_error', message: 'relation "no_such_table" does not exist' });
        else expect(body.error, job.id).toBe('connection_error');
        const logged = logs.join('\n');
        expect(logged).toContain('run failed');
        if (job.id === 'followups') {
          expect(logged).toContain('Failed query'); // the statement is in the server-side log…
          expect(logged).not.toContain('client@exemple.fr'); // …with its values redacted
        }
      } finally {
        await s.close();
      }
    }
  });

  it('the database unreachable: 500 database_unavailable without its host or port', async () => {
    const port = await freePort();
    const { rt } = testRuntime({
      CRON_SECRET: SECRET,
      DATABASE_URL: `postgres://lokario:pw@127.0.0.1:${port}/lokario`,
      DATABASE_DRIVER: 'pg',
    });
    const s = await serveHandler(cronRoute({ ...followupsJob, run: async () => ({ stats: {}, errors: [], partial: false }) }, () => rt));
    try {
      const r = await fetch(`${s.url}/`, auth);
      expect(r.status).toBe(500);
      const text = await r.text();
      expect(JSON.parse(text).error).toBe('database_unavailable');
      expect(text).not.toContain('127.0.0.1');
      expect(text).not.toContain(String(port));
      expect(text).not.toContain('pw');
      expect(text).not.toMatch(/Failed query|insert into|cron_runs/i);
      expect(JSON.parse(text).message).toMatch(/ECONNREFUSED \[address\]/);
    } finally {
      await s.close();
    }
  });
});
