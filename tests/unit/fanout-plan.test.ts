import { describe, expect, it } from 'vitest';
import { budgetFor, SAFETY_MARGIN_MS } from '../../lib/cron/budget.js';
import {
  estimateCostMs,
  fanoutParentOf,
  MIN_LEDGER_ITEMS,
  planFanout,
  selfBaseUrl,
  SHARD_FILL,
  shardUrl,
  startJitterMs,
} from '../../lib/cron/fanout.js';
import { summariseSweep } from '../../lib/cron/sweep.js';
import { judgeFreshness } from '../../lib/jobs/inbox-sync/sweep.js';
import { createHostLimiter, hostKey } from '../../lib/jobs/inbox-sync/host-limit.js';

describe('budget by trigger', () => {
  it('Vercel Cron, the local scheduler and fan-out shards get maxDuration minus the margin', () => {
    for (const t of ['vercel-cron', 'scheduler', 'fanout'] as const) {
      expect(budgetFor(t, 25_000, 300)).toEqual({ ms: 300_000 - SAFETY_MARGIN_MS, source: 'maxDuration' });
    }
  });
  it('an external ping and the CLI keep CRON_BUDGET_MS, never beyond maxDuration minus the margin', () => {
    expect(budgetFor('http', 25_000, 300)).toEqual({ ms: 25_000, source: 'CRON_BUDGET_MS' });
    expect(budgetFor('cli', 25_000, 300)).toEqual({ ms: 25_000, source: 'CRON_BUDGET_MS' });
    expect(budgetFor('http', 900_000, 60)).toEqual({ ms: 55_000, source: 'CRON_BUDGET_MS' });
  });
});

describe('fan-out planning (pure)', () => {
  const base = { ownBudgetMs: 25_000, shardBudgetMs: 295_000, targetMs: 60_000, max: 16 };
  it('runs alone when nothing is due or the work fits in this run', () => {
    expect(planFanout({ ...base, due: 0, costMsPerItem: 100 })).toMatchObject({ kind: 'inline', reason: 'nothing due' });
    expect(planFanout({ ...base, due: 100, costMsPerItem: 100 })).toMatchObject({ kind: 'inline', reason: 'fits in this run' });
    // a Vercel Cron run (295 s) still fans out past the sweep's target duration
    expect(planFanout({ ...base, ownBudgetMs: 295_000, due: 400, costMsPerItem: 100 })).toMatchObject({ kind: 'inline' });
    expect(planFanout({ ...base, ownBudgetMs: 295_000, due: 1_000, costMsPerItem: 100 })).toMatchObject({ kind: 'fanout', n: 3 });
  });
  it('sizes n from the backlog so that each shard finishes within the target, bounded by FANOUT_MAX', () => {
    // 2,000 mailboxes at 100 ms: 200 s of work; a shard fills 70 % of 60 s → 5 shards
    expect(planFanout({ ...base, due: 2_000, costMsPerItem: 100 })).toMatchObject({
      kind: 'fanout',
      n: Math.ceil(200_000 / (60_000 * SHARD_FILL)),
    });
    expect(planFanout({ ...base, due: 2_000, costMsPerItem: 100 })).toMatchObject({ n: 5 });
    // a target beyond the shards' budget: the budget bounds it
    expect(planFanout({ ...base, targetMs: 900_000, due: 10_000, costMsPerItem: 100 })).toMatchObject({
      kind: 'fanout',
      n: Math.ceil(1_000_000 / (295_000 * SHARD_FILL)),
    });
    expect(planFanout({ ...base, due: 1_000_000, costMsPerItem: 100 })).toMatchObject({ kind: 'fanout', n: 16 });
    expect(planFanout({ ...base, max: 3, due: 1_000_000, costMsPerItem: 100 })).toMatchObject({ kind: 'fanout', n: 3 });
  });
  it('estimates the per-item cost from the ledger, weighted by run size, with a default below MIN_LEDGER_ITEMS', () => {
    expect(estimateCostMs([], 100)).toBe(100);
    expect(estimateCostMs([{ durationMs: 1000, items: MIN_LEDGER_ITEMS - 1 }], 100)).toBe(100);
    expect(
      estimateCostMs(
        [
          { durationMs: 10_000, items: 100 },
          { durationMs: 2_000, items: 0 },
          { durationMs: 30_000, items: 100 },
        ],
        7,
      ),
    ).toBe(200);
    expect(
      estimateCostMs(
        [
          { durationMs: Number.NaN, items: 50 },
          { durationMs: 5_000, items: 50 },
        ],
        7,
      ),
    ).toBe(100);
  });
  it('start jitter stays in [0, max) whatever the random source', () => {
    expect(startJitterMs(() => 0, 2_000)).toBe(0);
    expect(startJitterMs(() => 0.999999999, 2_000)).toBe(1_999);
    expect(startJitterMs(() => 1, 2_000)).toBe(1_999);
    expect(startJitterMs(() => Number.NaN, 2_000)).toBe(0);
    for (let i = 0; i < 1_000; i++) {
      const j = startJitterMs(Math.random, 2_000);
      expect(j).toBeGreaterThanOrEqual(0);
      expect(j).toBeLessThan(2_000);
    }
  });
  it('finds its own URL: SELF_URL, else this deployment, else the production domain, else the local server', () => {
    expect(selfBaseUrl({ SELF_URL: 'https://x.example/', VERCEL_URL: 'a.vercel.app' })).toBe('https://x.example');
    expect(selfBaseUrl({ VERCEL_URL: 'lokario-abc.vercel.app', VERCEL_PROJECT_PRODUCTION_URL: 'lokario.fr' })).toBe(
      'https://lokario-abc.vercel.app',
    );
    expect(selfBaseUrl({ VERCEL_PROJECT_PRODUCTION_URL: 'lokario.fr' })).toBe('https://lokario.fr');
    expect(selfBaseUrl({}, 'http://127.0.0.1:3000')).toBe('http://127.0.0.1:3000');
    expect(selfBaseUrl({})).toBeNull();
    expect(shardUrl('https://x', '/inbox/integrations/sync-all', 2, 5)).toBe('https://x/api/inbox/integrations/sync-all?shard=2&shards=5');
  });
  it('a request is a shard only with the parent header and shard=k&shards=n', () => {
    const id = '0b8e6a59-6f1c-4c0e-9d56-7d3b1e0f3a11';
    expect(fanoutParentOf({ 'x-lokario-fanout-parent': id }, { shard: { k: 0, n: 2 } })).toBe(id);
    expect(fanoutParentOf({ 'x-lokario-fanout-parent': id }, {})).toBeNull();
    expect(fanoutParentOf({ 'x-lokario-fanout-parent': 'not an id; drop table' }, { shard: { k: 0, n: 2 } })).toBeNull();
  });
});

describe('per-host connection cap', () => {
  it('one host whatever its spelling; at most cap tasks at once per host, other hosts not held', async () => {
    expect(hostKey(' IMAP.Gmail.com. ')).toBe('imap.gmail.com');
    const limit = createHostLimiter(2, new Map());
    let open = 0;
    let peak = 0;
    const gates: (() => void)[] = [];
    const task = () =>
      new Promise<void>((r) => {
        open++;
        peak = Math.max(peak, open);
        gates.push(() => {
          open--;
          r();
        });
      });
    const all = [1, 2, 3, 4].map(() => limit('imap.gmail.com', task));
    const other = limit('ssl0.ovh.net', async () => 'ovh');
    expect(await other).toBe('ovh'); // not queued behind gmail
    while (gates.length || open) {
      await new Promise((r) => setTimeout(r, 1));
      gates.shift()?.();
    }
    await Promise.all(all);
    expect(peak).toBe(2);
  });
});

describe('sweep and inbox freshness (pure)', () => {
  const now = new Date('2026-03-02T10:00:00Z');
  it("a coordinator's sweep adds up its shards; an inline run counts itself", () => {
    const run = {
      id: 'r',
      job: 'inbox-sync',
      outcome: 'succeeded',
      started_at: now,
      stats: { budgetMs: 25_000, budgetSource: 'CRON_BUDGET_MS', shardsFailed: 1 },
      fanout: { n: 3, due: 100 },
    };
    const kids = [
      { parent_run_id: 'r', outcome: 'succeeded', stats: { synced: 40 } },
      { parent_run_id: 'r', outcome: 'running', stats: null },
    ];
    expect(summariseSweep(run, kids, 'synced')).toMatchObject({
      due: 100,
      done: 40,
      left: 60,
      shards: 3,
      shardsRunning: 1,
      shardsFailed: 1,
      budget: { ms: 25_000, source: 'CRON_BUDGET_MS' },
    });
    expect(summariseSweep({ ...run, fanout: null, stats: { sweepDue: 10, synced: 10 } }, [], 'synced')).toMatchObject({
      due: 10,
      done: 10,
      left: 0,
      shards: 1,
    });
  });
  it('unhealthy when the stalest mailbox is older than three intervals', () => {
    const five = 5 * 60_000;
    expect(judgeFreshness(null, five, now)).toMatchObject({ healthy: true, ageSec: null });
    expect(judgeFreshness(new Date(now.getTime() - 15 * 60_000), five, now)).toMatchObject({ healthy: true, ageSec: 900, limitSec: 900 });
    expect(judgeFreshness(new Date(now.getTime() - 15 * 60_000 - 1_000), five, now)).toMatchObject({ healthy: false, ageSec: 901 });
  });
});
