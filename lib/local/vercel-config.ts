import fs from 'node:fs';
import { Cron } from 'croner';
import { JOBS, JOB_IDS, STATUS_PATH, type JobId } from '../cron/jobs.js';

export type VercelJson = {
  crons?: { path: string; schedule: string }[];
  rewrites?: { source: string; destination: string }[];
  functions?: Record<string, { maxDuration?: number }>;
};

export type ScheduledCron = { job: JobId; schedule: string; query: URLSearchParams; path: string };

export function readVercelJson(file = new URL('../../vercel.json', import.meta.url)): VercelJson {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as VercelJson;
}

/** The job a path (`/api/x`, `/x`, with or without a query) belongs to, or undefined. */
export function jobForPath(pathWithQuery: string): JobId | undefined {
  const p = pathWithQuery.split('?')[0].replace(/\/+$/, '').replace(/^\/api(?=\/)/, '');
  return JOB_IDS.find((id) => JOBS[id].path === p);
}

export function isStatusPath(pathname: string): boolean {
  return pathname.replace(/\/+$/, '').replace(/^\/api(?=\/)/, '') === STATUS_PATH;
}

/**
 * The crons of vercel.json, each validated as a 5-field expression by croner (Vercel itself does
 * not check) and mapped to its job. Throws on a schedule or path that would never run.
 */
export function scheduledCrons(v: VercelJson = readVercelJson()): ScheduledCron[] {
  return (v.crons ?? []).map((c) => {
    if (c.schedule.trim().split(/\s+/).length !== 5) throw new Error(`vercel.json cron ${c.path}: "${c.schedule}" is not a 5-field cron expression`);
    new Cron(c.schedule, { paused: true, timezone: 'UTC' }); // throws on an invalid expression
    const job = jobForPath(c.path);
    if (!job) throw new Error(`vercel.json cron path ${c.path} is not a job route`);
    const q = c.path.includes('?') ? c.path.slice(c.path.indexOf('?') + 1) : '';
    return { job, schedule: c.schedule, query: new URLSearchParams(q), path: c.path };
  });
}
