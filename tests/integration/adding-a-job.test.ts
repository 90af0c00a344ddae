import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { queryRows } from '../../db/client.js';
import { defineRegistry } from '../../lib/cron/jobs.js';
import { statusRoute, type Handler } from '../../lib/cron/route.js';
import { consoleRoute, isConsolePath } from '../../lib/console/route.js';
import { isStatusPath, jobForPath, readVercelJson, scheduledCrons, type VercelJson } from '../../lib/local/vercel-config.js';
import { JOB_REGISTRY } from '../../lib/jobs/registry.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePg } from '../helpers/services.js';
import { client, company } from './overdue-fixtures.js';
// the example job, made only of what docs/contract.md "Adding a job" asks for
import { quoteExpiryJob } from '../fixtures/quote-expiry/index.js';
import quoteExpiryRoute from '../fixtures/quote-expiry/route.js';

type Body = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

// step 4 of the recipe: its entry in the registry (lib/jobs/registry.ts)
const registry = defineRegistry({ jobs: [...JOB_REGISTRY.jobs, quoteExpiryJob], attention: JOB_REGISTRY.attention });
// step 3: its vercel.json entries
const fragment = JSON.parse(fs.readFileSync(new URL('../fixtures/quote-expiry/vercel.json', import.meta.url), 'utf8')) as VercelJson;

const COMPANIES = 6;
const EXPIRED_PER_COMPANY = 2;
const SHARDS = 3;
/** The variables the route's own runtime reads (lib/cron/runtime.ts defaultRuntime), as on a deployment. */
const ENV_KEYS = [
  'DATABASE_URL',
  'SELF_URL',
  'HEALTHCHECK_URL_QUOTE_EXPIRY',
  'FANOUT_ITEM_COST_MS',
  'LOG_LEVEL',
  'CRON_SECRET',
  'CONSOLE_PASSWORD',
  'VERCEL_ENV',
  'HEALTHCHECK_URL',
  'DATABASE_DRIVER',
  'FANOUT',
  'FANOUT_MAX',
] as const;

/** A tiny deployment: the example job's route file, and the status and console routes given the registry. */
function serveDeployment(): Promise<{ url: string; close(): Promise<void> }> {
  const status = statusRoute(registry);
  const operatorConsole = consoleRoute(registry);
  const server = http.createServer((req, res) => {
    const pathname = new URL(req.url ?? '/', 'http://x').pathname;
    const handler: Handler | undefined =
      jobForPath(registry.jobs, pathname) === quoteExpiryJob
        ? quoteExpiryRoute
        : isStatusPath(pathname)
          ? status
          : isConsolePath(pathname)
            ? operatorConsole
            : undefined;
    if (!handler) {
      res.statusCode = 404;
      res.end();
      return;
    }
    handler(req, res).catch((err) => {
      res.statusCode = 500;
      res.end(String(err));
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      }),
    ),
  );
}

/** A push-alert service: records every ping. */
async function pingServer() {
  const pings: { path: string; body: string }[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      pings.push({ path: req.url ?? '', body });
      res.end('OK');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    pings,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

async function until<T>(what: string, read: () => Promise<T>, done: (v: T) => boolean, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (done(v)) return v;
    if (Date.now() > end) throw new Error(`${what}: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describePg('a fifth job added by the recipe of docs/contract.md alone (real routes, real PostgreSQL)', () => {
  let t: TestDatabase;
  let deployment: Awaited<ReturnType<typeof serveDeployment>>;
  let hc: Awaited<ReturnType<typeof pingServer>>;
  const saved: Partial<Record<(typeof ENV_KEYS)[number], string>> = {};
  const companies: number[] = [];

  beforeAll(async () => {
    t = await createTestDatabase('addjob');
    const db = t.handle.db;
    for (let i = 0; i < COMPANIES; i++) {
      const c = await company(db, { name: `Menuiserie ${i}` });
      const cl = await client(db, c);
      companies.push(c);
      await db.execute(sql`insert into quotes (company_id, client_id, number, status, valid_until) values
        (${c}, ${cl}, ${`D-${i}-1`}, 'ENVOYE', now() - interval '3 days'),
        (${c}, ${cl}, ${`D-${i}-2`}, 'VU', now() - interval '1 day'),
        (${c}, ${cl}, ${`D-${i}-3`}, 'ENVOYE', now() + interval '5 days'),
        (${c}, ${cl}, ${`D-${i}-4`}, 'ACCEPTE', now() - interval '9 days')`);
    }
    deployment = await serveDeployment();
    hc = await pingServer();
    for (const k of ENV_KEYS) {
      saved[k] = process.env[k];
      delete process.env[k];
    }
    Object.assign(process.env, {
      DATABASE_URL: t.url,
      SELF_URL: deployment.url,
      HEALTHCHECK_URL_QUOTE_EXPIRY: `${hc.url}/quote-expiry-uuid`,
      // every expired quote "costs" 10 s: the sweep does not fit in one invocation and fans out
      FANOUT_ITEM_COST_MS: '10000',
      LOG_LEVEL: 'silent',
    });
  });
  afterAll(async () => {
    for (const k of ENV_KEYS) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
    await deployment?.close();
    await hc?.close();
    await t?.drop();
  });

  it('its vercel.json entries map to it for the local scheduler, with its schedule, path and maxDuration', () => {
    const crons = scheduledCrons(registry.jobs, { crons: [...(readVercelJson().crons ?? []), ...(fragment.crons ?? [])] });
    expect(crons.map((c) => c.job.id).sort()).toEqual(registry.jobs.map((j) => j.id).sort());
    expect(crons.find((c) => c.job === quoteExpiryJob)?.schedule).toBe(quoteExpiryJob.schedule);
    expect(fragment.rewrites).toContainEqual({ source: quoteExpiryJob.path, destination: `/api${quoteExpiryJob.path}` });
    expect(fragment.functions?.[`api${quoteExpiryJob.path}.ts`]?.maxDuration).toBe(quoteExpiryJob.maxDurationSec);
  });

  it('runs through its route file: its message, its stats, a dry run with its plan', async () => {
    const one = await fetch(`${deployment.url}${quoteExpiryJob.path}?companyId=${companies[0]}`);
    const body = (await one.json()) as Body;
    expect(one.status, JSON.stringify(body)).toBe(200);
    expect(body).toMatchObject({
      success: true,
      job: 'quote-expiry',
      message: 'Traitement des devis expirés terminé avec succès',
      stats: { expired: EXPIRED_PER_COMPANY },
    });
    const dry = (await (await fetch(`${deployment.url}/api${quoteExpiryJob.path}?dryRun=1`)).json()) as Body;
    expect(dry.plan).toHaveLength(COMPANIES * EXPIRED_PER_COMPANY);
    expect(dry.plan[0]).toMatchObject({ number: expect.stringMatching(/^D-\d-1$/) });
  });

  it('fans out like the built-in jobs, pings its own health-check URL, and shows in /cron/status', async () => {
    hc.pings.length = 0;
    const res = await fetch(`${deployment.url}${quoteExpiryJob.path}`, { headers: { 'user-agent': 'vercel-cron/1.0' } });
    const body = (await res.json()) as Body;
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body.stats).toMatchObject({ fanout: true, due: COMPANIES * EXPIRED_PER_COMPANY, shards: SHARDS, shardsAccepted: SHARDS });
    const shards = await until(
      'shards finished',
      () =>
        queryRows<{ outcome: string; stats: Body | null }>(
          t.handle.db,
          sql`
      select outcome, stats from cron_runs where parent_run_id = ${body.runId}`,
        ),
      (rows) => rows.length === SHARDS && rows.every((r) => r.outcome !== 'running'),
    );
    expect(shards.map((s) => s.outcome)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    expect(shards.reduce((n, s) => n + Number(s.stats?.expired), 0)).toBe(COMPANIES * EXPIRED_PER_COMPANY);

    // the coordinator and each shard: /start, then success
    const pings = await until(
      'pings',
      async () => [...hc.pings],
      (p) => p.length === 2 * (SHARDS + 1),
    );
    expect(pings.filter((p) => p.path === '/quote-expiry-uuid/start')).toHaveLength(SHARDS + 1);
    expect(pings.filter((p) => p.path === '/quote-expiry-uuid')).toHaveLength(SHARDS + 1);
    expect(pings.every((p) => p.body.startsWith('quote-expiry : '))).toBe(true);

    const status = await fetch(`${deployment.url}/cron/status`);
    const s = (await status.json()) as Body;
    expect(status.status, JSON.stringify(s)).toBe(200);
    expect(s.jobs.map((j: Body) => j.job)).toEqual(registry.jobs.map((j) => j.id));
    expect(s.jobs.find((j: Body) => j.job === 'quote-expiry')).toMatchObject({
      schedule: '0 3 * * *',
      health: 'healthy',
      missed: { missed: false },
    });
    expect(s.sweeps['quote-expiry']).toMatchObject({
      runId: body.runId,
      due: COMPANIES * EXPIRED_PER_COMPANY,
      done: COMPANIES * EXPIRED_PER_COMPANY,
      left: 0,
      shards: SHARDS,
      shardsFailed: 0,
    });
    // its attention section, beside the built-in jobs' and the bounces
    expect(s.quoteExpiry).toEqual({ expiredOpenQuotes: COMPANIES * EXPIRED_PER_COMPANY });
    expect(s).toHaveProperty('inboxFreshness');
    expect(s).toHaveProperty('bounces');
  });

  it('is in the console: its card with its label, and a dry run from the console', async () => {
    const page = await fetch(`${deployment.url}/cron`);
    const html = await page.text();
    expect(page.status).toBe(200);
    expect(html.match(/<article class="job /g)).toHaveLength(registry.jobs.length);
    expect(html).toMatch(/<article class="job healthy" data-job="quote-expiry"><h3>Devis expirés /);
    const csrf = /name="csrf" value="([^"]+)"/.exec(html)![1];
    const run = await fetch(`${deployment.url}/cron`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf, op: 'run', job: 'quote-expiry', dryRun: '1' }),
    });
    expect(run.status).toBe(200);
    expect(await run.text()).toContain('Simulation de « Devis expirés » : terminée');
  });
});
