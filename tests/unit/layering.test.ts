import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The floors of the code: an import may go to the same floor or below, never up, and no two
 * folders may import each other (directly or round a circle). A new folder needs a floor here.
 * cron sits below bounces: bounces takes the runner's JobContext, and the runner names no job.
 * billing imports nothing of ours; it sits with the code that reads it.
 */
const FLOORS: { floor: number; units: string[] }[] = [
  { floor: 0, units: ['db'] },
  { floor: 1, units: ['lib/text', 'lib/time', 'lib/crypto', 'lib/log.ts', 'lib/links.ts'] },
  { floor: 2, units: ['lib/config.ts', 'lib/settings.ts'] },
  { floor: 3, units: ['lib/mail', 'lib/mime', 'lib/imap', 'lib/oauth'] },
  { floor: 4, units: ['lib/billing'] },
  { floor: 5, units: ['lib/cron'] },
  { floor: 6, units: ['lib/bounces'] },
  { floor: 7, units: ['lib/jobs/*'] },
  { floor: 8, units: ['lib/jobs/registry.ts'] },
  { floor: 9, units: ['lib/console', 'lib/local'] },
];

type Edge = { from: string; to: string };

/** The folder (or top-level file) a file belongs to: `db`, `lib/mail`, `lib/jobs/followups`, `lib/config.ts`. */
export function unitOf(file: string): string {
  const parts = file.split('/');
  if (parts[0] === 'db') return 'db';
  if (parts[1] === 'jobs') return parts.slice(0, 3).join('/');
  return parts.slice(0, 2).join('/');
}

function floorOf(unit: string): number | null {
  for (const { floor, units } of FLOORS) {
    if (units.includes(unit)) return floor;
    if (units.some((u) => u.endsWith('/*') && unit.startsWith(u.slice(0, -1)) && !unit.endsWith('.ts'))) return floor;
  }
  return null;
}

/** Relative import specifiers of one source (static, re-exports, `import type`, dynamic and `import('…')` types). */
export function importsOf(source: string): string[] {
  const re = /(?:import|export)\s[^;]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/gs;
  return [...source.matchAll(re)].map((m) => m[1] ?? m[2]).filter((s) => s.startsWith('.'));
}

/** Every problem of a set of file-to-file edges: an unplaced folder, an import up, a circle across folders. */
export function layerProblems(edges: readonly Edge[], floor: (unit: string) => number | null = floorOf): string[] {
  const problems = new Set<string>();
  const graph = new Map<string, Set<string>>();
  for (const e of edges) {
    const a = unitOf(e.from);
    const b = unitOf(e.to);
    for (const u of [a, b]) if (floor(u) === null) problems.add(`${u} has no floor`);
    if (a === b) continue;
    const fa = floor(a);
    const fb = floor(b);
    if (fa !== null && fb !== null && fb > fa) problems.add(`up: ${e.from} (floor ${fa}) imports ${e.to} (floor ${fb})`);
    if (!graph.has(a)) graph.set(a, new Set());
    graph.get(a)!.add(b);
  }
  // circles: a folder that reaches itself again through other folders
  for (const start of graph.keys()) {
    const stack: string[][] = [[start]];
    const seen = new Set<string>();
    while (stack.length) {
      const route = stack.pop()!;
      for (const next of graph.get(route[route.length - 1]) ?? []) {
        if (next === start) {
          problems.add(`circle: ${[...route, start].join(' → ')}`);
          continue;
        }
        if (seen.has(next)) continue;
        seen.add(next);
        stack.push([...route, next]);
      }
    }
  }
  return [...problems];
}

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.posix.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'migrations' ? [] : sourceFiles(p);
    return p.endsWith('.ts') ? [p] : [];
  });
}

function repoEdges(root: string): Edge[] {
  return ['lib', 'db']
    .flatMap((top) => sourceFiles(path.posix.join(root, top)))
    .flatMap((abs) => {
      const from = path.posix.relative(root, abs);
      return importsOf(fs.readFileSync(abs, 'utf8')).map((spec) => ({
        from,
        to: path.posix.normalize(path.posix.join(path.posix.dirname(from), spec)).replace(/\.js$/, '.ts'),
      }));
    });
}

const floorsText = FLOORS.map((f) => `  ${f.floor}: ${f.units.join(', ')}`).join('\n');

describe('layering of lib/ and db/', () => {
  it('no import runs back up a floor and no folders import each other in a circle', () => {
    const root = path.posix.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
    const edges = repoEdges(root);
    expect(edges.length).toBeGreaterThan(100); // the parser found the imports
    const problems = layerProblems(edges);
    expect(problems, `floors (an import may go down or sideways, never up):\n${floorsText}\n${problems.join('\n')}`).toEqual([]);
  });

  it('reads every form of import', () => {
    const src = `import { a } from './a.js';\nimport type { B } from '../b.js';\nexport { c } from "./c.js";\nimport {\n  d,\n} from './d.js';\nconst e = await import('./e.js');\ntype F = import('./f.js').F;\nimport x from 'zod';`;
    expect(importsOf(src)).toEqual(['./a.js', '../b.js', './c.js', './d.js', './e.js', './f.js']);
  });

  it('flags an import up, a circle across folders and a folder without a floor', () => {
    expect(layerProblems([{ from: 'lib/mime/parse.ts', to: 'lib/jobs/inbox-sync/threading.ts' }])).toEqual([
      'up: lib/mime/parse.ts (floor 3) imports lib/jobs/inbox-sync/threading.ts (floor 7)',
    ]);
    expect(
      layerProblems([
        { from: 'lib/mail/verp.ts', to: 'lib/mime/bounce.ts' },
        { from: 'lib/mime/bounce.ts', to: 'lib/imap/session.ts' },
        { from: 'lib/imap/session.ts', to: 'lib/mail/message-id.ts' },
      ]),
    ).toContain('circle: lib/mail → lib/mime → lib/imap → lib/mail');
    expect(layerProblems([{ from: 'lib/newthing/x.ts', to: 'db/client.ts' }])).toEqual(['lib/newthing has no floor']);
    expect(
      layerProblems([
        { from: 'lib/jobs/followups/run.ts', to: 'lib/mail/transport.ts' },
        { from: 'lib/mail/x.ts', to: 'db/client.ts' },
      ]),
    ).toEqual([]);
  });
});
