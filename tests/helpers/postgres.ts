import { inject } from 'vitest';
import { closeAllDbs, openDb, type DbHandle } from '../../db/client.js';

export { ADMIN_URL, adminQuery, postgresReachable, urlFor } from '../../devtools/pg-admin.js';
import { ADMIN_URL, adminQuery, urlFor } from '../../devtools/pg-admin.js';

let counter = 0;

export type TestDatabase = { name: string; url: string; handle: DbHandle; drop(): Promise<void> };

/**
 * A fresh, migrated database for one test file: a copy of the template that the global setup
 * migrated once (CREATE DATABASE … TEMPLATE, ~0.1 s). Fails loudly when no server answers.
 */
export async function createTestDatabase(label = 'db'): Promise<TestDatabase> {
  const template = inject('pgTemplate');
  if (!template) throw new Error(`PostgreSQL is not reachable at ${ADMIN_URL} (start it, or set TEST_DATABASE_URL)`);
  const name = `${template.replace('_tmpl_', '_t_')}_${process.pid}_${++counter}_${label
    .replace(/[^a-z0-9]/gi, '')
    .toLowerCase()
    .slice(0, 20)}`;
  for (let attempt = 0; ; attempt++) {
    try {
      await adminQuery(`create database "${name}" template "${template}"`);
      break;
    } catch (err) {
      // two files copying the template at the same instant: "source database is being accessed"
      if (attempt >= 10) throw err;
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
    }
  }
  const url = urlFor(name);
  const handle = await openDb({ driver: 'pg', url, poolMax: 20 });
  return {
    name,
    url,
    handle,
    async drop() {
      await closeAllDbs();
      await adminQuery(`drop database if exists "${name}" with (force)`).catch(() => {});
    },
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    /** Name of the migrated template database, or '' when PostgreSQL is not reachable. */
    pgTemplate: string;
  }
}
