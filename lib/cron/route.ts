import type { IncomingMessage, ServerResponse } from 'node:http';
import { ConfigError, secretsOf } from '../config.js';
import { redactUrl } from '../log.js';
import { fullErrorForLog } from './errors.js';
import { AMBIGUOUS_CREDENTIALS_BODY, FORBIDDEN_BODY, MISCONFIGURED_SECRET_BODY, ambiguousCredentials, isAuthorized } from './auth.js';
import { BadRequestError, parseRunParams } from './params.js';
import { runJob } from './run.js';
import { httpStatusOf } from './outcome.js';
import { fanoutParentOf } from './fanout.js';
import { runShard } from './shard.js';
import { defaultRuntime, type Runtime } from './runtime.js';
import { readStatus } from './status.js';
import type { Registry } from './jobs.js';
import type { Job, Trigger } from './types.js';

/** Both the @vercel/node request (with `query`) and a bare node:http request are accepted. */
type Req = IncomingMessage & { query?: Record<string, string | string[] | undefined> };
type Res = ServerResponse;
export type Handler = (req: Req, res: Res) => Promise<void>;

const ALLOWED = 'GET, POST';
const UNPROTECTED_WARNING = 'UNPROTECTED: CRON_SECRET is not set, anyone can trigger this route (allowed in local development only)';

function send(res: Res, status: number, body: unknown, headers: Record<string, string> = {}) {
  const payload = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.end(payload);
}

function queryOf(req: Req): Record<string, string | string[] | undefined> {
  if (req.query && typeof req.query === 'object') return req.query;
  const url = new URL(req.url ?? '/', 'http://localhost');
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of url.searchParams) {
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}

export function triggerOf(req: Req): Trigger {
  const ua = String(req.headers['user-agent'] ?? '');
  return /^vercel-cron\//i.test(ua) ? 'vercel-cron' : 'http';
}

type Guarded = { rt: Runtime; query: Record<string, string | string[] | undefined>; unprotected: boolean };

/** Method → configuration → secret (docs/contract.md). Answers and returns null when the request stops here. */
function guard(req: Req, res: Res, getRuntime: () => Runtime): Guarded | null {
  if (req.method !== 'GET' && req.method !== 'POST') {
    send(res, 405, { success: false, error: 'method_not_allowed', detail: `Use ${ALLOWED}` }, { Allow: ALLOWED });
    return null;
  }
  let rt: Runtime;
  try {
    rt = getRuntime();
  } catch (err) {
    const detail = err instanceof ConfigError ? err.message : 'configuration could not be loaded';
    send(res, 500, { success: false, error: 'misconfigured', detail });
    return null;
  }
  const { config } = rt;
  const secrets = secretsOf(config);
  rt.logger.info({ method: req.method, url: redactUrl(req.url ?? '', secrets) }, 'request');
  let query: ReturnType<typeof queryOf>;
  try {
    query = queryOf(req);
  } catch {
    send(res, 400, { success: false, error: 'bad_request', issues: [{ path: '(url)', message: 'the URL cannot be parsed' }] });
    return null;
  }
  // two Authorization headers (or two ?secret=): which one counts would depend on the proxy; refused
  const ambiguous = ambiguousCredentials(req.rawHeaders ?? [], query.secret);
  if (ambiguous) {
    rt.logger.warn({ reason: ambiguous }, 'refused: ambiguous credentials');
    send(res, 400, { ...AMBIGUOUS_CREDENTIALS_BODY, detail: ambiguous });
    return null;
  }
  if (!config.CRON_SECRET) {
    if (config.isProductionLike) {
      rt.logger.error('CRON_SECRET is not set on a deployment: refusing to run');
      send(res, 500, MISCONFIGURED_SECRET_BODY);
      return null;
    }
    rt.logger.warn(UNPROTECTED_WARNING);
    return { rt, query, unprotected: true };
  }
  const q = query.secret;
  const authorization = req.headers.authorization;
  if (
    !isAuthorized(typeof authorization === 'string' ? authorization : undefined, typeof q === 'string' ? q : undefined, config.CRON_SECRET)
  ) {
    rt.logger.warn({ url: redactUrl(req.url ?? '', secrets) }, 'forbidden: missing or wrong secret');
    send(res, 403, FORBIDDEN_BODY);
    return null;
  }
  return { rt, query, unprotected: false };
}

/**
 * The handler of one job route: `export default cronRoute(job)`. `triggerFor` names who called
 * when the function itself says it (a Netlify background function, netlify/lib/adapter.ts).
 */
export function cronRoute(job: Job, getRuntime: () => Runtime = defaultRuntime, triggerFor: (req: Req) => Trigger = triggerOf): Handler {
  return async (req, res) => {
    const g = guard(req, res, getRuntime);
    if (!g) return;
    let params;
    try {
      params = parseRunParams(g.query, g.rt.config);
    } catch (err) {
      if (err instanceof BadRequestError) {
        send(res, 400, { success: false, error: 'bad_request', job: job.id, issues: err.issues });
        return;
      }
      throw err;
    }
    // a fan-out shard answers once accepted and works on (lib/cron/shard.ts)
    const parentRunId = fanoutParentOf(req.headers, params.scope);
    const outcome = parentRunId ? await runShard(job, params, g.rt, parentRunId) : await runJob(job, triggerFor(req), params, g.rt);
    const { body } = outcome;
    send(res, httpStatusOf(outcome), g.unprotected ? { ...body, warning: UNPROTECTED_WARNING } : body);
  };
}

/** `/cron/status`: read-only health of every registered job (docs/contract.md); 200 when healthy, 503 otherwise. */
export function statusRoute(registry: Registry, getRuntime: () => Runtime = defaultRuntime): Handler {
  return async (req, res) => {
    const g = guard(req, res, getRuntime);
    if (!g) return;
    let handle;
    try {
      handle = await g.rt.openDb();
      const status = await readStatus(handle.db, new Date(), registry);
      const body = { success: true, timestamp: new Date().toISOString(), ...status };
      send(res, status.healthy ? 200 : 503, g.unprotected ? { ...body, warning: UNPROTECTED_WARNING } : body);
    } catch (err) {
      g.rt.logger.error({ err: fullErrorForLog(err) }, 'status failed');
      send(res, 500, { success: false, error: 'database_unavailable', message: 'the database could not be read' });
    } finally {
      await handle?.close().catch(() => {});
    }
  };
}
