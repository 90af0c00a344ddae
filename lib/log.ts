import { pino, type Logger as PinoLogger, type DestinationStream } from 'pino';

export type Logger = PinoLogger;

const EMAIL = /([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})/g;
const SECRET_PARAM = /([?&](?:secret|token|password|pass)=)[^&\s"']*/gi;
// OAuth: `refresh_token=…` / `"access_token":"…"` in forms and JSON, and JWTs (Microsoft's access tokens)
const OAUTH_FIELD = /((?:access|refresh|id)_token["']?\s*[=:]\s*["']?)[^&\s"',}]+/gi;
const JWT = /\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*/g;
const BEARER = /(bearer\s+)[^\s"']+/gi;
const URL_PASSWORD = /(\w+:\/\/[^:/\s"']+:)[^@\s"']+@/g;

/** Masks what must never reach a log line: secrets in URLs and headers, passwords, email addresses. */
export function redactText(text: string, secrets: readonly string[] = []): string {
  let out = text;
  for (const s of secrets) if (s) out = out.split(s).join('[REDACTED]');
  return out
    .replace(SECRET_PARAM, '$1[REDACTED]')
    .replace(OAUTH_FIELD, '$1[REDACTED]')
    .replace(JWT, '[REDACTED]')
    .replace(BEARER, '$1[REDACTED]')
    .replace(URL_PASSWORD, '$1[REDACTED]@')
    .replace(EMAIL, '$1***@$2');
}

function redactValue(value: unknown, secrets: readonly string[], depth = 0): unknown {
  if (typeof value === 'string') return redactText(value, secrets);
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (value instanceof Error) return { name: value.name, message: redactText(value.message, secrets) };
  if (Array.isArray(value)) return value.map((v) => redactValue(v, secrets, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = /password|secret|authorization|cookie|token/i.test(k) ? '[REDACTED]' : redactValue(v, secrets, depth + 1);
  }
  return out;
}

/**
 * JSON lines on stdout (pino): level, time, job, runId, msg, numbers. Every string that goes out
 * is redacted, so a careless `log.info({ url })` cannot leak the secret.
 */
export function createLogger(opts: { level?: string; secrets?: readonly string[]; destination?: DestinationStream } = {}): Logger {
  const secrets = (opts.secrets ?? []).filter((s) => s.length > 0);
  return pino(
    {
      level: opts.level ?? 'info',
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        log: (obj) => redactValue(obj, secrets) as Record<string, unknown>,
      },
      hooks: {
        logMethod(args, method) {
          method.apply(this, args.map((a) => (typeof a === 'string' ? redactText(a, secrets) : a)) as Parameters<typeof method>);
        },
      },
    },
    opts.destination ?? pino.destination({ sync: true }),
  );
}

/** Masks an address for logs and stats: `j***@example.com`. */
export const maskEmail = (address: string) => redactText(address);
