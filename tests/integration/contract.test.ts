import { afterAll, beforeAll, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePg } from '../helpers/services.js';
import { testRuntime } from '../helpers/runtime.js';
import { serveHandler } from '../helpers/http.js';
import { cronRoute, statusRoute } from '../../lib/cron/route.js';
import { parseConfig } from '../../lib/config.js';
import { runtimeFromConfig } from '../../lib/cron/runtime.js';
import { queryRows } from '../../db/client.js';
import { NotImplementedError, type Job } from '../../lib/cron/types.js';
import { FORBIDDEN_BODY } from '../../lib/cron/auth.js';
import { inboxSyncJob } from '../../lib/jobs/inbox-sync/index.js';
import { followupsJob } from '../../lib/jobs/followups/index.js';
import { accountDeletionsJob } from '../../lib/jobs/account-deletions/index.js';
import { JOB_REGISTRY } from '../../lib/jobs/registry.js';

const SECRET = 'test-secret-0123456789abcdef';

const okJob: Job = {
  ...followupsJob,
  run: async (ctx) => ({
    stats: { seen: 1, now: ctx.now.toISOString(), dryRun: ctx.dryRun },
    errors: [],
    partial: false,
    plan: ctx.dryRun ? [{ would: 'send' }] : undefined,
  }),
};

describePg('HTTP contract (SPEC §2.2–2.4) over real HTTP and real PostgreSQL', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase('contract');
  });
  afterAll(async () => {
    await t?.drop();
  });

  async function serve(env: Record<string, string | undefined>, job: Job = okJob) {
    const { rt, logs } = testRuntime({ DATABASE_URL: t.url, ...env }, t.handle);
    const server = await serveHandler(cronRoute(job, () => rt));
    return { ...server, logs };
  }

  it('Bearer header and ?secret= reach the same handler; trigger is http, or vercel-cron by user agent', async () => {
    const s = await serve({ CRON_SECRET: SECRET });
    try {
      const a = await fetch(`${s.url}/followups/process-automatic`, { headers: { authorization: `Bearer ${SECRET}` } });
      expect(a.status).toBe(200);
      const ab = await a.json();
      expect(ab).toMatchObject({
        success: true,
        message: 'Traitement des relances automatiques terminé avec succès',
        job: 'followups',
        trigger: 'http',
        dryRun: false,
        partial: false,
        errors: [],
      });
      expect(ab.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(typeof ab.runId).toBe('string');
      expect(typeof ab.durationMs).toBe('number');
      const b = await fetch(`${s.url}/api/followups/process-automatic?secret=${SECRET}`, { method: 'POST' });
      expect(b.status).toBe(200);
      const c = await fetch(`${s.url}/x`, { headers: { authorization: `Bearer ${SECRET}`, 'user-agent': 'vercel-cron/1.0' } });
      expect((await c.json()).trigger).toBe('vercel-cron');
    } finally {
      await s.close();
    }
  });

  it('missing or wrong secret: 403 with the exact body, and the job does not start', async () => {
    let started = 0;
    const s = await serve(
      { CRON_SECRET: SECRET },
      {
        ...followupsJob,
        run: async () => {
          started++;
          return { stats: {}, errors: [], partial: false };
        },
      },
    );
    try {
      for (const init of [{}, { headers: { authorization: 'Bearer nope' } }, { headers: { authorization: SECRET } }]) {
        const r = await fetch(`${s.url}/`, init);
        expect(r.status).toBe(403);
        expect(await r.json()).toEqual(FORBIDDEN_BODY);
      }
      const q = await fetch(`${s.url}/?secret=${SECRET.slice(0, -1)}`);
      expect(q.status).toBe(403);
      expect(started).toBe(0);
    } finally {
      await s.close();
    }
  });

  it('the secret never appears in a log line, even when sent in the query string', async () => {
    const s = await serve({ CRON_SECRET: SECRET });
    try {
      await fetch(`${s.url}/followups/process-automatic?secret=${SECRET}&dryRun=1`);
      await fetch(`${s.url}/followups/process-automatic?secret=${SECRET}x`);
      expect(s.logs.length).toBeGreaterThan(2);
      expect(s.logs.join('\n')).not.toContain(SECRET);
      expect(s.logs.join('\n')).toContain('secret=[REDACTED]');
    } finally {
      await s.close();
    }
  });

  it('PUT, DELETE, PATCH, HEAD: 405 with Allow: GET, POST', async () => {
    const s = await serve({ CRON_SECRET: SECRET });
    try {
      for (const method of ['PUT', 'DELETE', 'PATCH', 'HEAD']) {
        const r = await fetch(`${s.url}/`, { method, headers: { authorization: `Bearer ${SECRET}` } });
        expect(r.status).toBe(405);
        expect(r.headers.get('allow')).toBe('GET, POST');
      }
    } finally {
      await s.close();
    }
  });

  it('invalid parameters: 400 listing the zod issues; unknown parameters ignored', async () => {
    const s = await serve({ CRON_SECRET: SECRET });
    try {
      for (const q of [
        'companyId=abc',
        'companyId=0',
        'dryRun=maybe',
        'shard=1',
        'shard=2&shards=2',
        'shards=65&shard=0',
        'now=yesterday',
        'dryRun=1&dryRun=0',
      ]) {
        const r = await fetch(`${s.url}/?${q}`, { headers: { authorization: `Bearer ${SECRET}` } });
        expect(r.status, q).toBe(400);
        const body = await r.json();
        expect(body.error).toBe('bad_request');
        expect(body.issues.length).toBeGreaterThan(0);
      }
      const ok = await fetch(`${s.url}/?foo=bar&debug=1`, { headers: { authorization: `Bearer ${SECRET}` } });
      expect(ok.status).toBe(200);
    } finally {
      await s.close();
    }
  });

  it('CRON_SECRET unset with NODE_ENV=production, VERCEL_ENV=production or preview: 500 misconfigured, nothing runs', async () => {
    for (const env of [{ NODE_ENV: 'production' }, { VERCEL_ENV: 'production' }, { VERCEL_ENV: 'preview' }]) {
      let started = 0;
      const s = await serve(env, {
        ...followupsJob,
        run: async () => {
          started++;
          return { stats: {}, errors: [], partial: false };
        },
      });
      try {
        const r = await fetch(`${s.url}/followups/process-automatic`);
        expect(r.status).toBe(500);
        expect(await r.json()).toEqual({ success: false, error: 'misconfigured', detail: 'CRON_SECRET is not set' });
        expect(started).toBe(0);
      } finally {
        await s.close();
      }
    }
  });

  it('CRON_SECRET unset in local development: runs, and the response and logs say it is unprotected', async () => {
    const s = await serve({});
    try {
      const r = await fetch(`${s.url}/`);
      expect(r.status).toBe(200);
      expect((await r.json()).warning).toMatch(/UNPROTECTED/);
      expect(s.logs.some((l) => l.includes('UNPROTECTED'))).toBe(true);
    } finally {
      await s.close();
    }
  });

  it('a malformed variable: 500 misconfigured naming it', async () => {
    const server = await serveHandler(cronRoute(okJob, () => runtimeFromConfig(parseConfig({ CRON_BUDGET_MS: 'soon' }))));
    try {
      const r = await fetch(`${server.url}/`);
      expect(r.status).toBe(500);
      const body = await r.json();
      expect(body.error).toBe('misconfigured');
      expect(body.detail).toContain('CRON_BUDGET_MS');
    } finally {
      await server.close();
    }
  });

  it('a job whose issue has not landed answers 501 not_implemented, never a fake success', async () => {
    const s = await serve(
      { CRON_SECRET: SECRET },
      {
        ...inboxSyncJob,
        run: async () => {
          throw new NotImplementedError('inbox-sync');
        },
      },
    );
    try {
      const r = await fetch(`${s.url}/`, { headers: { authorization: `Bearer ${SECRET}` } });
      expect(r.status).toBe(501);
      expect(await r.json()).toMatchObject({ success: false, error: 'not_implemented', job: 'inbox-sync' });
    } finally {
      await s.close();
    }
  });

  it('a failing job: 500 with job, runId, short code and message; no stack trace, no secret', async () => {
    const s = await serve(
      { CRON_SECRET: SECRET },
      {
        ...accountDeletionsJob,
        run: async () => {
          throw new Error(`connect failed for postgres://u:${SECRET}@db/x\n    at Foo (file.ts:1:1)`);
        },
      },
    );
    try {
      const r = await fetch(`${s.url}/`, { headers: { authorization: `Bearer ${SECRET}` } });
      expect(r.status).toBe(500);
      const text = await r.text();
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain('at Foo');
      expect(JSON.parse(text)).toMatchObject({ success: false, job: 'account-deletions', error: 'job_failed' });
      expect(JSON.parse(text).runId).toBeTruthy();
    } finally {
      await s.close();
    }
  });

  it('dry run: plan returned, no lease taken, only its own cron_runs row', async () => {
    const s = await serve({ CRON_SECRET: SECRET });
    try {
      await t.handle.db.execute(sql`delete from cron_runs`);
      const r = await fetch(`${s.url}/?dryRun=1`, { headers: { authorization: `Bearer ${SECRET}` } });
      const body = await r.json();
      expect(body).toMatchObject({ success: true, dryRun: true, plan: [{ would: 'send' }] });
      const runs = await queryRows<{ dry_run: boolean; outcome: string }>(t.handle.db, sql`select dry_run, outcome::text from cron_runs`);
      expect(runs).toEqual([{ dry_run: true, outcome: 'succeeded' }]);
    } finally {
      await s.close();
    }
  });

  it('ten simultaneous HTTP requests to one route: exactly one run row other than skipped', async () => {
    await t.handle.db.execute(sql`delete from cron_runs`);
    const slow: Job = {
      ...followupsJob,
      run: async () => {
        await new Promise((r) => setTimeout(r, 400));
        return { stats: {}, errors: [], partial: false };
      },
    };
    const s = await serve({ CRON_SECRET: SECRET }, slow);
    try {
      const res = await Promise.all(
        Array.from({ length: 10 }, () => fetch(`${s.url}/`, { headers: { authorization: `Bearer ${SECRET}` } }).then((r) => r.json())),
      );
      expect(res.filter((b) => b.skipped === true && b.reason === 'already-running')).toHaveLength(9);
      const runs = await queryRows<{ outcome: string }>(t.handle.db, sql`select outcome::text from cron_runs where outcome <> 'skipped'`);
      expect(runs).toEqual([{ outcome: 'succeeded' }]);
    } finally {
      await s.close();
    }
  });

  it('/cron/status: 200 on a fresh install (unknown), 503 after three failed runs, secret required', async () => {
    await t.handle.db.execute(sql`delete from cron_runs`);
    const { rt } = testRuntime({ CRON_SECRET: SECRET }, t.handle);
    const s = await serveHandler(statusRoute(JOB_REGISTRY, () => rt));
    try {
      expect((await fetch(`${s.url}/cron/status`)).status).toBe(403);
      const fresh = await fetch(`${s.url}/cron/status`, { headers: { authorization: `Bearer ${SECRET}` } });
      expect(fresh.status).toBe(200);
      const fb = await fresh.json();
      expect(fb.jobs.map((j: { health: string }) => j.health)).toEqual(['unknown', 'unknown', 'unknown', 'unknown']);
      await t.handle.db.execute(sql`insert into cron_runs (id, job, trigger, started_at, finished_at, outcome, dry_run)
        select gen_random_uuid()::text, 'overdue-reminders', 'http', now() - (g || ' minutes')::interval, now(), 'failed', false from generate_series(1, 3) g`);
      const bad = await fetch(`${s.url}/cron/status`, { headers: { authorization: `Bearer ${SECRET}` } });
      expect(bad.status).toBe(503);
      const bb = await bad.json();
      expect(bb.jobs.find((j: { job: string }) => j.job === 'overdue-reminders')).toMatchObject({
        health: 'unhealthy',
        reason: 'the last three runs failed',
      });
    } finally {
      await s.close();
    }
  });
});
