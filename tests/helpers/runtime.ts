import { Writable } from 'node:stream';
import { parseConfig, secretsOf } from '../../lib/config.js';
import { createLogger } from '../../lib/log.js';
import { runtimeFromConfig, type Runtime } from '../../lib/cron/runtime.js';
import type { DbHandle } from '../../db/client.js';

/** Captures log lines (JSON strings) so tests can assert on them. */
export function logCapture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l.trim()) lines.push(l);
      cb();
    },
  });
  return { lines, stream };
}

/**
 * A runtime for tests: configuration from the given variables only (never the machine's), the
 * given database handle (not closed by runs), and a captured logger.
 */
export function testRuntime(env: Record<string, string | undefined>, handle?: DbHandle, extra: Partial<Runtime> = {}) {
  // with a handle the runtime never opens a database itself; a URL keeps deployment-like
  // configurations (VERCEL_ENV, which require one) valid
  const config = parseConfig({ NODE_ENV: 'test', ...(handle ? { DATABASE_URL: 'postgres://handle-given-by-the-test/db' } : {}), ...env });
  const logs = logCapture();
  const logger = createLogger({ level: 'debug', secrets: secretsOf(config), destination: logs.stream });
  const rt = runtimeFromConfig(config, {
    logger,
    ...(handle ? { openDb: async () => ({ ...handle, close: async () => {} }) } : {}),
    ...extra,
  });
  return { rt, logs: logs.lines, config };
}
