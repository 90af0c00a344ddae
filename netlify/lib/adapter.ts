/**
 * Netlify Functions (API v2: `(req: Request, context) => Response`) around the shared contract
 * (docs/netlify.md). The routes of `lib/` are node:http handlers, as Vercel runs them; here each
 * Request becomes a node request/response pair (fetch-to-node) and the written answer a Response.
 * Nothing of the contract is repeated: secret, parameters, leases, ledger, budgets and dry runs
 * stay in lib/cron/route.ts and lib/cron/run.ts. The one exception is the scheduled function,
 * which Netlify alone can invoke and which takes no parameters.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Context } from '@netlify/functions';
import { toFetchResponse, toReqRes } from 'fetch-to-node';
import { ConfigError } from '../../lib/config.js';
import { consoleRoute } from '../../lib/console/route.js';
import { MISCONFIGURED_SECRET_BODY } from '../../lib/cron/auth.js';
import { httpStatusOf } from '../../lib/cron/outcome.js';
import { parseRunParams } from '../../lib/cron/params.js';
import { cronRoute, statusRoute } from '../../lib/cron/route.js';
import { runJob } from '../../lib/cron/run.js';
import { defaultRuntime, type Runtime } from '../../lib/cron/runtime.js';
import type { Job } from '../../lib/cron/types.js';
import type { Registry } from '../../lib/cron/jobs.js';

/** What the adapter reads of Netlify's context: tests pass just these. */
export type NetlifyContext = Pick<Context, 'deploy' | 'ip'>;
export type NetlifyFunction = (req: Request, context?: NetlifyContext) => Promise<Response>;
type NodeHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

/** Stands for a deploy context Netlify did not give: a non-production deploy (dry runs, secret required). */
export const UNKNOWN_CONTEXT = 'unknown';

/**
 * At run time a Netlify function has only URL, SITE_NAME and SITE_ID of Netlify's own variables;
 * the deploy context comes with each request (`context.deploy.context`). It is copied to CONTEXT,
 * the variable Netlify's build sets, before the configuration is first read (lib/config.ts).
 * One deploy, one context: the first request's stands for the instance.
 */
export function adoptDeployContext(context: NetlifyContext | undefined): void {
  process.env.CONTEXT ??= context?.deploy?.context || UNKNOWN_CONTEXT;
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' },
  });
}

/** A node:http handler of lib/ as a Netlify function. */
export function netlifyHandler(handler: NodeHandler): NetlifyFunction {
  return async (request, context) => {
    adoptDeployContext(context);
    const { req, res } = toReqRes(request);
    // a fetch Request carries no Host header: the console compares a form's Origin with it
    if (!req.headers.host) req.headers.host = new URL(request.url).host;
    if (!req.headers['x-forwarded-for'] && context?.ip) req.headers['x-forwarded-for'] = context.ip;
    const answered = toFetchResponse(res);
    // the routes answer their own failures; what they throw, Netlify logs and answers 500 (as Vercel does)
    await handler(req, res);
    return answered;
  };
}

/** A job's HTTP function, for external pings (cron-job.org): the route of api/, trigger `http`. */
export const netlifyJobFunction = (job: Job, getRuntime: () => Runtime = defaultRuntime) => netlifyHandler(cronRoute(job, getRuntime));

/**
 * A job's background function (`*-background`): the same contract, secret included, with the
 * long budget (trigger `netlify-background`). Netlify answers 202 at once and drops the answer:
 * the outcome is in the ledger and /cron/status.
 */
export const netlifyBackgroundFunction = (job: Job, getRuntime: () => Runtime = defaultRuntime) =>
  netlifyHandler(cronRoute(job, getRuntime, () => 'netlify-background'));

export const netlifyStatusFunction = (registry: Registry, getRuntime: () => Runtime = defaultRuntime) =>
  netlifyHandler(statusRoute(registry, getRuntime));
export const netlifyConsoleFunction = (registry: Registry, getRuntime: () => Runtime = defaultRuntime) =>
  netlifyHandler(consoleRoute(registry, getRuntime));

/** Netlify's scheduler posts `{"next_run": "<ISO instant>"}`: the mark of a scheduled invocation. */
async function nextRunOf(request: Request): Promise<string | null> {
  try {
    const body = (await request.json()) as { next_run?: unknown };
    return typeof body?.next_run === 'string' && !Number.isNaN(Date.parse(body.next_run)) ? body.next_run : null;
  } catch {
    return null;
  }
}

/**
 * A job's scheduled function (trigger `netlify-schedule`, budget within Netlify's 30 s). Only
 * Netlify's scheduler can invoke a deployed one (no URL), so no secret is asked; a deployment
 * without CRON_SECRET still refuses, as every other function of it does. No parameters: a full,
 * real run (a dry run on a preview, where Netlify does not schedule anyway).
 */
export function netlifyScheduledFunction(job: Job, getRuntime: () => Runtime = defaultRuntime): NetlifyFunction {
  return async (request, context) => {
    adoptDeployContext(context);
    if (request.method !== 'POST')
      return json(405, { success: false, error: 'method_not_allowed', detail: 'Netlify invokes a scheduled function with POST' });
    let rt: Runtime;
    try {
      rt = getRuntime();
    } catch (err) {
      return json(500, {
        success: false,
        error: 'misconfigured',
        detail: err instanceof ConfigError ? err.message : 'configuration could not be loaded',
      });
    }
    if (!rt.config.CRON_SECRET && rt.config.isProductionLike) {
      rt.logger.error('CRON_SECRET is not set on a deployment: refusing to run');
      return json(500, MISCONFIGURED_SECRET_BODY);
    }
    const nextRun = await nextRunOf(request);
    if (!nextRun) {
      return json(400, {
        success: false,
        error: 'bad_request',
        job: job.id,
        issues: [{ path: 'next_run', message: 'a scheduled invocation posts {"next_run": "<ISO-8601 instant>"}' }],
      });
    }
    rt.logger.info({ job: job.id, nextRun }, 'netlify scheduled invocation');
    const outcome = await runJob(job, 'netlify-schedule', parseRunParams({}, rt.config), rt);
    return json(httpStatusOf(outcome), { ...outcome.body, nextRun });
  };
}
