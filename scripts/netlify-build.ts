/**
 * Bundles netlify/functions/ with Netlify's own bundler, offline, into .netlify/functions/
 * (docs/netlify.md): `@netlify/zip-it-and-ship-it`, the library Netlify's build and CLI call, with
 * the [functions] settings of netlify.toml translated as Netlify's CLI translates them. Writes one
 * zip per function and manifest.json (routes, schedules, background functions), which
 * tests/netlify/ read. No account, no token, no network.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { zipFunctions, type Config, type FunctionResult } from '@netlify/zip-it-and-ship-it';
import toml from 'toml';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const BUNDLE_DIR = path.join(ROOT, '.netlify/functions');

type TomlFunctions = Record<string, unknown> & {
  directory?: string;
  node_bundler?: string;
  external_node_modules?: string[];
  included_files?: string[];
  ignored_node_modules?: string[];
};

/** netlify.toml's `[functions]` (and `[functions."name"]`) as zip-it-and-ship-it's config, key for key. */
function zisiConfig(functions: TomlFunctions): Config {
  const convert = (v: TomlFunctions) => ({
    externalNodeModules: v.external_node_modules,
    includedFiles: v.included_files,
    includedFilesBasePath: ROOT,
    ignoredNodeModules: v.ignored_node_modules,
    // Netlify's "esbuild" is zip-it-and-ship-it's esbuild_zisi
    nodeBundler: (v.node_bundler === 'esbuild' ? 'esbuild_zisi' : v.node_bundler) as Config[string]['nodeBundler'],
    processDynamicNodeImports: true,
  });
  const out: Config = { '*': convert(functions) };
  for (const [key, value] of Object.entries(functions)) {
    if (value && typeof value === 'object' && !Array.isArray(value)) out[key] = convert(value as TomlFunctions);
  }
  return out;
}

async function main(): Promise<number> {
  const netlifyToml = toml.parse(fs.readFileSync(path.join(ROOT, 'netlify.toml'), 'utf8')) as { functions?: TomlFunctions };
  const functions = netlifyToml.functions ?? {};
  const srcDir = path.join(ROOT, functions.directory ?? 'netlify/functions');
  fs.rmSync(BUNDLE_DIR, { recursive: true, force: true });
  fs.mkdirSync(BUNDLE_DIR, { recursive: true });
  const started = performance.now();
  let results: FunctionResult[];
  try {
    results = await zipFunctions(srcDir, BUNDLE_DIR, {
      basePath: ROOT,
      repositoryRoot: ROOT,
      config: zisiConfig(functions),
      archiveFormat: 'zip',
      manifest: path.join(BUNDLE_DIR, 'manifest.json'),
    });
  } catch (err) {
    console.error(`netlify-build: FAILED, the bundler threw: ${(err as Error).stack ?? err}`);
    return 1;
  }
  const ms = Math.round(performance.now() - started);
  let failed = false;
  for (const r of results.sort((a, b) => a.name.localeCompare(b.name))) {
    const kb = fs.existsSync(r.path) ? Math.round(fs.statSync(r.path).size / 1024) : -1;
    const warnings = r.bundlerWarnings?.length ? `, ${r.bundlerWarnings.length} bundler warning(s)` : '';
    console.log(
      `  ${r.name.padEnd(30)} ${String(kb).padStart(6)} KB  ${r.bundler ?? ''} ${r.schedule ? `schedule "${r.schedule}"` : ''}${warnings}`,
    );
    for (const w of r.bundlerWarnings ?? []) console.log(`    warning: ${JSON.stringify(w)}`);
    if (kb < 0) {
      console.error(`netlify-build: FAILED, ${r.name}: no archive at ${r.path}`);
      failed = true;
    }
  }
  const sources = fs.readdirSync(srcDir).filter((f) => /\.(m|c)?[jt]s$/.test(f)).length;
  if (results.length !== sources) {
    console.error(`netlify-build: FAILED, ${results.length} bundles for ${sources} function files in ${path.relative(ROOT, srcDir)}/`);
    failed = true;
  }
  if (failed) return 1;
  console.log(`netlify-build: OK in ${ms} ms (${results.length} functions in ${path.relative(ROOT, BUNDLE_DIR)}/)`);
  return 0;
}

process.exitCode = await main();
