/**
 * The simulated WAN link of bench/inbox-sync.ts part 1b and bench/scale.ts: a TCP relay (in a child
 * process, so its CPU is not the caller's) where every chunk arrives `oneWayMs` later and no faster
 * than `mbitPerSec`, in order, both ways.
 */
import { spawn } from 'node:child_process';

const SLOW_LINK_SOURCE = `
const net = require('node:net');
const [targetPort, oneWayMs, mbitPerSec] = process.argv.slice(1).map(Number);
const bytesPerMs = (mbitPerSec * 1e6) / 8 / 1000;
function relay(from, to) {
  const queue = []; // { at, chunk }, chunk null = end of stream; delivered in order
  let free = 0;     // when the link is next free to deliver
  let timer = null;
  const pump = () => {
    timer = null;
    while (queue.length && queue[0].at <= performance.now()) {
      const { chunk } = queue.shift();
      if (to.destroyed) return;
      if (chunk) to.write(chunk); else to.end();
    }
    if (queue.length) timer = setTimeout(pump, Math.max(1, queue[0].at - performance.now()));
  };
  const enqueue = (chunk) => {
    const now = performance.now();
    free = Math.max(now + oneWayMs, free + (chunk ? chunk.length : 0) / bytesPerMs);
    queue.push({ at: free, chunk });
    if (!timer) timer = setTimeout(pump, Math.max(1, queue[0].at - now));
  };
  from.on('data', enqueue);
  from.on('end', () => enqueue(null));
}
const server = net.createServer((client) => {
  const up = net.connect({ host: '127.0.0.1', port: targetPort });
  // the relay itself adds no Nagle delay: whatever stalls remain are the endpoints' own
  for (const x of [client, up]) { x.setNoDelay(true); x.on('error', () => {}); x.on('close', () => { client.destroy(); up.destroy(); }); }
  relay(client, up);
  relay(up, client);
});
server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));
`;

export async function slowLink(targetPort: number, oneWayMs: number, mbitPerSec: number) {
  const child = spawn(process.execPath, ['-e', SLOW_LINK_SOURCE, String(targetPort), String(oneWayMs), String(mbitPerSec)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once('data', (b: Buffer) => resolve(Number(String(b).trim())));
    child.once('exit', (code) => reject(new Error(`slow link exited (${code})`)));
  });
  return {
    port,
    close: async () => {
      child.kill();
    },
  };
}
