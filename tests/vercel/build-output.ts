import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Reading `.vercel/output/` (Vercel's Build Output API v3), as written by `npm run vercel:build`.
 * The tests check an existing build; they never build themselves (a build takes 10-15 s and CI
 * runs it once, before `npm test`).
 */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const OUTPUT_DIR = path.join(REPO_ROOT, '.vercel/output');
export const MISSING_OUTPUT = '.vercel/output/ is missing: run `npm run vercel:build` first (CI runs it before `npm test`)';

export const hasBuildOutput = () => fs.existsSync(path.join(OUTPUT_DIR, 'config.json'));

/** Throws the "run npm run vercel:build first" message when there is no build to check. */
export function requireBuildOutput(): void {
  if (!hasBuildOutput()) throw new Error(MISSING_OUTPUT);
}

export type OutputConfig = {
  version: number;
  routes: { src?: string; dest?: string; handle?: string; status?: number; check?: boolean }[];
  crons?: { path: string; schedule: string }[];
};

export function readOutputConfig(): OutputConfig {
  return JSON.parse(fs.readFileSync(path.join(OUTPUT_DIR, 'config.json'), 'utf8')) as OutputConfig;
}

export type VcConfig = { handler: string; runtime: string; maxDuration?: number; launcherType?: string };

export type BuiltFunction = {
  /** The route path the function answers, e.g. `/api/cron/status`. */
  route: string;
  dir: string;
  vc: VcConfig;
};

/** Every `.func` directory under `functions/`, with its `.vc-config.json`. */
export function builtFunctions(): BuiltFunction[] {
  const root = path.join(OUTPUT_DIR, 'functions');
  const found: BuiltFunction[] = [];
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const full = path.join(dir, entry.name);
      if (entry.name.endsWith('.func')) {
        const rel = path.relative(root, full).split(path.sep).join('/');
        const vc = JSON.parse(fs.readFileSync(path.join(full, '.vc-config.json'), 'utf8')) as VcConfig;
        found.push({ route: `/${rel.slice(0, -'.func'.length)}`, dir: full, vc });
      } else {
        walk(full);
      }
    }
  };
  if (fs.existsSync(root)) walk(root);
  return found.sort((a, b) => a.route.localeCompare(b.route));
}

/** The `api/**\/*.ts` route files of the repository, as the routes Vercel makes of them. */
export function apiRoutesInRepo(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.ts')) out.push(`/${path.relative(REPO_ROOT, full).split(path.sep).join('/').replace(/\.ts$/, '')}`);
    }
  };
  walk(path.join(REPO_ROOT, 'api'));
  return out.sort();
}

/** Every file under a directory, as relative POSIX paths. */
export function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string) => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, entry.name);
      if (entry.isDirectory()) walk(full);
      else out.push(path.relative(dir, full).split(path.sep).join('/'));
    }
  };
  walk(dir);
  return out.sort();
}
