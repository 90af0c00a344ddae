import { getConfig, secretsOf, type Config } from '../config.js';
import { openDb, type DbHandle } from '../../db/client.js';
import { createLogger, type Logger } from '../log.js';
import { createMailFactory, type MailFactory } from '../mail/transport.js';
import { selfBaseUrl } from './fanout.js';
import type { LeaseTiming } from './runs.js';

/** What a run needs from the outside world; tests and the local server build their own. */
export type Runtime = {
  config: Config;
  logger: Logger;
  openDb(): Promise<DbHandle>;
  mailFactory(): MailFactory;
  /** Aborted when the process is stopping (`npm start` on SIGTERM/SIGINT): runs claim nothing new. */
  stopSignal?: AbortSignal;
  /** The local server's own address, for fan-out shards (lib/cron/fanout.ts); on Vercel, from the environment. */
  selfUrl?(): string | undefined;
  /** Lease TTL and heartbeat period (lib/cron/runs.ts); tests shorten them. */
  leaseTiming?: LeaseTiming;
};

export function runtimeFromConfig(config: Config, overrides: Partial<Omit<Runtime, 'config'>> = {}): Runtime {
  return {
    config,
    logger: overrides.logger ?? createLogger({ level: config.LOG_LEVEL, secrets: secretsOf(config) }),
    openDb:
      overrides.openDb ??
      (() =>
        openDb({
          driver: config.databaseDriver,
          url: config.DATABASE_URL,
          pgliteDir: config.PGLITE_DIR,
          poolMax: config.DB_POOL_MAX,
          // only the embedded database is migrated on open; request handlers never migrate a real one
          migrate: config.databaseDriver === 'pglite',
        })),
    mailFactory: overrides.mailFactory ?? (() => createMailFactory(config)),
    ...(overrides.stopSignal ? { stopSignal: overrides.stopSignal } : {}),
    ...(overrides.leaseTiming ? { leaseTiming: overrides.leaseTiming } : {}),
    selfUrl: () => selfBaseUrl(config, overrides.selfUrl?.()) ?? undefined,
  };
}

let cached: Runtime | undefined;
/** The process runtime from the environment (throws ConfigError on a bad variable). */
export function defaultRuntime(): Runtime {
  cached ??= runtimeFromConfig(getConfig());
  return cached;
}
