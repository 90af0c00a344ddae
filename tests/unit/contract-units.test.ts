import crypto from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { isAuthorized, secretMatches } from '../../lib/cron/auth.js';
import { BadRequestError, parseRunParams } from '../../lib/cron/params.js';
import { ConfigError, parseConfig } from '../../lib/config.js';
import { judgeHealth } from '../../lib/cron/status.js';
import { scheduleIntervalMs } from '../../lib/cron/schedule.js';
import { redactText } from '../../lib/log.js';
import { budgetFor, SAFETY_MARGIN_MS } from '../../lib/cron/budget.js';
import { leaseKey } from '../../lib/cron/scope.js';
import { scheduledCrons, readVercelJson, jobForPath } from '../../lib/local/vercel-config.js';
import { defineRegistry } from '../../lib/cron/jobs.js';
import { JOB_REGISTRY } from '../../lib/jobs/registry.js';

const local = parseConfig({ NODE_ENV: 'development' });

describe('secret comparison', () => {
  it('accepts the exact secret only', () => {
    expect(secretMatches('s3cret-value', 's3cret-value')).toBe(true);
    for (const c of ['s3cret-valuE', 's3cret-valu', 's3cret-value ', '', undefined]) expect(secretMatches(c, 's3cret-value')).toBe(false);
  });

  it('is constant-time by construction: always one timingSafeEqual on two 32-byte digests, whatever the input length', () => {
    const spy = vi.spyOn(crypto, 'timingSafeEqual');
    try {
      for (const c of ['', 'x', 'a'.repeat(1000), 's3cret-value', undefined]) {
        spy.mockClear();
        secretMatches(c, 's3cret-value');
        expect(spy).toHaveBeenCalledTimes(1);
        const [a, b] = spy.mock.calls[0] as unknown as [Buffer, Buffer];
        expect(a.length).toBe(32);
        expect(b.length).toBe(32);
      }
    } finally {
      spy.mockRestore();
    }
  });

  it('Bearer header (case-insensitive scheme) or query secret', () => {
    expect(isAuthorized('Bearer abc', undefined, 'abc')).toBe(true);
    expect(isAuthorized('bearer   abc ', undefined, 'abc')).toBe(true);
    expect(isAuthorized(undefined, 'abc', 'abc')).toBe(true);
    expect(isAuthorized('Bearer wrong', 'abc', 'abc')).toBe(true);
    expect(isAuthorized('Basic abc', undefined, 'abc')).toBe(false);
    expect(isAuthorized('abc', undefined, 'abc')).toBe(false);
    expect(isAuthorized(undefined, undefined, 'abc')).toBe(false);
  });
});

describe('query parameters', () => {
  it('parses dryRun, companyId, shards and now', () => {
    expect(parseRunParams({}, local)).toEqual({ dryRun: false, scope: {}, nowOverride: undefined });
    expect(parseRunParams({ dryRun: '1', companyId: '42' }, local)).toMatchObject({ dryRun: true, scope: { companyId: 42 } });
    expect(parseRunParams({ shard: '0', shards: '4' }, local).scope).toEqual({ shard: { k: 0, n: 4 } });
    expect(parseRunParams({ shard: '63', shards: '64' }, local).scope).toEqual({ shard: { k: 63, n: 64 } });
    expect(parseRunParams({ now: '2026-03-29T01:30:00+01:00' }, local).nowOverride?.toISOString()).toBe('2026-03-29T00:30:00.000Z');
    expect(parseRunParams({ secret: 'x', other: 'y' }, local)).toMatchObject({ dryRun: false, scope: {} });
  });

  it.each([
    [{ companyId: '-1' }],
    [{ companyId: '1.5' }],
    [{ shard: '0' }],
    [{ shards: '2' }],
    [{ shard: '2', shards: '2' }],
    [{ shard: '0', shards: '0' }],
    [{ shard: '0', shards: '65' }],
    [{ now: '2026-13-01T00:00:00Z' }],
    [{ now: '2026-03-29 01:30' }],
    [{ dryRun: ['1', '1'] }],
  ])('rejects %j with a 400 BadRequestError', (q) => {
    expect(() => parseRunParams(q as Record<string, string>, local)).toThrow(BadRequestError);
  });

  it('the clock override is refused on Vercel deployments and with NODE_ENV=production', () => {
    for (const env of [{ NODE_ENV: 'production' }, { VERCEL_ENV: 'production' }, { VERCEL_ENV: 'preview' }]) {
      const cfg = parseConfig({ ...env, CRON_SECRET: 'x', DATABASE_URL: 'postgres://db.example/x' });
      expect(() => parseRunParams({ now: '2026-01-01T00:00:00Z' }, cfg)).toThrow(/local development/);
    }
    expect(parseRunParams({ now: '2026-01-01T00:00:00Z' }, parseConfig({ VERCEL_ENV: 'development' })).nowOverride).toBeDefined();
  });
});

describe('configuration', () => {
  it('defaults: embedded database, 25 s budget, concurrency 4, Europe-friendly mail defaults', () => {
    const c = parseConfig({});
    expect(c).toMatchObject({
      databaseDriver: 'pglite',
      PGLITE_DIR: '.data/pglite',
      CRON_BUDGET_MS: 25000,
      SYNC_CONCURRENCY: 16,
      MAIL_FROM: 'Lokario <noreply@lokario.fr>',
      IMAP_CONNECT_TIMEOUT_MS: 10000,
      SMTP_SOCKET_TIMEOUT_MS: 30000,
      MAX_MESSAGE_BYTES: 25 * 1024 * 1024,
    });
    expect(c.isProductionLike).toBe(false);
  });

  it('chooses the driver from DATABASE_URL, and DATABASE_DRIVER overrides it', () => {
    expect(parseConfig({ DATABASE_URL: 'postgres://u:p@ep-x-123.eu-central-1.aws.neon.tech/db' }).databaseDriver).toBe('neon');
    expect(parseConfig({ DATABASE_URL: 'postgresql://u:p@db.supabase.co:5432/db' }).databaseDriver).toBe('pg');
    expect(parseConfig({ DATABASE_URL: 'postgres://127.0.0.1/db', DATABASE_DRIVER: 'neon' }).databaseDriver).toBe('neon');
    expect(parseConfig({ DATABASE_URL: 'postgres://x.neon.tech.evil.com/db' }).databaseDriver).toBe('pg');
  });

  it('one clear error naming every bad variable; blank values count as unset', () => {
    expect(() => parseConfig({ CRON_BUDGET_MS: 'abc' })).toThrow(ConfigError);
    try {
      parseConfig({ CRON_BUDGET_MS: 'abc', DATABASE_URL: 'mysql://x', FRONTEND_URL: 'not a url', DATABASE_DRIVER: 'oracle' });
      expect.unreachable();
    } catch (e) {
      for (const name of ['CRON_BUDGET_MS', 'DATABASE_URL', 'FRONTEND_URL', 'DATABASE_DRIVER'])
        expect((e as Error).message).toContain(name);
    }
    expect(() => parseConfig({ DATABASE_DRIVER: 'pg' })).toThrow(/DATABASE_URL/);
    // a Vercel function cannot keep an embedded database: a deployment needs DATABASE_URL
    expect(() => parseConfig({ VERCEL_ENV: 'production', CRON_SECRET: 'x' })).toThrow(/DATABASE_URL: required on a Vercel deployment/);
    expect(() => parseConfig({ VERCEL_ENV: 'preview', CRON_SECRET: 'x' })).toThrow(/DATABASE_URL/);
    expect(parseConfig({ CRON_SECRET: '  ', SMTP_URL: '' }).CRON_SECRET).toBeUndefined();
  });
});

describe('health rule of /cron/status', () => {
  const now = new Date('2026-11-27T12:00:00Z');
  const hour = 3600_000;
  const at = (h: number) => new Date(now.getTime() - h * hour);
  it('never run → unknown', () => expect(judgeHealth([], null, hour, now).health).toBe('unknown'));
  it('recent success → healthy', () =>
    expect(judgeHealth([{ outcome: 'succeeded', startedAt: at(1) }], at(1), hour, now).health).toBe('healthy'));
  it('last success older than three intervals → unhealthy', () =>
    expect(judgeHealth([{ outcome: 'succeeded', startedAt: at(3.5) }], at(3.5), hour, now).health).toBe('unhealthy'));
  it('three failures in a row → unhealthy even with a recent success', () => {
    const runs = [
      { outcome: 'failed', startedAt: at(0.1) },
      { outcome: 'failed', startedAt: at(0.2) },
      { outcome: 'failed', startedAt: at(0.3) },
    ];
    expect(judgeHealth(runs, at(0.5), hour, now).health).toBe('unhealthy');
    expect(judgeHealth(runs.slice(0, 2), at(0.5), hour, now).health).toBe('healthy');
  });
  it('schedule intervals come from the cron expressions', () => {
    expect(scheduleIntervalMs('*/5 * * * *', now)).toBe(5 * 60_000);
    expect(scheduleIntervalMs('0 * * * *', now)).toBe(hour);
    expect(scheduleIntervalMs('0 2 * * *', now)).toBe(24 * hour);
  });
});

describe('logs and budget', () => {
  it('redacts secrets, query secrets, bearer tokens, URL passwords and masks addresses', () => {
    const out = redactText('GET /x?secret=abc&dryRun=1 Authorization: Bearer tok123 postgres://u:pw@h/db jean.dupont@example.fr MYSECRET', [
      'MYSECRET',
    ]);
    expect(out).not.toMatch(/abc|tok123|:pw@|jean\.dupont|MYSECRET/);
    expect(out).toContain('secret=[REDACTED]&dryRun=1');
    expect(out).toContain('j***@example.fr');
  });
  it('the budget never exceeds maxDuration minus the safety margin', () => {
    expect(budgetFor('http', 25_000, 60).ms).toBe(25_000);
    expect(budgetFor('http', 120_000, 60).ms).toBe(60_000 - SAFETY_MARGIN_MS);
  });
  it('lease keys include the shard', () => {
    expect(leaseKey('inbox-sync', {})).toBe('inbox-sync');
    expect(leaseKey('inbox-sync', { companyId: 3 })).toBe('inbox-sync');
    expect(leaseKey('inbox-sync', { shard: { k: 1, n: 4 } })).toBe('inbox-sync#1/4');
  });
});

describe('vercel.json, read by the local scheduler', () => {
  it('declares the four crons with the schedules of SPEC §1, each a valid 5-field expression', () => {
    const crons = scheduledCrons(JOB_REGISTRY.jobs);
    expect(crons.map((c) => [c.job.id, c.schedule]).sort()).toEqual(JOB_REGISTRY.jobs.map((j) => [j.id, j.schedule]).sort());
  });
  it('has a rewrite for every bare path and a maxDuration for every api file', () => {
    const v = readVercelJson();
    for (const p of [...JOB_REGISTRY.jobs.map((j) => j.path), '/cron/status']) {
      expect(v.rewrites).toContainEqual({ source: p, destination: `/api${p}` });
      const file = `api${p}.ts`;
      expect(v.functions?.[file]?.maxDuration, file).toBeGreaterThan(0);
    }
    for (const j of JOB_REGISTRY.jobs) expect(v.functions?.[`api${j.path}.ts`]?.maxDuration).toBe(j.maxDurationSec);
  });
  it('rejects a 4-field or invalid schedule and a path that is not a job', () => {
    expect(() =>
      scheduledCrons(JOB_REGISTRY.jobs, { crons: [{ path: '/api/followups/process-automatic', schedule: '*/5 * * *' }] }),
    ).toThrow(/5-field/);
    expect(() =>
      scheduledCrons(JOB_REGISTRY.jobs, { crons: [{ path: '/api/followups/process-automatic', schedule: '61 * * * *' }] }),
    ).toThrow();
    expect(() => scheduledCrons(JOB_REGISTRY.jobs, { crons: [{ path: '/api/nope', schedule: '0 * * * *' }] })).toThrow(/not a job/);
    expect(
      scheduledCrons(JOB_REGISTRY.jobs, {
        crons: [{ path: '/api/inbox/integrations/sync-all?shard=1&shards=2', schedule: '*/5 * * * *' }],
      })[0].query.get('shard'),
    ).toBe('1');
  });
  it('maps both path forms to the job', () => {
    expect(jobForPath(JOB_REGISTRY.jobs, '/followups/process-automatic')?.id).toBe('followups');
    expect(jobForPath(JOB_REGISTRY.jobs, '/api/followups/process-automatic?x=1')?.id).toBe('followups');
    expect(jobForPath(JOB_REGISTRY.jobs, '/api/nope')).toBeUndefined();
  });
});

describe('the job registry', () => {
  const job = JOB_REGISTRY.jobs[0];
  it('refuses two jobs with one id, path or health-check variable, a variable lib/config.ts would not read, the status path', () => {
    expect(() =>
      defineRegistry({ jobs: [job, { ...job, path: '/other', healthcheckVariable: 'HEALTHCHECK_URL_OTHER' }], attention: [] }),
    ).toThrow(/id inbox-sync is already inbox-sync's/);
    expect(() =>
      defineRegistry({ jobs: [job, { ...job, id: 'other', healthcheckVariable: 'HEALTHCHECK_URL_OTHER' }], attention: [] }),
    ).toThrow(/path \/inbox\/integrations\/sync-all/);
    expect(() => defineRegistry({ jobs: [job, { ...job, id: 'other', path: '/other' }], attention: [] })).toThrow(
      /variable HEALTHCHECK_URL_INBOX_SYNC/,
    );
    expect(() => defineRegistry({ jobs: [{ ...job, healthcheckVariable: 'HC_INBOX' }], attention: [] })).toThrow(
      /healthcheckVariable must match/,
    );
    expect(() => defineRegistry({ jobs: [{ ...job, id: 'Inbox Sync' }], attention: [] })).toThrow(/lower-case/);
    expect(() => defineRegistry({ jobs: [{ ...job, path: '/cron/status' }], attention: [] })).toThrow(/status route/);
  });
  it('every registered job names its own health-check variable after its id', () => {
    for (const j of JOB_REGISTRY.jobs) expect(j.healthcheckVariable).toBe(`HEALTHCHECK_URL_${j.id.toUpperCase().replaceAll('-', '_')}`);
  });
});
