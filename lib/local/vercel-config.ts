import fs from 'node:fs';
import { Cron } from 'croner';
import { STATUS_PATH } from '../cron/jobs.js';
import type { Job } from '../cron/types.js';

export type VercelJson = {
  crons?: { path: string; schedule: string }[];
  rewrites?: { source: string; destination: string }[];
  functions?: Record<string, { maxDuration?: number }>;
};

export type ScheduledCron<J extends Job = Job> = { job: J; schedule: string; query: URLSearchParams; path: string };

export function readVercelJson(file = new URL('../../vercel.json', import.meta.url)): VercelJson {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as VercelJson;
}

/** The job a path (`/api/x`, `/x`, with or without a query) belongs to, or undefined. */
export function jobForPath<J extends Pick<Job, 'path'>>(jobs: readonly J[], pathWithQuery: string): J | undefined {
  const p = pathWithQuery
    .split('?')[0]
    .replace(/\/+$/, '')
    .replace(/^\/api(?=\/)/, '');
  return jobs.find((j) => j.path === p);
}

export function isStatusPath(pathname: string): boolean {
  return pathname.replace(/\/+$/, '').replace(/^\/api(?=\/)/, '') === STATUS_PATH;
}

/**
 * The crons of vercel.json, each validated as a 5-field expression by croner (Vercel itself does
 * not check) and mapped to its registered job. Throws on a schedule or path that would never run.
 */
export function scheduledCrons<J extends Job>(jobs: readonly J[], v: VercelJson = readVercelJson()): ScheduledCron<J>[] {
  return (v.crons ?? []).map((c) => {
    if (c.schedule.trim().split(/\s+/).length !== 5)
      throw new Error(`vercel.json cron ${c.path}: "${c.schedule}" is not a 5-field cron expression`);
    new Cron(c.schedule, { paused: true, timezone: 'UTC' }); // throws on an invalid expression
    const job = jobForPath(jobs, c.path);
    if (!job) throw new Error(`vercel.json cron path ${c.path} is not a job route`);
    const q = c.path.includes('?') ? c.path.slice(c.path.indexOf('?') + 1) : '';
    return { job, schedule: c.schedule, query: new URLSearchParams(q), path: c.path };
  });
}
