/**
 * `npm start`: the local server. Serves every route under `/api/<path>` and the bare
 * `<path>` through the same handlers, and runs the registered jobs on their vercel.json schedules
 * (unless SCHEDULER=off). Embedded database and file outbox unless configured otherwise.
 */
import http from 'node:http';
import { Cron } from 'croner';
import { getConfig, ConfigError } from '../lib/config.js';
import { openDb, closeAllDbs } from '../db/client.js';
import { runtimeFromConfig } from '../lib/cron/runtime.js';
import { cronRoute, statusRoute, type Handler } from '../lib/cron/route.js';
import { runJob } from '../lib/cron/run.js';
import { parseRunParams } from '../lib/cron/params.js';
import { STATUS_PATH } from '../lib/cron/jobs.js';
import { JOB_REGISTRY } from '../lib/jobs/registry.js';
import { isStatusPath, jobForPath, scheduledCrons } from '../lib/local/vercel-config.js';
import { loadDotEnv } from '../lib/local/dotenv.js';
import { consoleRoute, isConsolePath } from '../lib/console/route.js';

/**
 * How long a stop waits for runs in progress: their SMTP transactions (cut at the run's deadline
 * anyway), their records and their lease release. Past it the process exits, and a run's emails
 * still in a transaction become `unknown` (docs/sending.md).
 */
const STOP_DRAIN_MS = 20_000;

async function main() {
  loadDotEnv();
  let config;
  try {
    config = getConfig();
  } catch (err) {
    console.error(err instanceof ConfigError ? `Configuration error: ${err.message}` : err);
    process.exit(1);
  }
  const dbOpts = { driver: config.databaseDriver, url: config.DATABASE_URL, pgliteDir: config.PGLITE_DIR, poolMax: config.DB_POOL_MAX };
  const started = Date.now();
  // the local server applies pending migrations on start (handlers never do on a real database)
  const shared = await openDb({ ...dbOpts, migrate: true });
  // aborted on SIGTERM/SIGINT: running jobs claim nothing new and start no new SMTP transaction
  const stopping = new AbortController();
  let localUrl: string | undefined; // known once listening: fan-out shards call this server
  const rt = runtimeFromConfig(config, {
    openDb: config.databaseDriver === 'neon' ? () => openDb(dbOpts) : async () => ({ ...shared, close: async () => {} }),
    stopSignal: stopping.signal,
    selfUrl: () => localUrl,
  });
  // every run and request under way, so that a stop can wait for them
  const inFlight = new Set<Promise<unknown>>();
  const track = <T>(p: Promise<T>): Promise<T> => {
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p)).catch(() => {});
    return p;
  };
  const getRt = () => rt;
  const { jobs } = JOB_REGISTRY;
  const handlers = new Map<string, Handler>(jobs.map((job) => [job.id, cronRoute(job, getRt)]));
  const status = statusRoute(JOB_REGISTRY, getRt);
  const operatorConsole = consoleRoute(JOB_REGISTRY, getRt);

  const server = http.createServer((req, res) => {
    const pathname = new URL(req.url ?? '/', 'http://localhost').pathname;
    const job = jobForPath(jobs, pathname);
    const handler = job ? handlers.get(job.id) : isStatusPath(pathname) ? status : isConsolePath(pathname) ? operatorConsole : undefined;
    if (!handler) {
      res.statusCode = 404;
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ success: false, error: 'not_found', routes: [...jobs.map((j) => j.path), STATUS_PATH, '/cron'] }));
      return;
    }
    track(handler(req, res)).catch((err) => {
      rt.logger.error({ err: String(err) }, 'unhandled error');
      if (!res.headersSent) {
        res.statusCode = 500;
        res.end('{"success":false,"error":"internal"}');
      }
    });
  });

  const crons: Cron[] = [];
  if (config.SCHEDULER === 'on') {
    for (const c of scheduledCrons(jobs)) {
      const params = parseRunParams(Object.fromEntries(c.query), config);
      const pattern = config.SCHEDULER_EVERY_SECONDS ? `*/${config.SCHEDULER_EVERY_SECONDS} * * * * *` : c.schedule;
      // protect: a run still going when the next tick comes is not started twice in this process
      crons.push(
        new Cron(pattern, { timezone: 'UTC', protect: true }, async () => {
          if (stopping.signal.aborted) return;
          const { body } = await track(runJob(c.job, 'scheduler', params, rt));
          rt.logger.info({ job: c.job.id, success: body.success, skipped: body.skipped ?? false }, 'scheduled run done');
        }),
      );
    }
  }

  server.listen(config.PORT, () => {
    const addr = server.address();
    const port = typeof addr === 'object' && addr ? addr.port : config.PORT;
    localUrl = `http://127.0.0.1:${port}`;
    const lines = [
      `Lokario cron jobs listening on http://localhost:${port}  (ready in ${Date.now() - started} ms)`,
      `  database: ${config.databaseDriver}${config.databaseDriver === 'pglite' ? ` (${config.PGLITE_DIR})` : ''}`,
      `  mail: ${config.SMTP_URL ? 'SMTP_URL' : `.eml files in ${config.OUTBOX_DIR}/`}${config.MAIL_REDIRECT_TO ? ` (redirected to ${config.MAIL_REDIRECT_TO})` : ''}`,
      `  scheduler: ${
        config.SCHEDULER === 'on'
          ? scheduledCrons(jobs)
              .map((c, i) => `${c.job.id} "${crons[i].getPattern()}"`)
              .join(', ')
          : 'off'
      }`,
      config.CRON_SECRET
        ? '  secret: required (Authorization: Bearer <CRON_SECRET> or ?secret=)'
        : '  !! CRON_SECRET is not set: the routes are UNPROTECTED (local development only)',
      ...jobs.map((j) => `  GET ${j.path}   (also /api${j.path})`),
      `  GET ${STATUS_PATH}`,
      `  console: http://localhost:${port}/cron  (sign in with ${config.CONSOLE_PASSWORD ? 'CONSOLE_PASSWORD' : 'CRON_SECRET'})`,
    ];
    console.log(lines.join('\n'));
  });

  const stop = async (signal: string) => {
    if (stopping.signal.aborted) {
      // a second Ctrl-C: leave now (emails in an SMTP transaction become `unknown`)
      console.log(`${signal} again: exiting without waiting`);
      process.exit(1);
    }
    stopping.abort();
    console.log(`\n${signal}: stopping… (no new work; waiting up to ${STOP_DRAIN_MS / 1000} s for ${inFlight.size} run(s) in progress)`);
    for (const c of crons) c.stop();
    const closed = new Promise<void>((r) => server.close(() => r()));
    server.closeIdleConnections();
    // runs in progress finish their SMTP transactions, record them and release their lease
    let timer: ReturnType<typeof setTimeout> | undefined;
    const drained = await Promise.race([
      Promise.allSettled([...inFlight]).then(() => true),
      new Promise<false>((r) => {
        timer = setTimeout(() => r(false), STOP_DRAIN_MS);
      }),
    ]);
    clearTimeout(timer);
    if (!drained) console.log(`stop: ${inFlight.size} run(s) still in progress after ${STOP_DRAIN_MS / 1000} s; exiting anyway`);
    server.closeAllConnections();
    await closed;
    await closeAllDbs();
    console.log('stopped');
    process.exit(drained ? 0 : 1);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

void main();
