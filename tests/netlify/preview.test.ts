import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { queryRows } from '../../db/client.js';
import { JOB_REGISTRY } from '../../lib/jobs/registry.js';
import type { NetlifyFunction } from '../../netlify/lib/adapter.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePg, describeWithService, hasPostgres } from '../helpers/services.js';
import { hasBundle, loadBundledFunction, netlifyContext, readManifest, requestTo, requireBundle, scheduledRequest } from './bundle.js';
const JOBS = Object.fromEntries(JOB_REGISTRY.jobs.map((j) => [j.id, j]));

/**
 * The bundled functions on a deploy preview (CONTEXT=deploy-preview): the secret is still
 * required, every run is a dry run, and PREVIEW_SIDE_EFFECTS=on lifts that. Each bundle reads its
 * configuration once, so the second half imports a second copy after setting the variable.
 */

const SECRET = 'p'.repeat(32);
const UNREACHABLE_DB = 'postgres://nobody@127.0.0.1:1/none';
const PREVIEW = netlifyContext('deploy-preview');
const JOB = 'account-deletions';
const PING = `/api${JOBS[JOB].path}`;

describeWithService(hasBundle(), 'the Netlify bundle (.netlify/functions/: run `npm run netlify:build` first)')(
  'bundled Netlify functions, deploy preview',
  () => {
    let db: TestDatabase | undefined;
    let root = '';

    const load = async (copy: string, names: string[]) => {
      const out = new Map<string, NetlifyFunction>();
      for (const f of readManifest().filter((m) => names.includes(m.name)))
        out.set(f.name, await loadBundledFunction(f, path.join(root, copy)));
      return out;
    };

    beforeAll(async () => {
      requireBundle();
      if (hasPostgres()) db = await createTestDatabase('netlifypreview');
      delete process.env.VERCEL_ENV;
      delete process.env.SMTP_URL;
      delete process.env.PREVIEW_SIDE_EFFECTS;
      Object.assign(process.env, {
        CONTEXT: 'deploy-preview',
        CRON_SECRET: SECRET,
        DATABASE_DRIVER: 'pg',
        DATABASE_URL: db?.url ?? UNREACHABLE_DB,
        LOG_LEVEL: 'error',
      });
      root = fs.mkdtempSync(path.join(os.tmpdir(), 'lokario-netlify-preview-'));
    }, 60_000);

    afterAll(async () => {
      await db?.drop();
      if (root) fs.rmSync(root, { recursive: true, force: true });
    });

    const ledger = (runId: unknown) =>
      queryRows<{ trigger: string; dry_run: boolean }>(
        db!.handle.db,
        sql`select trigger, dry_run from cron_runs where id = ${String(runId)}`,
      );

    it('the secret is required on a preview too', async () => {
      const fns = await load('secret', [JOB]);
      expect((await fns.get(JOB)!(requestTo(PING), PREVIEW)).status).toBe(403);
    });

    describePg('on a real PostgreSQL database', () => {
      it('every run is a dry run: an HTTP ping, a background call, a scheduled invocation', async () => {
        const fns = await load('dry', [JOB, `${JOB}-background`, `${JOB}-schedule`]);
        const calls: [string, Request][] = [
          [JOB, requestTo(PING, { headers: { authorization: `Bearer ${SECRET}` } })],
          [`${JOB}-background`, requestTo(`/api/background${JOBS[JOB].path}?secret=${SECRET}`, { method: 'POST' })],
          [`${JOB}-schedule`, scheduledRequest()],
        ];
        for (const [name, req] of calls) {
          const res = await fns.get(name)!(req, PREVIEW);
          const body = (await res.json()) as Record<string, unknown>;
          expect(res.status, `${name}: ${JSON.stringify(body)}`).toBe(200);
          expect(body, name).toMatchObject({ success: true, dryRun: true, previewDryRun: true });
          expect((await ledger(body.runId))[0], name).toMatchObject({ dry_run: true });
        }
      });

      it('PREVIEW_SIDE_EFFECTS=on lets a preview run for real', async () => {
        process.env.PREVIEW_SIDE_EFFECTS = 'on';
        const fns = await load('side-effects', [JOB]);
        const res = await fns.get(JOB)!(requestTo(PING, { headers: { authorization: `Bearer ${SECRET}` } }), PREVIEW);
        const body = (await res.json()) as Record<string, unknown>;
        expect(res.status, JSON.stringify(body)).toBe(200);
        expect(body).toMatchObject({ success: true, dryRun: false, trigger: 'http' });
        expect(body.previewDryRun).toBeUndefined();
        expect(await ledger(body.runId)).toEqual([{ trigger: 'http', dry_run: false }]);
      });
    });
  },
);
