import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import type { Job, JobId } from './types.js';
import { httpStatusOf, type RunOutcome } from './outcome.js';

/**
 * Push alerts: the start / success / failure pings that healthchecks.io, Cronitor and Better Stack
 * share (`<url>/start`, `<url>`, `<url>/fail`, a text body). The service alerts when a ping does
 * not arrive, so the alert fires even when the schedule itself stops.
 */

/** A ping never holds a run longer than this (the services answer in milliseconds). */
export const PING_TIMEOUT_MS = 3_000;
/** The services keep the body as the ping's log line; healthchecks.io keeps 10 KB. */
export const MAX_PING_BODY = 1_000;

export type PingKind = 'start' | 'success' | 'fail';

/** What a ping needs of a job: its id (the template's `{job}`) and its own variable. */
type PingedJob = Pick<Job, 'id' | 'healthcheckVariable'>;

/** The job's base ping URL: its own variable, else the template with `{job}` replaced; or null. */
export function healthcheckBaseUrl(config: Pick<Config, 'HEALTHCHECK_URL' | 'healthcheckUrls'>, job: PingedJob): string | null {
  const own = config.healthcheckUrls[job.healthcheckVariable];
  if (own) return own;
  if (config.HEALTHCHECK_URL) return config.HEALTHCHECK_URL.replaceAll('{job}', encodeURIComponent(job.id));
  return null;
}

/** `/start` and `/fail` go after the path, before any query string (`?create=1`). */
export function pingUrl(base: string, kind: PingKind): string {
  const u = new URL(base);
  const path = u.pathname.replace(/\/+$/, '');
  if (kind !== 'success') u.pathname = `${path}/${kind}`;
  return u.toString();
}

/** One ping; never throws, never waits longer than PING_TIMEOUT_MS. */
export async function ping(url: string, body: string, log?: Logger): Promise<boolean> {
  try {
    const res = await fetch(url, {
      method: 'POST',
      body: body.slice(0, MAX_PING_BODY),
      headers: { 'content-type': 'text/plain; charset=utf-8' },
      signal: AbortSignal.timeout(PING_TIMEOUT_MS),
    });
    await res.body?.cancel().catch(() => {});
    if (!res.ok) log?.warn({ status: res.status }, 'health-check ping refused');
    return res.ok;
  } catch (err) {
    log?.warn({ err: String((err as Error).message ?? err).slice(0, 200) }, 'health-check ping failed');
    return false;
  }
}

export type RunPings = {
  /** Sends `/start` without waiting for it. */
  start(): void;
  /**
   * Waits for the start ping (its timeout runs from the start of the run), then sends the end
   * ping: in that order, so the service never sees `/start` after the run's end. Against an
   * endpoint that hangs, this adds at most PING_TIMEOUT_MS to a run longer than that.
   */
  finish(kind: 'success' | 'fail', summary: string): Promise<void>;
};

/** The pings of one run; a no-op without a URL for the job. */
export function runPings(config: Config, job: PingedJob, log?: Logger): RunPings {
  const base = healthcheckBaseUrl(config, job);
  let started: Promise<unknown> = Promise.resolve();
  if (!base) return { start() {}, async finish() {} };
  return {
    start() {
      started = ping(pingUrl(base, 'start'), `${job.id} : démarrage`, log);
    },
    async finish(kind, summary) {
      await started;
      await ping(pingUrl(base, kind), summary, log);
    },
  };
}

/** The ping body: one line of French for the service's log. */
export function pingSummary(job: JobId, res: RunOutcome): string {
  const b = res.body;
  if (b.success !== true)
    return `${job} : échec (HTTP ${httpStatusOf(res)}) — ${String(b.error ?? 'erreur')} : ${String(b.message ?? '')}`.trim();
  if (b.skipped) return `${job} : ignoré, une autre exécution est en cours`;
  const errors = Number(b.errorsCount ?? 0);
  const what = b.partial ? 'partiel (reprend au prochain passage)' : 'réussi';
  const stats = JSON.stringify(b.stats ?? {});
  return `${job} : ${what} en ${String(b.durationMs ?? '?')} ms, ${errors} erreur(s) d'élément — ${stats}`;
}
