import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../lib/config.js';
import { budgetFor, PLATFORM_LIMIT_SEC, SAFETY_MARGIN_MS } from '../../lib/cron/budget.js';
import { SCHEDULED_TRIGGERS } from '../../lib/cron/schedule.js';
import { adoptDeployContext, UNKNOWN_CONTEXT } from '../../netlify/lib/adapter.js';

/** Netlify's signals and limits as the shared rules read them (docs/netlify.md). No I/O. */

const DB = { DATABASE_URL: 'postgres://db.example/x', CRON_SECRET: 'x' };

describe('Netlify deploy contexts (lib/config.ts)', () => {
  it('production is production-like and runs for real', () => {
    const c = parseConfig({ ...DB, CONTEXT: 'production' });
    expect(c).toMatchObject({ isProductionLike: true, isPreview: false });
  });
  it.each(['deploy-preview', 'branch-deploy', 'staging', UNKNOWN_CONTEXT])('%s is a preview: fail closed and run dry', (context) => {
    expect(parseConfig({ ...DB, CONTEXT: context })).toMatchObject({ isProductionLike: true, isPreview: true });
  });
  it('netlify dev (dev) is local development, as without any context', () => {
    expect(parseConfig({ CONTEXT: 'dev' })).toMatchObject({ isProductionLike: false, isPreview: false, databaseDriver: 'pglite' });
  });
  it('refuses the embedded database on a Netlify deploy, naming Netlify', () => {
    expect(() => parseConfig({ CONTEXT: 'production' })).toThrow(ConfigError);
    expect(() => parseConfig({ CONTEXT: 'deploy-preview' })).toThrow(/DATABASE_URL: required on a Netlify deployment/);
  });
  it('fan-out is off on Netlify, and FANOUT=auto there is a clear configuration error', () => {
    expect(parseConfig({ ...DB, CONTEXT: 'production' }).FANOUT).toBe('off');
    expect(parseConfig({ ...DB, CONTEXT: 'production', FANOUT: 'off' }).FANOUT).toBe('off');
    expect(() => parseConfig({ ...DB, CONTEXT: 'production', FANOUT: 'auto' })).toThrow(/FANOUT: auto is not available on Netlify/);
    expect(parseConfig({ ...DB, VERCEL_ENV: 'production' }).FANOUT).toBe('auto');
  });
});

describe('the adapter takes the deploy context from the request (netlify/lib/adapter.ts)', () => {
  const saved = process.env.CONTEXT;
  afterEach(() => {
    if (saved === undefined) delete process.env.CONTEXT;
    else process.env.CONTEXT = saved;
  });
  it('copies context.deploy.context to CONTEXT once, and a missing one counts as unknown (a preview)', () => {
    delete process.env.CONTEXT;
    adoptDeployContext({ deploy: { context: 'branch-deploy', id: 'd', published: false }, ip: '::1' });
    expect(process.env.CONTEXT).toBe('branch-deploy');
    adoptDeployContext({ deploy: { context: 'production', id: 'd', published: true }, ip: '::1' });
    expect(process.env.CONTEXT).toBe('branch-deploy');
    delete process.env.CONTEXT;
    adoptDeployContext(undefined);
    expect(process.env.CONTEXT).toBe(UNKNOWN_CONTEXT);
  });
});

describe('Netlify budgets by trigger (lib/cron/budget.ts)', () => {
  it("a scheduled function gets Netlify's 30 s minus the margin, whatever maxDuration says", () => {
    expect(PLATFORM_LIMIT_SEC['netlify-schedule']).toBe(30);
    expect(budgetFor('netlify-schedule', 25_000, 300)).toEqual({ ms: 30_000 - SAFETY_MARGIN_MS, source: 'platformLimit' });
    expect(budgetFor('netlify-schedule', 60_000, 300).ms).toBe(25_000);
    expect(budgetFor('netlify-schedule', 25_000, 20)).toEqual({ ms: 20_000 - SAFETY_MARGIN_MS, source: 'maxDuration' });
  });
  it('a background function gets maxDuration minus the margin (the lease is sized from it), not 15 min', () => {
    expect(budgetFor('netlify-background', 25_000, 300)).toEqual({ ms: 300_000 - SAFETY_MARGIN_MS, source: 'maxDuration' });
  });
  it("both prove that a schedule fired (/cron/status's missed-run rule)", () => {
    expect(SCHEDULED_TRIGGERS).toEqual(expect.arrayContaining(['netlify-schedule', 'netlify-background']));
  });
});
