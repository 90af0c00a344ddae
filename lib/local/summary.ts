/** A run's response body as a few readable lines (CLI and demo). */

type Row = [key: string, value: unknown];

/** Nested stats as `a.b.c` rows. */
function flatten(obj: unknown, prefix = ''): Row[] {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) return [];
  return Object.entries(obj).flatMap(([k, v]) =>
    v && typeof v === 'object' && !Array.isArray(v) ? flatten(v, `${prefix}${k}.`) : [[`${prefix}${k}`, v] as Row],
  );
}

/**
 * The head line, then the non-zero counters as an aligned table (zeros are counted, not listed:
 * a run that did nothing is one line), the item errors and, for a dry run, the plan.
 */
export function summarise(body: Record<string, unknown>): string {
  const out: string[] = [];
  const head = body.success
    ? body.skipped
      ? 'SKIPPED (another run holds the lease)'
      : body.partial
        ? 'PARTIAL (budget spent, the next run continues)'
        : 'OK'
    : `FAILED: ${body.error} ${body.message ?? ''}`;
  out.push(`${body.job}  ${head}${body.dryRun ? '  [dry run]' : ''}${body.durationMs !== undefined ? `  ${body.durationMs} ms` : ''}`);
  const rows = flatten(body.stats);
  const shown = rows.filter(([, v]) => v !== 0 && v !== null && v !== undefined);
  const w = Math.max(0, ...shown.map(([k]) => k.length));
  for (const [k, v] of shown) out.push(`  ${k.padEnd(w)}  ${Array.isArray(v) ? JSON.stringify(v) : String(v)}`);
  if (rows.length > shown.length) out.push(`  (${rows.length - shown.length} counters at zero not shown)`);
  const errors = (body.errors as { scope: string; id: unknown; code: string; message: string }[] | undefined) ?? [];
  if (errors.length) {
    out.push(`  errors (${body.errorsCount ?? errors.length}):`);
    for (const e of errors) out.push(`    ${e.scope} ${e.id}: ${e.code} ${e.message}`);
  }
  const plan = body.plan as unknown[] | undefined;
  if (plan?.length) {
    out.push(`  plan (${plan.length} shown):`);
    for (const p of plan.slice(0, 20)) out.push(`    ${JSON.stringify(p)}`);
  }
  return out.join('\n');
}

/**
 * A progress line for a terminal: rewritten in place on a TTY, otherwise printed at most every
 * `everyMs` so that a log file does not fill up. `done()` ends the line.
 */
export function progressPrinter(job: string, stream: NodeJS.WriteStream = process.stderr, everyMs = 2_000) {
  let last = 0;
  let width = 0;
  return {
    update(message: string) {
      const line = `${job} ${message}`;
      if (stream.isTTY) {
        stream.write(`\r${line.padEnd(width)}`);
        width = line.length;
      } else if (Date.now() - last >= everyMs) {
        stream.write(`${line}\n`);
        last = Date.now();
      }
    },
    done() {
      if (stream.isTTY && width) stream.write(`\r${' '.repeat(width)}\r`);
    },
  };
}
