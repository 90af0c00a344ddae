import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Handler } from '../../lib/cron/route.js';

/** Serves one handler on a free loopback port, for real HTTP requests with fetch(). */
export async function serveHandler(handler: Handler): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    handler(req, res).catch((err) => {
      res.statusCode = 500;
      res.end(String(err));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
