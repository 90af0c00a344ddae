/** A run's response body as a few readable lines (CLI and demo). */
export function summarise(body: Record<string, unknown>): string {
  const out: string[] = [];
  const head = body.success ? (body.skipped ? 'SKIPPED (another run holds the lease)' : body.partial ? 'PARTIAL (budget spent, the next run continues)' : 'OK') : `FAILED: ${body.error} ${body.message ?? ''}`;
  out.push(`${body.job}  ${head}${body.dryRun ? '  [dry run]' : ''}${body.durationMs !== undefined ? `  ${body.durationMs} ms` : ''}`);
  const flat = (obj: unknown, prefix = ''): [string, unknown][] =>
    obj && typeof obj === 'object' && !Array.isArray(obj)
      ? Object.entries(obj).flatMap(([k, v]) => (v && typeof v === 'object' && !Array.isArray(v) ? flat(v, `${prefix}${k}.`) : [[`${prefix}${k}`, v] as [string, unknown]]))
      : [];
  const rows = flat(body.stats);
  const w = Math.max(0, ...rows.map(([k]) => k.length));
  for (const [k, v] of rows) out.push(`  ${k.padEnd(w)}  ${Array.isArray(v) ? JSON.stringify(v) : String(v)}`);
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
