/**
 * Cold start of each route: the time to import its handler in a fresh `node` process, as a new
 * serverless instance does before it can answer. Run: `npm run bench:coldstart` (after
 * `npm run vercel:build` to include the built functions).
 *
 * Per route, the median of RUNS fresh processes of:
 *  - built: the compiled handler of `.vercel/output/functions/<route>.func` (what Vercel runs),
 *    plain `node`, import time measured inside the process and the whole process wall time;
 *  - source: `api/<route>.ts` through tsx (the local server's path; includes tsx compiling).
 * Baselines measured in the same run, interleaved: `node -e ""` and `node --import tsx -e ""`.
 * Goal: an import of the built handler under 150 ms per route (the tsx rows are for comparison).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const RUNS = Number(process.env.RUNS ?? 7); // odd, so the median is one measured run
const GOAL_MS = 150;

// Prints the import duration (ms) of the module in IMPORT_URL, measured inside the process.
const IMPORT_PROBE = 'const t = performance.now(); await import(process.env.IMPORT_URL); console.log((performance.now() - t).toFixed(2));';

type Sample = { wallMs: number; importMs: number };

function runNode(args: string[], env: Record<string, string> = {}): Sample {
  const started = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8' });
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return { wallMs, importMs: Number(r.stdout.trim().split('\n').pop() || 0) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function apiRoutes(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) walk(full);
      else if (e.name.endsWith('.ts')) out.push(path.relative(ROOT, full).split(path.sep).join('/').replace(/\.ts$/, ''));
    }
  };
  walk(path.join(ROOT, 'api'));
  return out.sort();
}

function builtHandler(route: string): string | undefined {
  const dir = path.join(ROOT, '.vercel/output/functions', `${route}.func`);
  const vcFile = path.join(dir, '.vc-config.json');
  if (!fs.existsSync(vcFile)) return undefined;
  const { handler } = JSON.parse(fs.readFileSync(vcFile, 'utf8')) as { handler: string };
  return pathToFileURL(path.join(dir, handler)).href;
}

type Case = { name: string; args: string[]; env?: Record<string, string> };

const routes = apiRoutes();
const cases: Case[] = [
  { name: 'baseline: node -e ""', args: ['-e', ''] },
  { name: 'baseline: node --import tsx -e ""', args: ['--import', 'tsx', '-e', ''] },
];
let builtMissing = false;
for (const route of routes) {
  const built = builtHandler(route);
  if (built) cases.push({ name: `built  ${route}`, args: ['--input-type=module', '-e', IMPORT_PROBE], env: { IMPORT_URL: built } });
  else builtMissing = true;
  const source = pathToFileURL(path.join(ROOT, `${route}.ts`)).href;
  cases.push({
    name: `source ${route}`,
    args: ['--import', 'tsx', '--input-type=module', '-e', IMPORT_PROBE],
    env: { IMPORT_URL: source },
  });
}

// the handlers read no variable at import time; these only keep a stray read from failing
const env = { LOG_LEVEL: 'silent' };
const samples = new Map<string, Sample[]>(cases.map((c) => [c.name, []]));
runNode(['-e', '']); // warm the file-system cache once, outside the measurements
for (let i = 0; i < RUNS; i++) {
  for (const c of cases) samples.get(c.name)!.push(runNode(c.args, { ...env, ...c.env }));
}

const stat = (name: string) => {
  const s = samples.get(name)!;
  return { wall: median(s.map((x) => x.wallMs)), imp: median(s.map((x) => x.importMs)) };
};
const nodeBase = stat(cases[0].name).wall;
const tsxBase = stat(cases[1].name).wall;

const pad = (s: string, n: number) => s.padEnd(n);
const num = (n: number) => n.toFixed(0).padStart(7);
console.log(`Node ${process.version}, ${RUNS} fresh processes per row, medians in ms`);
console.log(`baseline node -e "": ${nodeBase.toFixed(0)} ms wall; node --import tsx -e "": ${tsxBase.toFixed(0)} ms wall\n`);
console.log(`${pad('what', 56)} ${'import'.padStart(7)} ${'wall'.padStart(7)} ${'wall/baseline'.padStart(14)}  goal`);
for (const c of cases.slice(2)) {
  const { wall, imp } = stat(c.name);
  const base = c.name.startsWith('built') ? nodeBase : tsxBase;
  // the goal is for what Vercel runs; the tsx path is local development only
  const verdict = !c.name.startsWith('built') ? '-' : imp < GOAL_MS ? 'ok' : `OVER ${GOAL_MS} ms`;
  console.log(`${pad(c.name, 56)} ${num(imp)} ${num(wall)} ${(wall / base).toFixed(2).padStart(13)}x  ${verdict}`);
}
console.log('\nimport: time of `await import(handler)` inside the process; wall: the whole process;');
console.log('wall/baseline: against `node -e ""` (built) or `node --import tsx -e ""` (source).');
if (builtMissing) console.log('\n!! some built functions are missing: run `npm run vercel:build` first to measure them');
