import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { adminQuery, createTestDatabase, urlFor, type TestDatabase } from '../helpers/postgres.js';
import { describePg } from '../helpers/services.js';
import { queryRows } from '../../db/client.js';

const root = path.resolve(import.meta.dirname, '../..');

/** `npm run job -- …` as a user types it (the script behind it, without npm's banner). */
function runCli(
  args: string[],
  env: Record<string, string>,
  script = 'scripts/job.ts',
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ENV_FILE: 'none', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describePg('npm run job (the CLI)', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase('cli');
  });
  afterAll(async () => {
    await t?.drop();
  });

  it("runs one job once with --dry-run, --company and --now; exit 0; trigger cli; the clock override is the job's", async () => {
    const r = await runCli(['overdue-reminders', '--dry-run', '--company', '7', '--now', '2026-03-29T06:00:00+02:00', '--json'], {
      DATABASE_URL: t.url,
    });
    expect(r.code, r.stderr).toBe(0);
    const body = JSON.parse(r.stdout);
    expect(body).toMatchObject({
      success: true,
      job: 'overdue-reminders',
      trigger: 'cli',
      dryRun: true,
      now: '2026-03-29T04:00:00.000Z',
      companyId: 7,
    });
    const runs = await queryRows<{ trigger: string; dry_run: boolean }>(t.handle.db, sql`select trigger, dry_run from cron_runs`);
    expect(runs).toEqual([{ trigger: 'cli', dry_run: true }]);
  });

  it('prints a readable summary by default', async () => {
    const r = await runCli(['account-deletions'], { DATABASE_URL: t.url });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^account-deletions {2}OK {2}\d+ ms/m);
  });

  it('exits 2 with the usage on an unknown job or a bad option, 1 when the run fails', async () => {
    const unknown = await runCli(['nope'], { DATABASE_URL: t.url });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('usage: npm run job');
    const bad = await runCli(['followups', '--company', 'abc'], { DATABASE_URL: t.url });
    expect(bad.code).toBe(2);
    const down = await runCli(['followups'], { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/nowhere' });
    expect(down.code).toBe(1);
    expect(down.stdout).toContain('FAILED: database_unavailable');
  });

  it('npm run db:migrate applies the committed migrations to an empty database, and again is a no-op', async () => {
    const name = `${t.name}_empty`;
    await adminQuery(`create database "${name}"`);
    try {
      for (let i = 0; i < 2; i++) {
        const r = await runCli([], { DATABASE_URL: urlFor(name) }, 'scripts/migrate.ts');
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toContain('migrations applied (pg)');
      }
      const { default: pg } = await import('pg');
      const client = new pg.Client({ connectionString: urlFor(name) });
      await client.connect();
      const { rows } = await client.query(
        `select count(*)::int as n from information_schema.tables where table_schema = 'public' and table_name in ('cron_runs', 'followups', 'inbox_messages')`,
      );
      await client.end();
      expect(rows[0].n).toBe(3);
    } finally {
      await adminQuery(`drop database if exists "${name}" with (force)`);
    }
  });
});
