import crypto from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ConfigError } from '../config.js';
import { redactText } from '../log.js';
import { findJob, type Registry } from '../cron/jobs.js';
import { runJob } from '../cron/run.js';
import { httpStatusOf } from '../cron/outcome.js';
import { defaultRuntime, type Runtime } from '../cron/runtime.js';
import { readStatus } from '../cron/status.js';
import { nextExpectedRun } from '../cron/schedule.js';
import { CONTENT_SECURITY_POLICY, renderDashboard, renderMessage, renderRunResult, renderSignIn, type Form } from './render.js';
import {
  checkPassword,
  clearedCookie,
  csrfToken,
  csrfValid,
  failureDelayMs,
  forgetFailures,
  readCookie,
  sessionCookie,
  signSession,
  verifySession,
  SESSION_COOKIE,
  type Session,
} from './session.js';
import {
  ActionError,
  readActions,
  readLastErrors,
  readMailboxProblems,
  readTimeline,
  readUnknownSends,
  recordAction,
  resolveUnknownSend,
  resumeIntegration,
} from './sql.js';
import { ACTION_LABEL } from './messages.js';

type Req = IncomingMessage & { body?: unknown };
type Res = ServerResponse;
export type ConsoleHandler = (req: Req, res: Res) => Promise<void>;

export const CONSOLE_PATH = '/cron';
export const CONSOLE_API_PATH = '/api/cron/dashboard';
/** A form post is a few hundred bytes; anything larger is not ours. */
export const MAX_FORM_BYTES = 16 * 1024;

// without any password (local development only) the CSRF tokens still need a key
const LOCAL_KEY = crypto.randomBytes(32).toString('hex');

export function isConsolePath(pathname: string): boolean {
  const p = pathname.replace(/\/+$/, '');
  return p === CONSOLE_PATH || p === CONSOLE_API_PATH;
}

function securityHeaders(res: Res) {
  res.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY);
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  // same-origin, not no-referrer: with no-referrer the browser sends `Origin: null` on our own form posts
  res.setHeader('Referrer-Policy', 'same-origin');
  res.setHeader('Cache-Control', 'no-store');
}

function html(res: Res, status: number, body: string, headers: Record<string, string | string[]> = {}) {
  securityHeaders(res);
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.end(body);
}

function redirect(res: Res, location: string, headers: Record<string, string | string[]> = {}) {
  securityHeaders(res);
  res.statusCode = 303;
  res.setHeader('Location', location);
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.end();
}

class FormError extends Error {}

/** The urlencoded form: from the stream, or from the body @vercel/node already parsed. */
async function readForm(req: Req): Promise<URLSearchParams> {
  const type = String(req.headers['content-type'] ?? '');
  if (!/^application\/x-www-form-urlencoded\b/i.test(type)) throw new FormError('formulaire attendu (application/x-www-form-urlencoded)');
  let pre: unknown;
  try {
    pre = req.body;
  } catch {
    pre = undefined;
  }
  if (pre && typeof pre === 'object' && !Buffer.isBuffer(pre)) {
    const out = new URLSearchParams();
    for (const [k, v] of Object.entries(pre as Record<string, unknown>)) out.set(k, Array.isArray(v) ? String(v[0]) : String(v));
    return out;
  }
  if (typeof pre === 'string' || Buffer.isBuffer(pre)) return new URLSearchParams(pre.toString());
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_FORM_BYTES) throw new FormError('formulaire trop volumineux');
    chunks.push(c as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/** A POST from another site: browsers send Origin on every form post. */
function crossOrigin(req: Req): boolean {
  const origin = req.headers.origin;
  if (!origin || origin === 'null') return origin === 'null';
  try {
    const forwarded = req.headers['x-forwarded-host'];
    const host = (typeof forwarded === 'string' && forwarded ? forwarded : req.headers.host) ?? '';
    return new URL(origin).host !== host;
  } catch {
    return true;
  }
}

function clientAddress(req: Req): string {
  const fwd = req.headers['x-forwarded-for'];
  return (typeof fwd === 'string' && fwd ? fwd.split(',')[0].trim() : req.socket?.remoteAddress) ?? 'unknown';
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `/cron` and `/api/cron/dashboard`: the operator's console of the registered jobs (README "Operating Lokario's jobs"). */
export function consoleRoute(
  registry: Registry,
  getRuntime: () => Runtime = defaultRuntime,
  clock: () => Date = () => new Date(),
): ConsoleHandler {
  return async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname.replace(/\/+$/, '').startsWith('/api/') ? CONSOLE_API_PATH : CONSOLE_PATH;
    if (req.method !== 'GET' && req.method !== 'POST') {
      html(res, 405, renderMessage('Méthode refusée', 'Utilisez GET ou POST.', null), { Allow: 'GET, POST' });
      return;
    }
    let rt: Runtime;
    try {
      rt = getRuntime();
    } catch (err) {
      html(
        res,
        500,
        renderMessage('Configuration invalide', err instanceof ConfigError ? err.message : 'la configuration n’a pas pu être lue', null),
      );
      return;
    }
    const { config } = rt;
    const password = config.CONSOLE_PASSWORD ?? config.CRON_SECRET;
    if (!password && config.isProductionLike) {
      html(res, 500, renderMessage('Console non configurée', 'Définissez CONSOLE_PASSWORD ou CRON_SECRET.', null));
      return;
    }
    const key = password ?? LOCAL_KEY;
    const now = clock();
    const host = req.headers.host;
    const session: Session | null = password
      ? verifySession(key, readCookie(req.headers.cookie, SESSION_COOKIE), now)
      : { actor: 'local', exp: Number.MAX_SAFE_INTEGER, nonce: 'local' };

    if (req.method === 'GET') {
      if (!session) {
        html(res, 200, renderSignIn(path));
        return;
      }
      await showDashboard(
        registry,
        rt,
        res,
        session,
        { path, csrf: csrfToken(key, session) },
        now,
        url.searchParams.get('done'),
        !password,
      );
      return;
    }

    let form: URLSearchParams;
    try {
      form = await readForm(req);
    } catch (err) {
      html(res, 400, renderMessage('Requête invalide', err instanceof FormError ? err.message : 'formulaire illisible', path));
      return;
    }
    if (crossOrigin(req)) {
      html(res, 403, renderMessage('Requête refusée', 'Origine étrangère à la console.', path));
      return;
    }
    const op = form.get('op') ?? '';
    if (op === 'signin') {
      if (!password) {
        redirect(res, path);
        return;
      }
      const client = clientAddress(req);
      if (!checkPassword(form.get('password') ?? '', password)) {
        await sleep(failureDelayMs(client, Date.now()));
        rt.logger.warn({ client }, 'console: failed sign-in');
        html(res, 401, renderSignIn(path, { error: 'Mot de passe incorrect.' }));
        return;
      }
      forgetFailures(client);
      const signed = signSession(key, form.get('actor') ?? '', now);
      rt.logger.info({ actor: signed.session.actor }, 'console: signed in');
      redirect(res, path, { 'Set-Cookie': sessionCookie(signed.value, host) });
      return;
    }
    if (!session || !csrfValid(key, session, form.get('csrf') ?? undefined)) {
      rt.logger.warn({ op, session: Boolean(session) }, 'console: refused a POST without a valid session and CSRF token');
      html(
        res,
        403,
        renderMessage(
          'Action refusée',
          session ? 'Jeton anti-CSRF absent ou invalide : rechargez la page et recommencez.' : 'Session expirée : reconnectez-vous.',
          path,
        ),
      );
      return;
    }
    if (op === 'signout') {
      redirect(res, path, { 'Set-Cookie': clearedCookie(host) });
      return;
    }
    const needsConfirm = op === 'resume' || op === 'resolve' || (op === 'run' && form.get('dryRun') !== '1');
    if (needsConfirm && form.get('confirm') !== 'yes') {
      html(res, 400, renderMessage('Confirmation requise', 'Cochez la case de confirmation avant de valider.', path));
      return;
    }
    const actor = `console:${session.actor}`;
    const formCtx: Form = { path, csrf: csrfToken(key, session) };
    let handle;
    try {
      if (op === 'run') {
        const id = form.get('job') ?? '';
        const job = findJob(registry, id);
        if (!job)
          throw new ActionError('bad_request', `tâche inconnue : « ${id} » (attendu : ${registry.jobs.map((j) => j.id).join(', ')})`);
        const dryRun = form.get('dryRun') === '1';
        const result = await runJob(job, 'console', { dryRun, scope: {} }, rt);
        handle = await rt.openDb();
        await recordAction(handle.db, {
          actor,
          action: dryRun ? 'dry_run_job' : 'run_job',
          target: `job:${job.id}`,
          details: {
            runId: result.body.runId ?? null,
            outcome:
              result.body.success === true
                ? result.body.skipped
                  ? 'ignorée'
                  : 'terminée'
                : `échec ${String(result.body.error ?? httpStatusOf(result))}`,
          },
        });
        html(res, 200, renderRunResult(job, dryRun, httpStatusOf(result), result.body, formCtx));
        return;
      }
      handle = await rt.openDb();
      let actionId: number;
      if (op === 'resume') {
        const id = Number(form.get('integration'));
        if (!Number.isInteger(id) || id <= 0) throw new ActionError('bad_request', 'numéro de boîte mail invalide');
        actionId = (await resumeIntegration(handle.db, id, actor)).actionId;
      } else if (op === 'resolve') {
        const resolution = form.get('resolution');
        if (resolution !== 'sent' && resolution !== 'resend') throw new ActionError('bad_request', 'résolution attendue : sent ou resend');
        actionId = (await resolveUnknownSend(handle.db, form.get('send') ?? '', resolution, actor)).actionId;
      } else {
        throw new ActionError('bad_request', `action inconnue : « ${op} »`);
      }
      redirect(res, `${path}?done=${actionId}`);
    } catch (err) {
      if (err instanceof ActionError) {
        html(res, err.code === 'not_found' ? 404 : 400, renderMessage('Action impossible', err.message, path));
        return;
      }
      rt.logger.error({ err: redactText(String((err as Error).message ?? err), [password ?? '']) }, 'console action failed');
      html(res, 500, renderMessage('Erreur', 'La base de données n’a pas pu être lue ou écrite ; rien n’a été changé.', path));
    } finally {
      await handle?.close().catch(() => {});
    }
  };
}

async function showDashboard(
  registry: Registry,
  rt: Runtime,
  res: Res,
  session: Session,
  form: Form,
  now: Date,
  done: string | null,
  unprotected: boolean,
) {
  let handle;
  try {
    handle = await rt.openDb();
    const db = handle.db;
    const status = await readStatus(db, now, registry);
    const [timeline, errors, mailboxes, unknownSends, actions] = [
      await readTimeline(db, now),
      await readLastErrors(db, now),
      await readMailboxProblems(db, now),
      await readUnknownSends(db),
      await readActions(db),
    ];
    const doneAction = done && /^\d{1,10}$/.test(done) ? actions.find((a) => a.id === Number(done)) : undefined;
    const problems = mailboxes.length > 0 || unknownSends.length > 0;
    const page = renderDashboard(
      {
        now,
        actor: session.actor,
        healthy: status.healthy && !problems,
        jobs: status.jobs.map((j) => {
          const { label, maxDurationSec } = findJob(registry, j.job)!;
          return { ...j, label, maxDurationSec, nextRunAt: nextExpectedRun(j.schedule, now) };
        }),
        timeline,
        errors,
        mailboxes,
        unknownSends,
        actions,
        unprotected,
        ...(doneAction
          ? {
              notice: {
                text: `Action enregistrée (n° ${doneAction.id}) : ${ACTION_LABEL[doneAction.action] ?? doneAction.action} — ${doneAction.target}`,
              },
            }
          : {}),
      },
      form,
    );
    html(res, 200, page);
  } catch (err) {
    const cause = (err as { cause?: { message?: string } }).cause?.message;
    rt.logger.error({ err: String((err as Error).message ?? err).slice(0, 300), cause }, 'console: dashboard failed');
    html(res, 500, renderMessage('Erreur', 'La base de données n’a pas pu être lue.', null));
  } finally {
    await handle?.close().catch(() => {});
  }
}
