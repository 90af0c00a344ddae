import { rootDbError } from '../../db/client.js';
import { redactText } from '../log.js';

/**
 * What an error may say outside the server (HTTP responses, the cron_runs ledger, item errors):
 * a short code and one line, without SQL text, query parameters, hosts, addresses, ports or
 * connection URLs. drizzle wraps every driver error as "Failed query: <sql> params: …" with the
 * driver's error as `cause`: the cause is what is reported. The full error goes to the
 * server-side log only, redacted (fullErrorForLog). See docs/security.md.
 */

const NETWORK_CODE = /^E[A-Z_]{3,}$/;
const SQLSTATE = /^[0-9A-Z]{5}$/;

const PATTERNS: [RegExp, string][] = [
  // drizzle's wrapper, in case it reaches us without a cause: never the statement text
  [/Failed query:[\s\S]*/i, 'a database statement failed'],
  [/\b(?:postgres(?:ql)?|smtps?|imaps?|https?|wss?):\/\/[^\s"'<>]+/gi, '[url]'],
  // bracketed IPv6 and bare IPv6 with '::', with an optional port
  [/\[[0-9a-f:.]+\](?::\d+)?/gi, '[address]'],
  [/(?<![\w:])[0-9a-f:]*::[0-9a-f:]*[0-9a-f](?![\w:])/gi, '[address]'],
  // IPv4, with an optional port
  [/\b\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?\b/g, '[address]'],
  // host:port, and the host a resolver or a socket error names
  [/\b(?:localhost|[a-z0-9-]+(?:\.[a-z0-9-]+)+):\d{1,5}\b/gi, '[address]'],
  [/\b(ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH)\s+\S+/g, '$1 [address]'],
  [/\bport\s+\d{1,5}\b/gi, 'port [port]'],
];

/** One line for the outside world: hosts, ports, URLs and SQL removed, secrets and addresses redacted. */
export function publicErrorText(text: string, secrets: readonly string[] = [], max = 200): string {
  let out = redactText(text, secrets);
  for (const [re, by] of PATTERNS) out = out.replace(re, by);
  return out.split('\n')[0].trim().slice(0, max);
}

/** The code and message of a failure, from the innermost error that has a code (the driver's). */
export function publicError(err: unknown, secrets: readonly string[] = []): { code: string; message: string } {
  const top = err as { code?: unknown; message?: unknown } | undefined;
  const root = (rootDbError(err) ?? err) as { code?: unknown; message?: unknown } | undefined;
  const topCode = typeof top?.code === 'string' ? top.code : undefined;
  const rootCode = typeof root?.code === 'string' ? root.code : undefined;
  let code: string;
  let source = root;
  if (topCode && /^[a-z_]+$/.test(topCode)) {
    code = topCode;
    source = top;
  } // one of ours: its message is ours
  else if (rootCode && SQLSTATE.test(rootCode)) code = 'database_error';
  else if (rootCode && NETWORK_CODE.test(rootCode)) code = 'connection_error';
  else code = 'job_failed';
  const message = publicErrorText(String(source?.message ?? err ?? 'unknown error'), secrets) || code;
  return { code, message };
}

/** The whole error for the server-side log: every message of the cause chain, codes, redacted by the logger. */
export function fullErrorForLog(err: unknown): Record<string, unknown> {
  const chain: { name?: string; code?: unknown; message: string }[] = [];
  for (
    let e = err as { name?: string; code?: unknown; message?: unknown; cause?: unknown } | undefined, i = 0;
    e && i < 6;
    e = e.cause as typeof e, i++
  ) {
    chain.push({ name: e.name, code: e.code, message: String(e.message ?? e) });
    if (typeof e !== 'object') break;
  }
  return { chain };
}

/** A failure as a job reports it: where it belongs, a short code, one public line. */
export type JobError = { kind: 'item' | 'run'; code: string; message: string };

/**
 * The one reading of a failure, for a job's item errors and for the run itself. The message is
 * always publicError's (the driver's cause; no SQL, host, port or secret).
 *
 * With `itemCode`, the failure of one item (an account, a part of a run) that the run reports
 * and gets past: `kind: 'item'`, and the code says what failed — `database_error` when the
 * database refused (a SQLSTATE), an error of ours by its own code (`smtp_temporary`,
 * `invalid_recipient`…), otherwise the item's own code (a bug, a lost connection).
 * Without it, the run failed: `kind: 'run'` and publicError's code (`database_error`,
 * `connection_error`, `not_implemented`, `job_failed`…).
 */
export function classifyJobError(err: unknown, opts: { itemCode?: string; secrets?: readonly string[] } = {}): JobError {
  const { code, message } = publicError(err, opts.secrets);
  if (opts.itemCode === undefined) return { kind: 'run', code, message };
  const saysWhat = code !== 'connection_error' && code !== 'job_failed';
  return { kind: 'item', code: saysWhat ? code : opts.itemCode, message };
}

/** The item error text of an email handed to SMTP that got no answer (`unknown`, docs/sending.md). */
export const noSmtpAnswerText = (detail: string) => `no SMTP answer after the message was sent (never re-sent automatically): ${detail}`;
