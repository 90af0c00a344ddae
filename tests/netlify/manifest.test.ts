import fs from 'node:fs';
import { beforeAll, expect, it } from 'vitest';
import { Cron } from 'croner';
import { STATUS_PATH, type JobId } from '../../lib/cron/jobs.js';
import { JOB_REGISTRY } from '../../lib/jobs/registry.js';
import { readVercelJson } from '../../lib/local/vercel-config.js';
import { describeWithService } from '../helpers/services.js';
import { functionNamesInRepo, hasBundle, readManifest, requireBundle, type ManifestFunction } from './bundle.js';
const JOB_IDS = JOB_REGISTRY.jobs.map((j) => j.id);
const JOBS = Object.fromEntries(JOB_REGISTRY.jobs.map((j) => [j.id, j]));

/**
 * What Netlify's bundler made of netlify/functions/ (`npm run netlify:build`): the manifest Netlify's
 * build uploads with the zips. The bundler reads each function's `config` export statically: a
 * path or schedule it cannot read is silently left out, so the routes and schedules are checked
 * here against lib/cron/jobs.ts, as tests/vercel/ check vercel.json.
 */

const CONSOLE_PATHS = ['/cron', '/api/cron/dashboard'];

/** Which function Netlify's router picks for a path: the one route whose literal matches (none: 404). */
function functionFor(functions: ManifestFunction[], pathname: string): string[] {
  return functions.filter((f) => (f.routes ?? []).some((r) => (r.literal ?? r.pattern) === pathname)).map((f) => f.name);
}

describeWithService(hasBundle(), 'the Netlify bundle (.netlify/functions/: run `npm run netlify:build` first)')(
  'netlify bundle manifest',
  () => {
    let functions: ManifestFunction[];
    const byName = (name: string) => functions.find((f) => f.name === name)!;

    beforeAll(() => {
      requireBundle();
      functions = readManifest();
    });

    it('has one bundle per netlify/functions/ file, and nothing else: three per job, the status and the console', () => {
      expect(functions.map((f) => f.name)).toEqual(functionNamesInRepo());
      expect(functions).toHaveLength(JOB_IDS.length * 3 + 2);
      for (const f of functions) expect(fs.existsSync(f.path), `${f.name}: ${f.path}`).toBe(true);
    });

    it('every function uses the Functions API v2 on a Node 22+ runtime', () => {
      for (const f of functions) {
        expect(f.buildData?.runtimeAPIVersion, f.name).toBe(2);
        expect(f.runtimeVersion, f.name).toMatch(/^nodejs(2[2-9]|[3-9]\d)\.x$/);
      }
    });

    it.each(JOB_IDS)('%s: the HTTP function answers the bare path and its /api twin, nothing else', (id: JobId) => {
      const f = byName(id);
      expect(f.routes?.map((r) => r.literal)).toEqual([JOBS[id].path, `/api${JOBS[id].path}`]);
      expect(f.schedule).toBeUndefined();
      expect(f.invocationMode).not.toBe('background');
    });

    it.each(JOB_IDS)("%s: the scheduled function has the job's schedule (the same as vercel.json) and no URL", (id: JobId) => {
      const f = byName(`${id}-schedule`);
      expect(f.schedule).toBe(JOBS[id].schedule);
      expect(f.routes ?? []).toEqual([]);
      const vercelCron = readVercelJson().crons?.find((c) => c.path === `/api${JOBS[id].path}`);
      expect(f.schedule).toBe(vercelCron?.schedule);
      expect(f.schedule!.trim().split(/\s+/)).toHaveLength(5);
      expect(new Cron(f.schedule!, { paused: true, timezone: 'UTC' }).nextRun(new Date('2026-01-01T00:00:00Z'))).toBeInstanceOf(Date);
    });

    it.each(JOB_IDS)('%s: the background function is one (invocation mode background) at /api/background/…', (id: JobId) => {
      const f = byName(`${id}-background`);
      expect(f.invocationMode).toBe('background');
      expect(f.routes?.map((r) => r.literal)).toEqual([`/api/background${JOBS[id].path}`]);
      expect(f.schedule).toBeUndefined();
    });

    it('the status and the console answer their bare paths and /api twins; every path reaches one function', () => {
      expect(byName('cron-status').routes?.map((r) => r.literal)).toEqual([STATUS_PATH, `/api${STATUS_PATH}`]);
      expect(byName('cron-console').routes?.map((r) => r.literal)).toEqual(CONSOLE_PATHS);
      const paths = [
        ...JOB_IDS.flatMap((id) => [JOBS[id].path, `/api${JOBS[id].path}`, `/api/background${JOBS[id].path}`]),
        STATUS_PATH,
        `/api${STATUS_PATH}`,
        ...CONSOLE_PATHS,
      ];
      for (const p of paths) expect(functionFor(functions, p), p).toHaveLength(1);
      expect(functionFor(functions, '/cron/unknown')).toEqual([]);
    });
  },
);
