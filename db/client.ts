import { createHash } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { sql, type SQL } from 'drizzle-orm';
import * as schema from './schema/index.js';

/** The drizzle database, whatever the driver: PGlite, node-postgres or Neon share this type. */
export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];
export type Executor = Db | Tx;
export type Driver = 'pglite' | 'pg' | 'neon';

export type DbHandle = {
  db: Db;
  driver: Driver;
  /** Ends what this handle opened (a Neon pool per invocation); shared pools stay open. */
  close(): Promise<void>;
};

export type DbOptions = {
  driver: Driver;
  url?: string;
  pgliteDir?: string; // a directory, or `memory://`
  poolMax?: number;
  /** Apply pending migrations on open (the embedded database, the local server, tests). */
  migrate?: boolean;
};

export const MIGRATIONS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations');

/** A list or object as one jsonb parameter: the same on pg, Neon and PGlite, whatever its size. */
export const jsonb = (v: unknown): SQL => sql`${JSON.stringify(v)}::jsonb`;

/** Rows of a raw statement; the three drivers all answer `{ rows }`. */
export async function queryRows<T = Record<string, unknown>>(db: Executor, query: SQL): Promise<T[]> {
  const res = (await db.execute(query)) as unknown as { rows: T[] };
  return res.rows;
}

/**
 * What `preparedRows` needs of drizzle's database object: its dialect (SQL → text and parameters)
 * and its session (runs a query under a statement name). Both exist on a database and on a
 * transaction, for the three drivers (drizzle-orm 0.45).
 */
type NamedStatementRunner = {
  dialect: { sqlToQuery(query: SQL): { sql: string; params: unknown[] } };
  session: {
    prepareQuery(
      query: { sql: string; params: unknown[] },
      fields: undefined,
      name: string,
      arrayMode: boolean,
    ): { execute(): Promise<unknown> };
  };
};

/** Statement names by text; the hot statements are a few dozen texts, the cap only bounds a mistake. */
const statementNames = new Map<string, string>();
const STATEMENT_NAMES_CAP = 1_000;

/** A name that is a function of the text: a name never stands for two texts on one connection. */
function statementName(text: string): string {
  let name = statementNames.get(text);
  if (!name) {
    if (statementNames.size >= STATEMENT_NAMES_CAP) statementNames.clear();
    name = `lk_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`;
    statementNames.set(text, name);
  }
  return name;
}

/**
 * Rows of a statement the hot path runs many times per run (a claim, a record, a hand-over): run
 * as a named prepared statement, so PostgreSQL parses and plans it once per connection instead of
 * every time (docs/sending.md, "Cost of a statement"). The text must not embed values that vary
 * (they are parameters: lists travel as one jsonb). node-postgres and Neon keep the statement per
 * connection (Neon's pooler tracks protocol-level prepared statements); PGlite runs it unnamed.
 */
export async function preparedRows<T = Record<string, unknown>>(db: Executor, query: SQL): Promise<T[]> {
  const { dialect, session } = db as unknown as NamedStatementRunner;
  const built = dialect.sqlToQuery(query);
  const res = (await session.prepareQuery(built, undefined, statementName(built.sql), false).execute()) as { rows: T[] };
  return res.rows;
}

/** drizzle wraps driver errors ("Failed query: …"): the Postgres error is its cause. */
export function rootDbError(err: unknown): unknown {
  let e = err as { cause?: unknown; code?: unknown } | undefined;
  for (let i = 0; i < 5 && e && e.code === undefined && e.cause; i++) e = e.cause as typeof e;
  return e;
}

/** The SQLSTATE of a database error (`23505`, `40P01`…), or undefined for anything else. */
export function pgErrorCode(err: unknown): string | undefined {
  const code = (rootDbError(err) as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/**
 * A failure that says nothing about the statement's data and may pass on a retry: a lost or
 * refused connection, a deadlock or serialization failure, a lock timeout, a server shutting
 * down or out of resources. (A bad value, a constraint, a value too large for an index is not:
 * it would fail again.)
 */
export function isTransientDbError(err: unknown): boolean {
  const code = pgErrorCode(err);
  if (code) return /^(08|40|53|57)/.test(code) || code === '55P03';
  const root = rootDbError(err) as { code?: unknown; message?: unknown } | undefined;
  if (typeof root?.code === 'string' && /^E(CONN|PIPE|TIMEDOUT|HOSTUNREACH|NETUNREACH|AI_AGAIN)/.test(root.code)) return true;
  return /connection (terminated|closed|lost|ended)|socket hang up|timeout exceeded when trying to connect/i.test(
    String(root?.message ?? err),
  );
}

/**
 * The database rolled the transaction back to settle a conflict with another one (deadlock
 * victim, serialization failure: SQLSTATE class 40). Running the same work again is the remedy
 * PostgreSQL documents, and is safe: nothing of the rolled-back attempt remains.
 */
export function isTransactionRollback(err: unknown): boolean {
  return pgErrorCode(err)?.startsWith('40') ?? false;
}

/** Another transaction is in the way: a lock wait ran out (`lock_timeout`), or a class-40 rollback. */
export function isLockConflict(err: unknown): boolean {
  return pgErrorCode(err) === LOCK_NOT_AVAILABLE || isTransactionRollback(err);
}
const LOCK_NOT_AVAILABLE = '55P03';

export type TransientRetryOptions = {
  /** Tries in all, the first one included. */
  attempts?: number;
  /**
   * Which failures are tried again. Default: class-40 rollbacks only. A lost connection is
   * transient too (isTransientDbError), but the answer to a COMMIT may be what was lost: a caller
   * opts in only when running the work twice is harmless.
   */
  retryOn?: (err: unknown) => boolean;
  /** Pause before try n+1 is up to n × this (random), so that the two sides of a deadlock do not meet again. */
  backoffMs?: number;
};

/** Runs `fn`, and runs it again (a few times, with a short random pause) after a transient failure. */
export async function withTransientRetry<T>(fn: () => Promise<T>, opts: TransientRetryOptions = {}): Promise<T> {
  const attempts = opts.attempts ?? 3;
  const retryOn = opts.retryOn ?? isTransactionRollback;
  const backoffMs = opts.backoffMs ?? 20;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= attempts || !retryOn(err)) throw err;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * backoffMs * attempt));
    }
  }
}

// PGlite costs ~3 s and ~1 GB to start: one instance per directory per process.
const pgliteInstances = new Map<string, Promise<{ db: Db; close(): Promise<void> }>>();
const pgPools = new Map<string, Promise<{ db: Db; close(): Promise<void> }>>();

async function openPglite(dir: string, migrate: boolean) {
  const { PGlite } = await import('@electric-sql/pglite');
  const { drizzle } = await import('drizzle-orm/pglite');
  if (dir !== 'memory://') {
    const fs = await import('node:fs');
    fs.mkdirSync(dir, { recursive: true });
  }
  const client = await PGlite.create(dir === 'memory://' ? undefined : dir);
  const db = drizzle({ client, schema }) as unknown as Db;
  if (migrate) {
    const { migrate: run } = await import('drizzle-orm/pglite/migrator');
    await run(db as never, { migrationsFolder: MIGRATIONS_DIR });
  }
  return { db, close: () => client.close() };
}

async function openPgPool(url: string, max: number) {
  const pg = (await import('pg')).default;
  const { drizzle } = await import('drizzle-orm/node-postgres');
  const pool = new pg.Pool({ connectionString: url, max, connectionTimeoutMillis: 10_000, idleTimeoutMillis: 30_000 });
  pool.on('error', () => {
    /* an idle client died (server restart); the pool replaces it */
  });
  // a client checked out for a transaction has no pool listener: a connection lost between two
  // statements would otherwise be an uncaught 'error' that kills the process; the next query fails instead
  pool.on('connect', (client) => {
    client.on('error', () => {});
  });
  const db = drizzle({ client: pool, schema }) as unknown as Db;
  return { db, close: () => pool.end() };
}

async function openNeonPool(url: string, max: number) {
  const { Pool, neonConfig } = await import('@neondatabase/serverless');
  const { drizzle } = await import('drizzle-orm/neon-serverless');
  const ws = (await import('ws')).default;
  // Always the `ws` package, never the global WebSocket: Node 20 has none, Node 22+ has one, and
  // one code path on every runtime is the one the tests cover.
  neonConfig.webSocketConstructor = ws;
  const pool = new Pool({ connectionString: url, max });
  pool.on('error', () => {
    /* surfaced on the next query */
  });
  pool.on('connect', (client: { on(event: 'error', fn: () => void): unknown }) => {
    client.on('error', () => {});
  }); // same as the pg pool above
  const db = drizzle({ client: pool, schema }) as unknown as Db;
  return { db, close: () => pool.end() };
}

async function migratePg(db: Db, driver: Driver) {
  if (driver === 'neon') {
    const { migrate } = await import('drizzle-orm/neon-serverless/migrator');
    await migrate(db as never, { migrationsFolder: MIGRATIONS_DIR });
  } else {
    const { migrate } = await import('drizzle-orm/node-postgres/migrator');
    await migrate(db as never, { migrationsFolder: MIGRATIONS_DIR });
  }
}

/**
 * Opens the database chosen by the configuration (DATABASE_URL / DATABASE_DRIVER, README). PGlite and `pg` pools are shared per
 * process (a warm serverless instance reuses them); a Neon pool lives for one invocation, as Neon
 * recommends for WebSocket pools in serverless functions.
 */
export async function openDb(opts: DbOptions): Promise<DbHandle> {
  if (opts.driver === 'pglite') {
    const dir = opts.pgliteDir ?? '.data/pglite';
    let p = pgliteInstances.get(dir);
    if (!p) {
      p = openPglite(dir, opts.migrate ?? true);
      pgliteInstances.set(dir, p);
      p.catch(() => pgliteInstances.delete(dir));
    }
    const inst = await p;
    return { db: inst.db, driver: 'pglite', close: async () => {} };
  }
  if (!opts.url) throw new Error(`DATABASE_URL is required for the ${opts.driver} driver`);
  if (opts.driver === 'neon') {
    const inst = await openNeonPool(opts.url, opts.poolMax ?? 5);
    if (opts.migrate) await migratePg(inst.db, 'neon');
    return { db: inst.db, driver: 'neon', close: inst.close };
  }
  const key = `${opts.url}#${opts.poolMax ?? 5}`;
  let p = pgPools.get(key);
  if (!p) {
    p = openPgPool(opts.url, opts.poolMax ?? 5);
    pgPools.set(key, p);
    p.catch(() => pgPools.delete(key));
  }
  const inst = await p;
  if (opts.migrate) await migratePg(inst.db, 'pg');
  return { db: inst.db, driver: 'pg', close: async () => {} };
}

/** Closes every shared PGlite instance and pool (server shutdown, end of a test file). */
export async function closeAllDbs(): Promise<void> {
  const all = [...pgliteInstances.values(), ...pgPools.values()];
  pgliteInstances.clear();
  pgPools.clear();
  await Promise.all(all.map(async (p) => (await p.catch(() => null))?.close().catch(() => {})));
}

/** Applies pending migrations to the configured database (`npm run db:migrate`). */
export async function migrateDb(opts: Omit<DbOptions, 'migrate'>): Promise<void> {
  const handle = await openDb({ ...opts, migrate: true });
  await handle.close();
}
