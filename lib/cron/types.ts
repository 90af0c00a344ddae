import type { Config } from '../config.js';
import type { Db } from '../../db/client.js';
import type { Logger } from '../log.js';
import type { MailFactory } from '../mail/transport.js';

/** A job's id: its ledger name, lease key and URL segment (`inbox-sync`). */
export type JobId = string;

/**
 * `console`: run from the operator's console; `fanout`: a shard started by a coordinator run of the
 * same deployment (docs/scale.md); `netlify-schedule` / `netlify-background`: a Netlify scheduled
 * function, a Netlify background function (docs/netlify.md).
 */
export type Trigger = 'vercel-cron' | 'http' | 'cli' | 'scheduler' | 'console' | 'fanout' | 'netlify-schedule' | 'netlify-background';

/** Which tenants a run handles: `companyId=` and `shard=&shards=` (docs/contract.md). */
export type Scope = { companyId?: number; shard?: { k: number; n: number } };

/** One item that failed without failing the run (a mailbox that refused the login, a bounce). */
export type ItemError = { scope: string; id: string | number; code: string; message: string };

export type Stats = Record<string, unknown>;

export type JobContext = {
  db: Db;
  /** The job's clock: the real time, or the `now=` override in local development. */
  now: Date;
  /** Epoch ms (real clock) after which the job claims no new work (docs/contract.md, time budget). */
  deadline: number;
  dryRun: boolean;
  scope: Scope;
  log: Logger;
  mail: MailFactory;
  config: Config;
  runId: string;
  trigger: Trigger;
  /**
   * Aborted when the process is asked to stop (SIGTERM/SIGINT of `npm start`): the job claims
   * nothing new and starts no new SMTP transaction; what is in flight finishes and is recorded.
   */
  stopSignal?: AbortSignal;
  /** Reports how far a long run is (`3/12 mailboxes, 840 messages`): shown by `npm run job`. */
  progress?(message: string): void;
};

export type JobResult = {
  stats: Stats;
  errors: ItemError[];
  partial: boolean;
  /** Dry runs: up to 50 sample items of what would be done. */
  plan?: unknown[];
};

/** A job's emails a person must check: sends in `unknown`, claims left `sending` by a dead run (docs/sending.md). */
export type EmailAttention = { unknownSends: number; staleClaims: number };

/**
 * What of a job needs a person, read from its own tables (lib/jobs/<job>/attention.ts) for
 * /cron/status: `emails` turns a healthy job `degraded`; `sections` are the job's own fields of
 * the status body, merged at its top level; `healthy: false` (stale mailboxes) makes the status
 * answer 503 without changing the job's own verdict (docs/contract.md).
 */
export type JobAttention<S extends Record<string, unknown> = Record<string, unknown>> = {
  emails?: EmailAttention;
  sections: S;
  healthy?: boolean;
};

/**
 * Sections of /cron/status that belong to no one job (the bounces of every job that emails),
 * registered beside the jobs (lib/jobs/registry.ts).
 */
export type AttentionSource<S extends Record<string, unknown> = Record<string, unknown>> = (
  db: Db,
  now: Date,
) => Promise<Omit<JobAttention<S>, 'emails'>>;

/**
 * A job that can fan out (lib/cron/fanout.ts, docs/scale.md): how to count its due work, which
 * stat of a run counts an item done, and the per-item cost assumed before the ledger knows better.
 */
export type SweepSpec = { countDue(db: Db, now: Date): Promise<number>; itemsStat: string; defaultCostMs: number };

/**
 * A job as the shared runner sees it, declared whole in lib/jobs/<job>/index.ts: what it is, how
 * to run it, and the optional parts the runner reads. The runner names no job: it is handed the
 * list (lib/jobs/registry.ts; docs/contract.md, "Adding a job").
 */
export type Job<S extends Record<string, unknown> = Record<string, unknown>> = {
  id: JobId;
  /** Public path, as operators configured it on cron-job.org; `/api` + path also answers. */
  path: string;
  /** Its vercel.json cron (UTC): health, missed runs and the console read it. */
  schedule: string;
  /** vercel.json `functions[…].maxDuration`, seconds: the budget of scheduled runs, the lease. */
  maxDurationSec: number;
  /** The success body's `message`: the original backend's French sentence. */
  message: string;
  /** Its name in the console (French). */
  label: string;
  /** Its own push-alert URL variable, `HEALTHCHECK_URL_<JOB>` (lib/cron/healthcheck.ts). */
  healthcheckVariable: string;
  run(ctx: JobContext): Promise<JobResult>;
  attention?(db: Db, now: Date): Promise<JobAttention<S>>;
  sweep?: SweepSpec;
};

/** Thrown by a job that has no implementation yet: the run answers 501, never a fake success. */
export class NotImplementedError extends Error {
  readonly code = 'not_implemented';
  constructor(job: string) {
    super(`${job} is not implemented yet`);
  }
}

/** True once the run's time budget is spent (or the process is stopping): claim nothing more, finish what is held. */
export function budgetSpent(ctx: Pick<JobContext, 'deadline' | 'stopSignal'>, reserveMs = 0): boolean {
  return ctx.stopSignal?.aborted === true || Date.now() + reserveMs >= ctx.deadline;
}
