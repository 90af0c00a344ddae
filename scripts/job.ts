/**
 * `npm run job -- <job id> [--dry-run] [--company <id>] [--shard k/n] [--now <iso>]`: runs one job
 * once from the terminal and prints a readable summary. Exit code 0 on success, 1 otherwise.
 */
import { parseArgs } from 'node:util';
import { getConfig, secretsOf } from '../lib/config.js';
import { closeAllDbs } from '../db/client.js';
import { runtimeFromConfig } from '../lib/cron/runtime.js';
import { runJob } from '../lib/cron/run.js';
import { exitCodeOf } from '../lib/cron/outcome.js';
import { parseRunParams, BadRequestError } from '../lib/cron/params.js';
import { findJob } from '../lib/cron/jobs.js';
import { JOB_REGISTRY } from '../lib/jobs/registry.js';
import { createLogger } from '../lib/log.js';
import { progressPrinter, summarise } from '../lib/local/summary.js';
import { loadDotEnv } from '../lib/local/dotenv.js';

const usage = `usage: npm run job -- <${JOB_REGISTRY.jobs.map((j) => j.id).join('|')}> [--dry-run] [--company <id>] [--shard k/n] [--now <ISO-8601>]`;

async function main() {
  loadDotEnv();
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      'dry-run': { type: 'boolean', default: false },
      company: { type: 'string' },
      shard: { type: 'string' },
      now: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  const id = positionals[0];
  const job = id ? findJob(JOB_REGISTRY, id) : undefined;
  if (!job) {
    console.error(usage);
    return 2;
  }
  const config = getConfig();
  const [k, n] = values.shard?.split('/') ?? [];
  let params;
  try {
    params = parseRunParams(
      {
        ...(values['dry-run'] ? { dryRun: '1' } : {}),
        ...(values.company ? { companyId: values.company } : {}),
        ...(values.shard ? { shard: k, shards: n } : {}),
        ...(values.now ? { now: values.now } : {}),
      },
      config,
    );
  } catch (err) {
    if (err instanceof BadRequestError) {
      console.error(`${err.message}\n${usage}`);
      return 2;
    }
    throw err;
  }
  // logs go to stderr so that stdout keeps the summary (or the JSON with --json)
  const rt = runtimeFromConfig(config, {
    logger: createLogger({
      level: config.LOG_LEVEL === 'info' ? 'warn' : config.LOG_LEVEL,
      secrets: secretsOf(config),
      destination: process.stderr,
    }),
  });
  const progress = progressPrinter(job.id);
  const outcome = await runJob(job, 'cli', params, rt, { onProgress: (m) => progress.update(m) });
  progress.done();
  console.log(values.json ? JSON.stringify(outcome.body, null, 2) : summarise(outcome.body));
  await closeAllDbs();
  return exitCodeOf(outcome);
}

process.exitCode = await main();
