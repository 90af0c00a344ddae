import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { neonConfig } from '@neondatabase/serverless';
import ws from 'ws';
import { openDb } from '../../db/client.js';

/**
 * The code runs on Node 20 here and on Node 24 on Vercel (SPEC §7): nothing may depend on a global
 * that only one of them has. The one such path in the code is the Neon driver's WebSocket (Node
 * 22+ has a global WebSocket, Node 20 has none): it must always be the `ws` package. Opening a
 * Neon pool connects nothing (the pool is lazy), so these checks need no server; the query
 * through the driver is in tests/integration/runtime-globals.test.ts.
 */

const hadWebSocket = Object.prototype.hasOwnProperty.call(globalThis, 'WebSocket');
const originalWebSocket = (globalThis as { WebSocket?: unknown }).WebSocket;

function setGlobalWebSocket(value: unknown | undefined) {
  if (value === undefined) delete (globalThis as { WebSocket?: unknown }).WebSocket;
  else Object.defineProperty(globalThis, 'WebSocket', { value, configurable: true, writable: true });
}

/** A stand-in for Node 22+'s global WebSocket that must never be used. */
class GlobalWebSocketTrap {
  constructor() {
    throw new Error('the global WebSocket was used: Node 20 has none');
  }
}

const UNUSED_URL = 'postgres://nobody@127.0.0.1:1/none'; // never connected: pools are lazy

describe('runtime globals: Node 20 here, Node 24 on Vercel', () => {
  afterEach(() => {
    setGlobalWebSocket(hadWebSocket ? originalWebSocket : undefined);
    neonConfig.webSocketConstructor = undefined;
  });

  it('the Neon driver gets the `ws` constructor when there is no global WebSocket (Node 20)', async () => {
    setGlobalWebSocket(undefined);
    neonConfig.webSocketConstructor = undefined;
    const handle = await openDb({ driver: 'neon', url: UNUSED_URL });
    try {
      expect(neonConfig.webSocketConstructor).toBe(ws);
    } finally {
      await handle.close();
    }
  });

  it('the Neon driver gets the `ws` constructor even when a global WebSocket exists (Node 22+)', async () => {
    setGlobalWebSocket(GlobalWebSocketTrap);
    neonConfig.webSocketConstructor = GlobalWebSocketTrap as never; // as if something had picked the global
    const handle = await openDb({ driver: 'neon', url: UNUSED_URL });
    try {
      expect(neonConfig.webSocketConstructor).toBe(ws);
      expect(neonConfig.webSocketConstructor).not.toBe((globalThis as { WebSocket?: unknown }).WebSocket);
    } finally {
      await handle.close();
    }
  });

  // Globals and APIs that differ between Node 20 and 24 and that TypeScript does not catch
  // (@types/node 20 declares some Node 22+ globals; the ES2022 lib already rejects newer ES APIs
  // such as Object.groupBy or Promise.withResolvers).
  const VERSION_DEPENDENT: { pattern: RegExp; why: string }[] = [
    {
      pattern: /(?<![\w$.'"])WebSocket\b(?!Server)|globalThis\.WebSocket\b/,
      why: 'global WebSocket: Node 22+ only (use the `ws` package)',
    },
    { pattern: /(?<![\w$.])navigator\./, why: 'global navigator: Node 21+ only' },
    { pattern: /\bprocess\.getBuiltinModule\b/, why: 'process.getBuiltinModule: Node 22.3+ only' },
    { pattern: /(?<![\w$.])(EventSource|CloseEvent)\b/, why: 'Node 22+ only' },
    { pattern: /\bcreate(De)?[cC]ipher\(/, why: 'crypto.createCipher/createDecipher: removed in Node 22 (use createCipheriv)' },
    {
      pattern:
        /\butil\.is(Array|Boolean|Buffer|Date|Error|Function|Null|NullOrUndefined|Number|Object|Primitive|RegExp|String|Symbol|Undefined)\b/,
      why: 'util.is*: removed in Node 23',
    },
    { pattern: /\b(SlowBuffer|createSecurePair|process\.binding)\b/, why: 'removed or runtime-deprecated after Node 20' },
  ];

  it('no file that runs on Vercel (api/, lib/, db/) uses a global or API that one of Node 20 and 24 lacks', () => {
    const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
    const offenders: string[] = [];
    const walk = (dir: string) => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) {
          if (entry.name !== 'migrations') walk(full);
          continue;
        }
        if (!entry.name.endsWith('.ts')) continue;
        // comments may name these things (to say why they are avoided); code may not
        const code = fs
          .readFileSync(full, 'utf8')
          .replace(/\/\*[\s\S]*?\*\//g, '')
          .replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
        code.split('\n').forEach((line, i) => {
          for (const { pattern, why } of VERSION_DEPENDENT) {
            if (pattern.test(line)) offenders.push(`${path.relative(root, full)}:${i + 1}: ${why}: ${line.trim()}`);
          }
        });
      }
    };
    for (const dir of ['api', 'lib', 'db']) walk(path.join(root, dir));
    expect(offenders).toEqual([]);
  });
});
