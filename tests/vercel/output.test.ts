import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { Cron } from 'croner';
import { STATUS_PATH } from '../../lib/cron/jobs.js';
import { JOB_REGISTRY } from '../../lib/jobs/registry.js';
import { jobForPath, readVercelJson, scheduledCrons } from '../../lib/local/vercel-config.js';
import { describeWithService } from '../helpers/services.js';
import {
  OUTPUT_DIR,
  REPO_ROOT,
  apiRoutesInRepo,
  builtFunctions,
  filesUnder,
  hasBuildOutput,
  readOutputConfig,
  requireBuildOutput,
  type BuiltFunction,
  type OutputConfig,
} from './build-output.js';

/**
 * What Vercel's own builder made of the project (SPEC §7): `.vercel/output/` as written by
 * `npm run vercel:build`. `vercel build` only checks vercel.json against a JSON schema: a 4-field
 * schedule, a cron path to no function or a leak of the sources into the static output all
 * build fine, so they are checked here.
 */

/** Where Vercel's routing sends a request path: the function route it ends at, or undefined (404). */
function resolveToFunction(config: OutputConfig, functionRoutes: Set<string>, pathname: string): string | undefined {
  if (functionRoutes.has(pathname)) return pathname; // `handle: filesystem` serves the function itself
  const start = config.routes.findIndex((r) => r.handle === 'filesystem');
  for (const route of config.routes.slice(start + 1)) {
    if (route.handle) break; // the rewrites phase ends at the next handle (`error`)
    if (!route.src || !new RegExp(route.src).test(pathname)) continue;
    if (route.status && !route.dest) return undefined;
    const dest = route.dest?.split('?')[0];
    return dest && functionRoutes.has(dest) ? dest : undefined;
  }
  return undefined;
}

const withoutQuery = (p: string) => p.split('?')[0];
const { jobs: JOBS } = JOB_REGISTRY;
const JOB_IDS = JOBS.map((j) => j.id);
const JOB_PATHS = JOBS.map((j) => j.path);
const BARE_PATHS = [...JOB_PATHS, STATUS_PATH];

describeWithService(hasBuildOutput(), 'the Vercel build output (.vercel/output/: run `npm run vercel:build` first)')(
  'vercel build output',
  () => {
    let config: OutputConfig;
    let functions: BuiltFunction[];
    let functionRoutes: Set<string>;

    beforeAll(() => {
      requireBuildOutput();
      config = readOutputConfig();
      functions = builtFunctions();
      functionRoutes = new Set(functions.map((f) => f.route));
    });

    it('comes from a build that succeeded (a failed build leaves a config.json, its error in builds.json)', () => {
      const builds = JSON.parse(fs.readFileSync(path.join(OUTPUT_DIR, 'builds.json'), 'utf8')) as {
        error?: { stack?: string };
        builds?: { src: string; error?: unknown }[];
      };
      expect(builds.error?.stack?.split('\n')[0], 'the last `npm run vercel:build` failed').toBeUndefined();
      expect((builds.builds ?? []).filter((b) => b.error).map((b) => b.src)).toEqual([]);
    });

    it('has one built function per api/ route file, and nothing else', () => {
      expect(functions.map((f) => f.route)).toEqual(apiRoutesInRepo());
      expect(functions).toHaveLength(JOBS.length + 2); // the jobs, the status route, the console
    });

    it('config.json carries one cron per registered job, with its schedule (lib/jobs/<job>/index.ts)', () => {
      const crons = config.crons ?? [];
      const jobsScheduled = new Set<string>();
      for (const c of crons) {
        const job = jobForPath(JOBS, c.path);
        expect(job, `cron ${c.path} is not a job route`).toBeDefined();
        expect(c.schedule, `cron ${c.path}`).toBe(job!.schedule);
        jobsScheduled.add(job!.id);
      }
      expect([...jobsScheduled].sort()).toEqual([...JOB_IDS].sort());
      // the build copies the crons verbatim: what vercel.json declares is what gets deployed
      expect(crons).toEqual(readVercelJson().crons);
    });

    it('every schedule parses as a 5-field cron expression (Vercel itself does not check)', () => {
      for (const c of config.crons ?? []) {
        const fields = c.schedule.trim().split(/\s+/);
        expect(fields, `cron ${c.path}: "${c.schedule}"`).toHaveLength(5);
        const cron = new Cron(c.schedule, { paused: true, timezone: 'UTC' });
        expect(cron.nextRun(new Date('2026-01-01T00:00:00Z')), `cron ${c.path}: "${c.schedule}" never fires`).toBeInstanceOf(Date);
      }
      // the local scheduler's reading of the same crons agrees (it throws on a bad expression or path)
      expect(
        scheduledCrons(JOBS, { crons: config.crons })
          .map((s) => s.job.id)
          .sort(),
      ).toEqual([...JOB_IDS].sort());
    });

    it('every cron path, without its query string, resolves to a built function', () => {
      expect(config.crons?.length).toBeGreaterThanOrEqual(JOB_IDS.length);
      for (const c of config.crons ?? []) {
        const target = resolveToFunction(config, functionRoutes, withoutQuery(c.path));
        expect(target, `cron ${c.path} reaches no function`).toBe(`/api${jobForPath(JOBS, c.path)!.path}`);
        expect(fs.existsSync(path.join(OUTPUT_DIR, 'functions', `${target}.func`))).toBe(true);
      }
    });

    it('routes send the five bare public paths, the console, and their /api twins to their function', () => {
      for (const bare of BARE_PATHS) {
        expect(resolveToFunction(config, functionRoutes, bare), `bare path ${bare}`).toBe(`/api${bare}`);
        expect(resolveToFunction(config, functionRoutes, `/api${bare}`), `/api${bare}`).toBe(`/api${bare}`);
      }
      // the operator's console: /cron and its /api twin
      expect(resolveToFunction(config, functionRoutes, '/cron')).toBe('/api/cron/dashboard');
      expect(resolveToFunction(config, functionRoutes, '/api/cron/dashboard')).toBe('/api/cron/dashboard');
      // and the router is not a catch-all: an unknown path reaches no function
      expect(resolveToFunction(config, functionRoutes, '/cron/unknown')).toBeUndefined();
    });

    it('every function has the maxDuration of vercel.json and a Node 24 (or 22) runtime', () => {
      const declared = readVercelJson().functions ?? {};
      expect(functions.map((f) => f.route)).toEqual(apiRoutesInRepo());
      for (const f of functions) {
        const source = `${f.route.slice(1)}.ts`;
        expect(f.vc.maxDuration, `${f.route}: maxDuration`).toBeGreaterThan(0);
        expect(f.vc.maxDuration, `${f.route}: maxDuration`).toBe(declared[source]?.maxDuration);
        const job = jobForPath(JOBS, f.route);
        if (job) expect(f.vc.maxDuration, `${f.route}: ${job.id}'s maxDurationSec`).toBe(job.maxDurationSec);
        expect(f.vc.runtime, `${f.route}: runtime`).toMatch(/^nodejs(24|22)\.x$/);
        expect(fs.existsSync(path.join(f.dir, f.vc.handler)), `${f.route}: handler ${f.vc.handler}`).toBe(true);
      }
    });

    it('the static output holds exactly public/, no source, config or test file of the repository', () => {
      const staticFiles = filesUnder(path.join(OUTPUT_DIR, 'static'));
      expect(staticFiles).toEqual(filesUnder(path.join(REPO_ROOT, 'public')));
      const leaks = staticFiles.filter(
        (f) =>
          /\.(ts|sh|sql)$/.test(f) ||
          /(^|\/)(tsconfig|package|vercel)\.json$/.test(f) ||
          /^(api|lib|db|tests|scripts|bench|docs|node_modules)\//.test(f) ||
          /(^|\/)\.env/.test(f),
      );
      expect(leaks).toEqual([]);
    });
  },
);
