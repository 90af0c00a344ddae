import { z } from 'zod';
import { ADDRESS_PROBLEM_TEXT, checkMailbox, checkSingleAddress } from './text/address.js';

/** Every environment variable, parsed once with zod. `.env.example` documents each one. */
const int = (def: number, min = 0) => z.coerce.number().int().min(min).default(def);
const onOff = (def: 'on' | 'off') => z.enum(['on', 'off']).default(def);
// the same single-address rule as every recipient we build (lib/text/address.ts)
const singleAddress = z.string().superRefine((v, ctx) => {
  const c = checkSingleAddress(v);
  if (!c.ok) ctx.addIssue({ code: 'custom', message: `must be exactly one address: ${ADDRESS_PROBLEM_TEXT[c.reason]}` });
});
const mailbox = z
  .string()
  .min(3)
  .superRefine((v, ctx) => {
    const c = checkMailbox(v);
    if (!c.ok)
      ctx.addIssue({ code: 'custom', message: `must be one mailbox, "Name <address>" or an address: ${ADDRESS_PROBLEM_TEXT[c.reason]}` });
  });

const httpUrl = z.string().regex(/^https?:\/\//, 'must be an http:// or https:// URL');
/**
 * One push-alert URL per job, winning over HEALTHCHECK_URL: the variable each job names in its
 * lib/jobs/<job>/index.ts (`healthcheckVariable`), so a new job needs no line here.
 */
export const HEALTHCHECK_URL_OF_JOB = /^HEALTHCHECK_URL_[A-Z0-9]+(_[A-Z0-9]+)*$/;

const EnvSchema = z.object({
  NODE_ENV: z.string().optional(),
  VERCEL_ENV: z.enum(['production', 'preview', 'development']).optional(),
  // Netlify's deploy context (docs/netlify.md): production, deploy-preview, branch-deploy, a custom
  // branch context, or dev under `netlify dev`. Functions get it from their request (netlify/lib/adapter.ts).
  CONTEXT: z.string().min(1).optional(),
  CRON_SECRET: z.string().min(1).optional(),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
    .optional(),
  DATABASE_DRIVER: z.enum(['neon', 'pg', 'pglite']).optional(),
  PGLITE_DIR: z.string().min(1).default('.data/pglite'),
  DB_POOL_MAX: int(5, 1),
  SMTP_URL: z
    .string()
    .regex(/^smtps?:\/\//, 'must be an smtp:// or smtps:// URL')
    .optional(),
  OUTBOX_DIR: z.string().min(1).default('.data/outbox'),
  MAIL_FROM: mailbox.default('Lokario <noreply@lokario.fr>'),
  MAIL_REDIRECT_TO: singleAddress.optional(),
  // bounces of platform emails (docs/bounces.md): the envelope sender, VERP `local+<id>@domain`
  // when BOUNCE_VERP=on, and the mailbox inbox-sync reads them from
  BOUNCE_ADDRESS: singleAddress.optional(),
  BOUNCE_VERP: z.preprocess((v) => (v === '1' || v === 'true' ? 'on' : v === '0' || v === 'false' ? 'off' : v), onOff('off')),
  BOUNCE_IMAP_URL: z
    .string()
    .regex(/^imaps?:\/\/[^@/]+@[^/]+/, 'must be imap(s)://user:password@host[:port][/folder]')
    .optional(),
  PREVIEW_SIDE_EFFECTS: onOff('off'),
  FRONTEND_URL: z.url().default('http://localhost:3000'),
  ENCRYPTION_MASTER_KEY: z.string().min(1).optional(),
  CRON_BUDGET_MS: int(25_000, 1_000),
  // I/O-bound: ~20 ms of CPU per mailbox (TLS, IMAP parsing, 3 statements; bench/scale.ts) against
  // ~400 ms of wall time over a real link, so a 1-vCPU function runs out of CPU near 20 at once;
  // 16 keeps a fifth of the vCPU for parsing new mail and GC (docs/scale.md)
  SYNC_CONCURRENCY: int(16, 1),
  // fan-out (docs/scale.md): a run with more due work than one invocation can do starts shards of itself
  FANOUT: z.enum(['auto', 'off']).default('auto'),
  FANOUT_MAX: z.coerce.number().int().min(1).max(64).default(16),
  // a sweep is sized to finish within this: every mailbox stays within one interval + this of fresh
  FANOUT_TARGET_SEC: z.coerce.number().int().min(5).max(800).default(60),
  FANOUT_ACCEPT_TIMEOUT_MS: int(8_000, 100),
  // replaces the ledger's per-item estimate (ms of one invocation per mailbox / email)
  FANOUT_ITEM_COST_MS: z.coerce.number().positive().optional(),
  SELF_URL: z.url().optional(),
  VERCEL_URL: z.string().min(1).optional(),
  VERCEL_PROJECT_PRODUCTION_URL: z.string().min(1).optional(),
  VERCEL_AUTOMATION_BYPASS_SECRET: z.string().min(1).optional(),
  // concurrent IMAP connections to one mail host, all shards together (providers refuse logins beyond)
  IMAP_HOST_MAX_CONNECTIONS: int(10, 1),
  IMAP_CONNECT_TIMEOUT_MS: int(10_000, 100),
  IMAP_GREETING_TIMEOUT_MS: int(10_000, 100),
  IMAP_SOCKET_TIMEOUT_MS: int(30_000, 100),
  SMTP_CONNECT_TIMEOUT_MS: int(10_000, 100),
  SMTP_GREETING_TIMEOUT_MS: int(10_000, 100),
  SMTP_SOCKET_TIMEOUT_MS: int(30_000, 100),
  MAX_MESSAGE_BYTES: int(25 * 1024 * 1024, 1024),
  MAX_ATTACHMENT_BYTES: int(10 * 1024 * 1024, 1024),
  DELETION_BATCH: int(10, 1),
  PORT: int(3000, 0),
  SCHEDULER: onOff('on'),
  // local server only: every job every N seconds instead of its vercel.json schedule (soak tests, demos)
  SCHEDULER_EVERY_SECONDS: z.coerce.number().int().min(1).max(3600).optional(),
  // OAuth 2.0 mailboxes (docs/oauth-mailboxes.md): the app registrations whose consent the web app obtained
  OAUTH_MICROSOFT_CLIENT_ID: z.string().min(1).optional(),
  OAUTH_MICROSOFT_CLIENT_SECRET: z.string().min(1).optional(),
  OAUTH_MICROSOFT_TENANT: z
    .string()
    .regex(/^[A-Za-z0-9.-]+$/, 'a tenant id or domain, or common / organizations')
    .default('common'),
  OAUTH_MICROSOFT_TOKEN_URL: z.url().optional(),
  OAUTH_GOOGLE_CLIENT_ID: z.string().min(1).optional(),
  OAUTH_GOOGLE_CLIENT_SECRET: z.string().min(1).optional(),
  OAUTH_GOOGLE_TOKEN_URL: z.url().optional(),
  OAUTH_GENERIC_CLIENT_ID: z.string().min(1).optional(),
  OAUTH_GENERIC_CLIENT_SECRET: z.string().min(1).optional(),
  OAUTH_GENERIC_TOKEN_URL: z.url().optional(),
  OAUTH_TOKEN_TIMEOUT_MS: int(10_000, 100),
  // push alerts (lib/cron/healthcheck.ts): a URL template with {job}; one URL per job below
  HEALTHCHECK_URL: httpUrl.optional(),
  // the console (/cron): its sign-in password when set, else CRON_SECRET
  CONSOLE_PASSWORD: z.string().min(12, 'must be at least 12 characters').optional(),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
});

type Env = z.infer<typeof EnvSchema>;

export type Config = Env & {
  /** A Vercel or Netlify deployment (production or preview) or NODE_ENV=production: fail closed. */
  isProductionLike: boolean;
  isPreview: boolean;
  databaseDriver: 'neon' | 'pg' | 'pglite';
  /** The per-job push-alert URLs by variable (`HEALTHCHECK_URL_INBOX_SYNC` → URL), validated. */
  healthcheckUrls: Record<string, string>;
};

/**
 * The configured values that must never appear in a response, a log line or a ledger row: the
 * one list every redaction uses (logger, route, run errors, CLI). Unset ones are left out.
 */
export function secretsOf(config: Pick<Config, 'CRON_SECRET' | 'ENCRYPTION_MASTER_KEY'>): string[] {
  return [config.CRON_SECRET, config.ENCRYPTION_MASTER_KEY].filter((s): s is string => typeof s === 'string' && s.length > 0);
}

export class ConfigError extends Error {
  readonly code = 'misconfigured';
}

/** Empty strings count as unset (a blank line in a .env file or a cleared Vercel variable). */
function withoutBlanks(env: Record<string, string | undefined>) {
  return Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v.trim() !== ''));
}

export function parseConfig(env: Record<string, string | undefined> = process.env): Config {
  const given = withoutBlanks(env);
  const parsed = EnvSchema.safeParse(given);
  const perJob = z
    .record(z.string(), httpUrl)
    .safeParse(Object.fromEntries(Object.entries(given).filter(([k]) => HEALTHCHECK_URL_OF_JOB.test(k))));
  if (!parsed.success || !perJob.success) {
    const issues = [...(parsed.error?.issues ?? []), ...(perJob.error?.issues ?? [])];
    const detail = issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new ConfigError(`invalid environment variable(s): ${detail}`);
  }
  const e = parsed.data;
  const onVercel = e.VERCEL_ENV === 'production' || e.VERCEL_ENV === 'preview';
  const onNetlify = e.CONTEXT !== undefined && e.CONTEXT !== 'dev';
  const isProductionLike = onVercel || onNetlify || e.NODE_ENV === 'production';
  // every Netlify context but production is a preview, unknown ones included: they run dry
  const isPreview = e.VERCEL_ENV === 'preview' || (onNetlify && e.CONTEXT !== 'production');
  let databaseDriver = e.DATABASE_DRIVER;
  if (!databaseDriver) {
    if (!e.DATABASE_URL) databaseDriver = 'pglite';
    else databaseDriver = /\.neon\.tech(:\d+)?(\/|$)/.test(new URL(e.DATABASE_URL).host + '/') ? 'neon' : 'pg';
  }
  if (databaseDriver === 'pglite' && (onVercel || onNetlify)) {
    // a function's file system is read-only and per instance: an embedded database would be empty every time
    throw new ConfigError(
      `DATABASE_URL: required on a ${onVercel ? 'Vercel' : 'Netlify'} deployment (the embedded database is for local use)`,
    );
  }
  if (onNetlify && withoutBlanks(env).FANOUT === 'auto') {
    // a shard would run in a synchronous function, which Netlify stops long before a shard's budget
    throw new ConfigError('FANOUT: auto is not available on Netlify (docs/netlify.md); leave it unset');
  }
  if (e.BOUNCE_VERP === 'on' && !e.BOUNCE_ADDRESS) {
    throw new ConfigError('BOUNCE_VERP: needs BOUNCE_ADDRESS (the address VERP extends)');
  }
  if (databaseDriver !== 'pglite' && !e.DATABASE_URL) {
    throw new ConfigError(`DATABASE_URL: required when DATABASE_DRIVER=${databaseDriver}`);
  }
  return {
    ...e,
    ...(onNetlify ? { FANOUT: 'off' as const } : {}),
    isProductionLike,
    isPreview,
    databaseDriver,
    healthcheckUrls: perJob.data,
  };
}

let cached: Config | undefined;
/** The process's configuration, read once. Throws ConfigError naming the bad variable. */
export function getConfig(): Config {
  cached ??= parseConfig(process.env);
  return cached;
}
