import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { queryRows } from '../../db/client.js';
import { STATUS_PATH } from '../../lib/cron/jobs.js';
import { JOB_REGISTRY } from '../../lib/jobs/registry.js';
import type { NetlifyFunction } from '../../netlify/lib/adapter.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePg, describeWithService, hasPostgres } from '../helpers/services.js';
import { hasBundle, loadBundledFunction, netlifyContext, readManifest, requestTo, requireBundle, scheduledRequest } from './bundle.js';
const JOB_IDS = JOB_REGISTRY.jobs.map((j) => j.id);
const JOBS = Object.fromEntries(JOB_REGISTRY.jobs.map((j) => [j.id, j]));

/**
 * The BUNDLED Netlify functions (zip-it-and-ship-it's zips), each unpacked outside the repository
 * and called as Netlify's runtime calls them (a Request and the context, API v2), on a production
 * deploy: a scheduled invocation, HTTP pings with and without the secret at the bare and /api
 * paths, the background functions, the status and the console, on a real PostgreSQL database.
 * The deploy context arrives with the request only (context.deploy.context), as on Netlify.
 * tests/netlify/preview.test.ts does the same on a deploy preview.
 */

const SECRET = 's'.repeat(32);
const UNREACHABLE_DB = 'postgres://nobody@127.0.0.1:1/none';
const PRODUCTION = netlifyContext('production');
const auth = { authorization: `Bearer ${SECRET}` };

describeWithService(hasBundle(), 'the Netlify bundle (.netlify/functions/: run `npm run netlify:build` first)')(
  'bundled Netlify functions, production deploy',
  () => {
    let db: TestDatabase | undefined;
    let root = '';
    const fns = new Map<string, NetlifyFunction>();
    const fn = (name: string) => fns.get(name)!;

    beforeAll(async () => {
      requireBundle();
      if (hasPostgres()) db = await createTestDatabase('netlifyprod');
      // Netlify gives a function no CONTEXT variable at run time: the adapter takes it from the request
      delete process.env.CONTEXT;
      delete process.env.VERCEL_ENV;
      delete process.env.SMTP_URL;
      Object.assign(process.env, {
        CRON_SECRET: SECRET,
        DATABASE_DRIVER: 'pg',
        DATABASE_URL: db?.url ?? UNREACHABLE_DB,
        LOG_LEVEL: 'error',
      });
      root = fs.mkdtempSync(path.join(os.tmpdir(), 'lokario-netlify-'));
      for (const f of readManifest()) fns.set(f.name, await loadBundledFunction(f, root));
    }, 120_000);

    afterAll(async () => {
      await db?.drop();
      if (root) fs.rmSync(root, { recursive: true, force: true });
    });

    it('unpacks and imports every bundled function, none carrying the embedded database', () => {
      expect([...fns.keys()].sort()).toEqual(readManifest().map((f) => f.name));
      for (const name of fns.keys()) expect(fs.existsSync(path.join(root, name, 'node_modules/@electric-sql/pglite')), name).toBe(false);
    });

    it.each(
      JOB_IDS.flatMap((id) => [
        [id, JOBS[id].path],
        [id, `/api${JOBS[id].path}`],
      ]),
    )('%s at %s: no or a wrong secret answers 403, and the first request sets the deploy context', async (id, p) => {
      const none = await fn(id)(requestTo(p), PRODUCTION);
      expect(none.status).toBe(403);
      expect(await none.json()).toMatchObject({ success: false, error: 'forbidden' });
      const wrong = await fn(id)(
        requestTo(`${p}?secret=${'w'.repeat(32)}`, { headers: { authorization: `Bearer ${'w'.repeat(32)}` } }),
        PRODUCTION,
      );
      expect(wrong.status).toBe(403);
      expect(process.env.CONTEXT).toBe('production');
    });

    it('a background function without the secret refuses too (its answer is dropped by Netlify, nothing runs)', async () => {
      const res = await fn('account-deletions-background')(requestTo(`/api/background${JOBS['account-deletions'].path}`), PRODUCTION);
      expect(res.status).toBe(403);
    });

    it("a scheduled function refuses what is not Netlify's scheduler: GET (405), a POST without next_run (400)", async () => {
      expect((await fn('account-deletions-schedule')(new Request('https://x.netlify.app/.netlify/functions/s'), PRODUCTION)).status).toBe(
        405,
      );
      const bad = await fn('account-deletions-schedule')(
        new Request('https://x.netlify.app/.netlify/functions/s', { method: 'POST', body: 'hello' }),
        PRODUCTION,
      );
      expect(bad.status).toBe(400);
      expect(await bad.json()).toMatchObject({ success: false, error: 'bad_request', issues: [{ path: 'next_run' }] });
    });

    describePg('with the secret, on a real PostgreSQL database', () => {
      const ledger = (runId: unknown) =>
        queryRows<{ trigger: string; dry_run: boolean; outcome: string; budget_ms: string; budget_source: string }>(
          db!.handle.db,
          sql`
      select trigger, dry_run, outcome, stats->>'budgetMs' as budget_ms, stats->>'budgetSource' as budget_source from cron_runs where id = ${String(runId)}`,
        );

      it("a scheduled invocation runs the job for real, trigger netlify-schedule, within Netlify's 30 s", async () => {
        const nextRun = new Date(Date.now() + 86_400_000);
        const res = await fn('account-deletions-schedule')(scheduledRequest(nextRun), PRODUCTION);
        const body = (await res.json()) as Record<string, unknown>;
        expect(res.status, JSON.stringify(body)).toBe(200);
        expect(body).toMatchObject({
          success: true,
          job: 'account-deletions',
          trigger: 'netlify-schedule',
          dryRun: false,
          budget: { ms: 25_000, source: 'platformLimit' },
          nextRun: nextRun.toISOString(),
        });
        expect(await ledger(body.runId)).toEqual([
          { trigger: 'netlify-schedule', dry_run: false, outcome: 'succeeded', budget_ms: '25000', budget_source: 'platformLimit' },
        ]);
      });

      it('an HTTP ping at the bare path and at /api runs with CRON_BUDGET_MS, trigger http', async () => {
        for (const p of [JOBS['account-deletions'].path, `/api${JOBS['account-deletions'].path}`]) {
          const res = await fn('account-deletions')(requestTo(p, { headers: auth }), PRODUCTION);
          const body = (await res.json()) as Record<string, unknown>;
          expect(res.status, JSON.stringify(body)).toBe(200);
          expect(body).toMatchObject({ success: true, trigger: 'http', dryRun: false, budget: { ms: 25_000, source: 'CRON_BUDGET_MS' } });
          expect((await ledger(body.runId))[0]).toMatchObject({ trigger: 'http', dry_run: false, outcome: 'succeeded' });
        }
      });

      it('the background function runs with the long budget, trigger netlify-background', async () => {
        const res = await fn('account-deletions-background')(
          requestTo(`/api/background${JOBS['account-deletions'].path}?secret=${SECRET}`, { method: 'POST' }),
          PRODUCTION,
        );
        const body = (await res.json()) as Record<string, unknown>;
        expect(res.status, JSON.stringify(body)).toBe(200);
        expect(body).toMatchObject({ success: true, trigger: 'netlify-background', budget: { ms: 295_000, source: 'maxDuration' } });
        expect((await ledger(body.runId))[0]).toMatchObject({ trigger: 'netlify-background', dry_run: false, outcome: 'succeeded' });
      });

      it.each(JOB_IDS)('%s: a dry run of the bundled job answers its JSON body, never a 500', async (id) => {
        const res = await fn(id)(requestTo(`/api${JOBS[id].path}?dryRun=1`, { headers: auth }), PRODUCTION);
        const body = (await res.json()) as { job?: string; error?: string; message?: string; dryRun?: boolean };
        expect([200, 501], `${id}: ${res.status} ${body.error ?? ''} ${body.message ?? ''}`).toContain(res.status);
        expect(body).toMatchObject({ job: id, dryRun: true });
      });

      it("/cron/status (bare and /api) answers the four jobs' health, and 403 without the secret", async () => {
        for (const p of [STATUS_PATH, `/api${STATUS_PATH}`]) {
          const res = await fn('cron-status')(requestTo(p, { headers: auth }), PRODUCTION);
          expect([200, 503]).toContain(res.status);
          const body = (await res.json()) as { success: boolean; jobs: { job: string }[] };
          expect(body.success).toBe(true);
          expect(body.jobs.map((j) => j.job).sort()).toEqual([...JOB_IDS].sort());
        }
        const status = await fn('cron-status')(requestTo(STATUS_PATH), PRODUCTION);
        expect(status.status).toBe(403);
      });

      it('the console (/cron and /api/cron/dashboard) signs in with a form post and renders the four jobs', async () => {
        for (const p of ['/cron', '/api/cron/dashboard']) {
          const form = await fn('cron-console')(requestTo(p), PRODUCTION);
          expect(form.status).toBe(200);
          expect(form.headers.get('x-frame-options')).toBe('DENY');
          expect(await form.text()).toContain('name="password"');
          const signIn = await fn('cron-console')(
            requestTo(p, {
              method: 'POST',
              redirect: 'manual',
              headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://lokario-cron.netlify.app' },
              body: new URLSearchParams({ op: 'signin', actor: 'netlify', password: SECRET }),
            }),
            PRODUCTION,
          );
          expect(signIn.status, await signIn.clone().text()).toBe(303);
          const cookie = signIn.headers.get('set-cookie')!.split(';')[0];
          const page = await fn('cron-console')(requestTo(p, { headers: { cookie } }), PRODUCTION);
          expect(page.status).toBe(200);
          expect((await page.text()).match(/<article class="job /g)).toHaveLength(JOB_IDS.length);
        }
        const foreign = await fn('cron-console')(
          requestTo('/cron', {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example' },
            body: new URLSearchParams({ op: 'signin', actor: 'x', password: SECRET }),
          }),
          PRODUCTION,
        );
        expect(foreign.status).toBe(403);
      });
    });
  },
);
