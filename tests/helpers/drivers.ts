import type { DbHandle } from '../../db/client.js';
import { createTestDatabase, type TestDatabase } from './postgres.js';
import { neonHandle, startNeonProxy, useNeonProxy } from './neon-proxy.js';

export type DriverDatabase = { t: TestDatabase; handle: DbHandle; close(): Promise<void> };

/**
 * A fresh test database reached through the production driver under test: the `pg` pool, or the
 * Neon serverless driver through the local WebSocket proxy (transactional paths must behave the same on both).
 */
export async function databaseOnDriver(driver: 'pg' | 'neon', label: string, poolMax = 10): Promise<DriverDatabase> {
  const t = await createTestDatabase(label);
  if (driver === 'pg') return { t, handle: t.handle, close: () => t.drop() };
  const proxy = await startNeonProxy();
  useNeonProxy(proxy.port);
  const handle = neonHandle(t.url, poolMax);
  return {
    t,
    handle,
    async close() {
      await handle.close();
      await proxy.close();
      await t.drop();
    },
  };
}
