import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import extract from 'extract-zip';
import type { NetlifyContext, NetlifyFunction } from '../../netlify/lib/adapter.js';

/**
 * Reading `.netlify/functions/` as written by `npm run netlify:build` (Netlify's bundler,
 * zip-it-and-ship-it): one zip per function and manifest.json. The tests check an existing
 * bundle; they never bundle themselves (about a minute here, and CI does it once before `npm test`).
 */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BUNDLE_DIR = path.join(REPO_ROOT, '.netlify/functions');
export const FUNCTIONS_SRC = path.join(REPO_ROOT, 'netlify/functions');
export const MISSING_BUNDLE = '.netlify/functions/ is missing: run `npm run netlify:build` first (CI runs it before `npm test`)';

export const hasBundle = () => fs.existsSync(path.join(BUNDLE_DIR, 'manifest.json'));
export function requireBundle(): void {
  if (!hasBundle()) throw new Error(MISSING_BUNDLE);
}

export type ManifestRoute = { pattern: string; literal?: string; methods: string[] };
export type ManifestFunction = {
  name: string;
  path: string;
  mainFile: string;
  runtime: string;
  runtimeVersion?: string;
  bundler?: string;
  schedule?: string;
  invocationMode?: string;
  routes?: ManifestRoute[];
  buildData?: { runtimeAPIVersion?: number };
};

export function readManifest(): ManifestFunction[] {
  const m = JSON.parse(fs.readFileSync(path.join(BUNDLE_DIR, 'manifest.json'), 'utf8')) as { functions: ManifestFunction[] };
  return [...m.functions].sort((a, b) => a.name.localeCompare(b.name));
}

/** The function files of netlify/functions/, by the name Netlify gives them (the file name). */
export function functionNamesInRepo(): string[] {
  return fs
    .readdirSync(FUNCTIONS_SRC)
    .filter((f) => f.endsWith('.ts'))
    .map((f) => f.replace(/\.ts$/, ''))
    .sort();
}

/**
 * Unzips one function's bundle under `root` (outside the repository: a package the bundle forgot
 * is then an import error, as on Netlify) and imports the function's own module, the one
 * Netlify's entry point hands to its runtime (`getLambdaHandler('./…')`).
 */
export async function loadBundledFunction(fn: ManifestFunction, root: string): Promise<NetlifyFunction> {
  const dir = path.join(root, fn.name);
  await extract(fn.path, { dir });
  const entry = fs.readFileSync(path.join(dir, '___netlify-entry-point.mjs'), 'utf8');
  const userModule = /getLambdaHandler\('([^']+)'\)/.exec(entry)?.[1];
  if (!userModule) throw new Error(`${fn.name}: the entry point names no function module`);
  const mod = (await import(pathToFileURL(path.join(dir, userModule)).href)) as { default?: unknown };
  if (typeof mod.default !== 'function') throw new Error(`${fn.name}: ${userModule} has no default-exported function`);
  return mod.default as NetlifyFunction;
}

/** What Netlify passes as the second argument, for the fields the adapter reads. */
export function netlifyContext(deployContext: string, ip = '203.0.113.7'): NetlifyContext {
  return { deploy: { context: deployContext, id: '0123456789abcdef01234567', published: deployContext === 'production' }, ip };
}

/** A request as Netlify's edge hands it to a function. */
export const requestTo = (pathAndQuery: string, init: RequestInit = {}) =>
  new Request(`https://lokario-cron.netlify.app${pathAndQuery}`, init);

/** What Netlify's scheduler posts to a scheduled function. */
export const scheduledRequest = (nextRun = new Date(Date.now() + 3_600_000)) =>
  new Request('https://lokario-cron.netlify.app/.netlify/functions/scheduled', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ next_run: nextRun.toISOString() }),
  });
