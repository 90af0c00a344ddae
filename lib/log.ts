import { pino, type Logger as PinoLogger, type DestinationStream } from 'pino';

export type Logger = PinoLogger;

const EMAIL = /([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})/g;
/** Query parameters whose value is a credential, whatever else they are called around it. */
const SENSITIVE_NAME = /secret|token|passw|^pass$|^pwd$|key|auth|sig/i;
const SECRET_PARAM = /([?&;](?:[^=&\s"']*(?:secret|token|passw|key|auth|sig)[^=&\s"']*|pass|pwd)\s*=)[^&\s"']*/gi;
// OAuth: `refresh_token=…` / `"access_token":"…"` in forms and JSON, and JWTs (Microsoft's access tokens)
const OAUTH_FIELD = /((?:access|refresh|id)_token["']?\s*[=:]\s*["']?)[^&\s"',}]+/gi;
const JWT = /\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*/g;
const BEARER = /(bearer\s+)[^\s"']+/gi;
const URL_PASSWORD = /(\w+:\/\/[^:/\s"']+:)[^@\s"']+@/g;
const PERCENT = /%[0-9A-Fa-f]{2}/;
/** Encodings undone before redacting: `%73ecret`, `%2573ecret` (encoded twice), `+` for a space. */
const MAX_DECODE_ROUNDS = 3;

/** Percent-decoding, repeated (double encoding), never throwing on a malformed sequence. */
export function decodeForRedaction(text: string): string {
  let out = text;
  for (let i = 0; i < MAX_DECODE_ROUNDS && PERCENT.test(out); i++) {
    const next = out.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
      try {
        return decodeURIComponent(run);
      } catch {
        return run.replace(/%([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
      }
    });
    if (next === out) break;
    out = next;
  }
  return out;
}

/**
 * Masks what must never reach a log line: secrets in URLs and headers, passwords, email
 * addresses. The text is URL-decoded first (repeatedly), so an encoded name or value
 * (`?s%65cret=…`) is caught like a plain one; the secrets themselves are removed before and after.
 */
export function redactText(text: string, secrets: readonly string[] = []): string {
  const strip = (t: string) => {
    let out = t;
    for (const s of secrets) if (s) out = out.split(s).join('[REDACTED]');
    return out;
  };
  let out = strip(text);
  if (PERCENT.test(out)) out = strip(decodeForRedaction(out));
  return out
    .replace(SECRET_PARAM, '$1[REDACTED]')
    .replace(OAUTH_FIELD, '$1[REDACTED]')
    .replace(JWT, '[REDACTED]')
    .replace(BEARER, '$1[REDACTED]')
    .replace(URL_PASSWORD, '$1[REDACTED]@')
    .replace(EMAIL, '$1***@$2');
}

/**
 * A request URL for a log line: path and query decoded the way the route reads them (URLSearchParams:
 * percent-encoding, `+`), every credential-like parameter's value replaced, then redactText.
 */
export function redactUrl(rawUrl: string, secrets: readonly string[] = []): string {
  let url: URL;
  try {
    url = new URL(rawUrl, 'http://request.invalid');
  } catch {
    return redactText(rawUrl, secrets);
  }
  const path = decodeForRedaction(url.pathname);
  const query = [...url.searchParams].map(([k, v]) => {
    const name = decodeForRedaction(k);
    return `${name}=${SENSITIVE_NAME.test(name.trim()) ? '[REDACTED]' : decodeForRedaction(v)}`;
  });
  return redactText(query.length ? `${path}?${query.join('&')}` : path, secrets);
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
