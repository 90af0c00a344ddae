import type { TestProject } from 'vitest/node';
import pg from 'pg';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import { MIGRATIONS_DIR } from '../../db/client.js';
import { ADMIN_URL, adminQuery, postgresReachable, urlFor } from './postgres.js';

/**
 * Migrates one template database per test run; every test file copies it. Without a server, the
 * tests that need it fail (CI=true) or are reported as skipped (local), never silently passed.
 */
export default async function setup(project: TestProject) {
  if (!(await postgresReachable())) {
    const msg = `PostgreSQL is not reachable at ${ADMIN_URL}`;
    if (process.env.CI) throw new Error(`${msg}: CI needs it (.ci/run starts it)`);
    console.warn(`\n!! ${msg}: the integration tests that need it will be SKIPPED (not passed)\n`);
    project.provide('pgTemplate', '');
    return;
  }
  const template = `lokario_tmpl_${Date.now().toString(36)}_${process.pid}`;
  await adminQuery(`create database "${template}"`);
  const pool = new pg.Pool({ connectionString: urlFor(template), max: 1 });
  await migrate(drizzle({ client: pool }), { migrationsFolder: MIGRATIONS_DIR });
  await pool.end();
  project.provide('pgTemplate', template);
  return async () => {
    const c = new pg.Client({ connectionString: ADMIN_URL });
    await c.connect();
    const { rows } = await c.query<{ datname: string }>(`select datname from pg_database where datname like $1 or datname = $2`, [
      `${template.replace('_tmpl_', '_t_')}%`,
      template,
    ]);
    for (const r of rows) await c.query(`drop database if exists "${r.datname}" with (force)`).catch(() => {});
    await c.end();
  };
}
