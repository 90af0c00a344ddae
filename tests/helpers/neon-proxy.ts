import net from 'node:net';
import { WebSocketServer } from 'ws';
import { Pool, neonConfig } from '@neondatabase/serverless';
import ws from 'ws';
import { drizzle } from 'drizzle-orm/neon-serverless';
import * as schema from '../../db/schema/index.js';
import type { Db, DbHandle } from '../../db/client.js';

/**
 * A WebSocket-to-TCP proxy like Neon's: the serverless driver sends raw Postgres wire bytes in
 * binary frames; this forwards them to the local server so the Neon driver runs against it.
 */
export async function startNeonProxy(): Promise<{ port: number; close(): Promise<void> }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  wss.on('connection', (socket, req) => {
    const addr = new URL(req.url ?? '/', 'http://x').searchParams.get('address') ?? '';
    const [host, port] = addr.split(':');
    const tcp = net.connect({ host, port: Number(port) });
    tcp.setNoDelay(true);
    const pending: Buffer[] = [];
    let open = false;
    tcp.on('connect', () => {
      open = true;
      for (const b of pending) tcp.write(b);
      pending.length = 0;
    });
    socket.on('message', (d: Buffer) => (open ? tcp.write(d) : pending.push(d)));
    tcp.on('data', (c) => socket.send(c, { binary: true }));
    tcp.on('close', () => socket.close());
    tcp.on('error', () => socket.terminate());
    socket.on('close', () => tcp.end());
    socket.on('error', () => tcp.destroy());
  });
  await new Promise((r) => wss.once('listening', r));
  const port = (wss.address() as net.AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((r) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => r());
      }),
  };
}

/** Points the (global) Neon driver configuration at the local proxy. Tests only. */
export function useNeonProxy(proxyPort: number) {
  neonConfig.webSocketConstructor = ws;
  neonConfig.wsProxy = (host, port) => `127.0.0.1:${proxyPort}/v1?address=${host}:${port}`;
  neonConfig.useSecureWebSocket = false;
  neonConfig.pipelineTLS = false;
  neonConfig.pipelineConnect = false; // trust/SCRAM auth is not cleartext-password
}

/** A drizzle database over the Neon driver (through the proxy) on a local database URL. */
export function neonHandle(url: string, max = 10): DbHandle {
  const pool = new Pool({ connectionString: url, max });
  pool.on('error', () => {});
  pool.on('connect', (client: { on(event: 'error', fn: () => void): unknown }) => {
    client.on('error', () => {});
  }); // as db/client.ts: a lost connection fails the next query
  const db = drizzle({ client: pool, schema }) as unknown as Db;
  return { db, driver: 'neon', close: () => pool.end() };
}
