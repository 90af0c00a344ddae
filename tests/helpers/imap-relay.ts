import net from 'node:net';

/**
 * A TCP relay in front of an IMAP server that behaves like a bad link, server to client: a
 * bandwidth cap (token bucket, `bytesPerSec`), a stall (keeps the connection open, sends nothing
 * more) and a cut. Client-to-server bytes pass unchanged (commands are tiny).
 */
export type BadLink = {
  port: number;
  /** Caps the server-to-client rate of every connection (null: unlimited). */
  throttle(bytesPerSec: number | null): void;
  /** Stops forwarding server bytes once `afterBytes` more have passed; the connection stays open. */
  stallAfter(afterBytes: number): void;
  /** Forwards normally again (a stalled connection stays stalled: it is a new run's connection that recovers). */
  restore(): void;
  /** Server-to-client bytes forwarded so far. */
  forwarded(): number;
  close(): Promise<void>;
};

const TICK_MS = 50;
/** Bytes queued in the relay before it stops reading the server (the server's socket then fills). */
const QUEUE_HIGH_WATER = 64 * 1024;

export async function badLink(targetPort: number, targetHost = '127.0.0.1'): Promise<BadLink> {
  let rate: number | null = null;
  let stallBudget = Infinity;
  let total = 0;
  const sockets = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const server = net.createServer((client) => {
    const up = net.connect({ host: targetHost, port: targetPort });
    sockets.add(client);
    sockets.add(up);
    client.on('error', () => up.destroy());
    up.on('error', () => client.destroy());
    client.on('close', () => {
      up.destroy();
      sockets.delete(client);
    });
    up.on('close', () => {
      client.destroy();
      sockets.delete(up);
    });
    client.pipe(up);
    let stalled = false;
    const queue: Buffer[] = [];
    let queued = 0;
    let tokens = 0;
    const send = (chunk: Buffer) => {
      if (stalled) return;
      if (chunk.length > stallBudget) {
        const head = chunk.subarray(0, stallBudget);
        stallBudget = 0;
        stalled = true;
        if (head.length) {
          total += head.length;
          client.write(head);
        }
        return;
      }
      stallBudget -= chunk.length;
      total += chunk.length;
      client.write(chunk);
    };
    const pump = () => {
      if (rate === null) {
        while (queue.length) send(queue.shift()!);
        queued = 0;
      } else {
        tokens = Math.min(tokens + (rate * TICK_MS) / 1000, rate); // at most one second of burst
        while (queue.length && tokens >= 1) {
          const head = queue[0];
          const n = Math.min(head.length, Math.floor(tokens));
          send(head.subarray(0, n));
          tokens -= n;
          queued -= n;
          if (n === head.length) queue.shift();
          else queue[0] = head.subarray(n);
        }
      }
      if (queued < QUEUE_HIGH_WATER && up.isPaused()) up.resume();
    };
    const timer = setInterval(pump, TICK_MS);
    timers.add(timer);
    client.on('close', () => {
      clearInterval(timer);
      timers.delete(timer);
    });
    up.on('data', (chunk: Buffer) => {
      queue.push(chunk);
      queued += chunk.length;
      if (rate === null) pump();
      if (queued >= QUEUE_HIGH_WATER) up.pause();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    throttle(bytesPerSec) {
      rate = bytesPerSec;
    },
    stallAfter(afterBytes) {
      stallBudget = afterBytes;
    },
    restore() {
      stallBudget = Infinity;
      rate = null;
    },
    forwarded: () => total,
    close: () =>
      new Promise<void>((r) => {
        for (const t of timers) clearInterval(t);
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
