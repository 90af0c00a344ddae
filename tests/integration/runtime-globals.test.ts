import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { neonConfig } from '@neondatabase/serverless';
import { closeAllDbs, openDb, queryRows } from '../../db/client.js';
import { startNeonProxy, useNeonProxy } from '../helpers/neon-proxy.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePg } from '../helpers/services.js';

/**
 * The Neon driver path of db/client.ts on a real PostgreSQL (through a local WebSocket-to-TCP
 * proxy like Neon's), with and without a global WebSocket: the Node 20 and the Node 22+/Vercel
 * situations. A query goes through in both, and the global is never constructed.
 */

const hadWebSocket = Object.prototype.hasOwnProperty.call(globalThis, 'WebSocket');
const originalWebSocket = (globalThis as { WebSocket?: unknown }).WebSocket;
let globalConstructed = 0;

/** Stands for Node 22+'s global WebSocket; counts its uses and refuses to connect. */
class GlobalWebSocketTrap {
  constructor() {
    globalConstructed++;
    throw new Error('the global WebSocket was used');
  }
}

function setGlobalWebSocket(value: unknown | undefined) {
  if (value === undefined) delete (globalThis as { WebSocket?: unknown }).WebSocket;
  else Object.defineProperty(globalThis, 'WebSocket', { value, configurable: true, writable: true });
}

describePg('Neon driver on Node 20 and Node 22+ globals (real PostgreSQL through a Neon-like proxy)', () => {
  let t: TestDatabase;
  let proxy: Awaited<ReturnType<typeof startNeonProxy>>;

  beforeAll(async () => {
    t = await createTestDatabase('runtimeglobals');
    proxy = await startNeonProxy();
    useNeonProxy(proxy.port);
  });
  afterAll(async () => {
    await proxy?.close();
    await t?.drop();
  });
  afterEach(async () => {
    setGlobalWebSocket(hadWebSocket ? originalWebSocket : undefined);
    await closeAllDbs();
  });

  async function queryThroughNeon() {
    // undo the helper's choice: only db/client.ts may pick the constructor here
    neonConfig.webSocketConstructor = undefined;
    const handle = await openDb({ driver: 'neon', url: t.url });
    try {
      const rows = await queryRows<{ n: number }>(handle.db, sql`select count(*)::int as n from cron_runs`);
      return rows[0].n;
    } finally {
      await handle.close();
    }
  }

  it('no global WebSocket (Node 20): the query goes through the ws package', async () => {
    setGlobalWebSocket(undefined);
    expect(await queryThroughNeon()).toBe(0);
  });

  it('a global WebSocket present (Node 22+, Vercel Node 24): still the ws package, the global is never used', async () => {
    setGlobalWebSocket(GlobalWebSocketTrap);
    globalConstructed = 0;
    expect(await queryThroughNeon()).toBe(0);
    expect(globalConstructed).toBe(0);
  });
});
