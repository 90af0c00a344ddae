import crypto from 'node:crypto';
import { DateTime } from 'luxon';
import type { Job } from '../cron/types.js';
import type { JobHealth } from '../cron/status.js';
import { ACTION_LABEL, HEALTH_LABEL, MAILBOX_STATUS_LABEL, OUTCOME_LABEL, RESOLUTION_LABEL, mailboxReason } from './messages.js';
import { TIMELINE_DAYS, type MailboxProblem, type OperatorAction, type RunError, type TimelineRun, type UnknownSend } from './sql.js';

/** Operators read Paris time, whatever the server's zone. */
export const CONSOLE_ZONE = 'Europe/Paris';

/** Every text from outside (mailbox names, error texts, subjects) goes through this. */
export function esc(v: unknown): string {
  return String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export function parisTime(d: Date | null | undefined): string {
  if (!d) return '—';
  return DateTime.fromJSDate(d, { zone: CONSOLE_ZONE }).setLocale('fr').toFormat('dd/MM/yyyy HH:mm');
}

/** "il y a 3 h" / "dans 12 min". */
export function relative(d: Date | null | undefined, now: Date): string {
  if (!d) return '';
  const mins = Math.round((d.getTime() - now.getTime()) / 60_000);
  const abs = Math.abs(mins);
  const text =
    abs < 1 ? 'moins d’une minute' : abs < 120 ? `${abs} min` : abs < 48 * 60 ? `${Math.round(abs / 60)} h` : `${Math.round(abs / 1440)} j`;
  return mins >= 0 ? `dans ${text}` : `il y a ${text}`;
}

const CSS = `
:root{--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--mute:#656d76;--bg:#f6f8fa;--line:#d0d7de}
*{box-sizing:border-box}body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328;background:var(--bg)}
header{background:#24292f;color:#fff;padding:.7rem 1rem;display:flex;flex-wrap:wrap;gap:.5rem;align-items:center;justify-content:space-between}
header h1{font-size:1.1rem;margin:0}header form{margin:0}main{max-width:64rem;margin:0 auto;padding:1rem}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:1rem;margin-bottom:1rem}
h2{font-size:1.05rem;margin:0 0 .6rem}h3{font-size:1rem;margin:0}
.jobs{display:grid;grid-template-columns:repeat(auto-fit,minmax(18rem,1fr));gap:1rem}
.job{border:1px solid var(--line);border-left:6px solid var(--mute);border-radius:6px;padding:.8rem}
.job.healthy{border-left-color:var(--ok)}.job.unhealthy,.job.missed{border-left-color:var(--bad)}.job.degraded{border-left-color:var(--warn,#9a6700)}
.badge{display:inline-block;padding:.05rem .5rem;border-radius:1rem;font-size:.8rem;font-weight:600;background:#eaeef2}
.healthy .badge,.badge.healthy{background:#dafbe1;color:var(--ok)}.unhealthy .badge,.missed .badge,.badge.bad{background:#ffebe9;color:var(--bad)}.degraded .badge{background:#fff8c5;color:#7d4e00}
dl{display:grid;grid-template-columns:auto 1fr;gap:.1rem .6rem;margin:.5rem 0;font-size:.9rem}dt{color:var(--mute)}dd{margin:0}
svg{width:100%;height:48px;background:var(--bg);border-radius:4px}.r-succeeded{fill:var(--ok)}.r-partial{fill:var(--warn)}.r-failed{fill:var(--bad)}.r-skipped,.r-running{fill:var(--mute)}
.errors{font-size:.85rem;color:var(--bad);margin:.4rem 0 0;padding-left:1.1rem;overflow-wrap:anywhere}
table{width:100%;border-collapse:collapse;font-size:.9rem}th,td{text-align:left;padding:.4rem;border-bottom:1px solid var(--line);vertical-align:top;overflow-wrap:anywhere}
.mute{color:var(--mute)}.notice{padding:.6rem .8rem;border-radius:6px;background:#ddf4ff;margin-bottom:1rem}.notice.bad{background:#ffebe9}
form.act{display:flex;flex-wrap:wrap;gap:.4rem;align-items:center;margin:.3rem 0}
button{font:inherit;padding:.3rem .7rem;border-radius:6px;border:1px solid var(--line);background:#f6f8fa;cursor:pointer}
button.primary{background:#1f883d;color:#fff;border-color:#1f883d}label{font-size:.85rem}
input[type=text],input[type=password]{font:inherit;padding:.4rem;width:100%;max-width:22rem;border:1px solid var(--line);border-radius:6px}
.signin{max-width:26rem;margin:3rem auto}.signin p{margin:.6rem 0}pre{white-space:pre-wrap;font-size:.8rem;background:var(--bg);padding:.6rem;border-radius:6px;overflow-wrap:anywhere}
@media (max-width:40rem){table.wide thead{display:none}table.wide tr{display:block;border-bottom:1px solid var(--line);padding:.4rem 0}table.wide td{display:block;border:0;padding:.15rem .2rem}}
`.trim();

/** The one inline block the CSP allows, by its hash: no script at all. */
const CSS_HASH = crypto.createHash('sha256').update(CSS).digest('base64');
export const CONTENT_SECURITY_POLICY = `default-src 'none'; style-src 'sha256-${CSS_HASH}'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`;

function page(title: string, body: string): string {
  return (
    `<!doctype html><html lang="fr"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">` +
    `<title>${esc(title)}</title><style>${CSS}</style></head><body>${body}</body></html>`
  );
}

export type Form = { path: string; csrf: string };

/** A POST form with the CSRF token and, for actions, a required confirmation box. */
function actionForm(f: Form, fields: Record<string, string>, button: string, confirm: string | null, primary = false): string {
  const hidden = Object.entries({ csrf: f.csrf, ...fields })
    .map(([k, v]) => `<input type="hidden" name="${esc(k)}" value="${esc(v)}">`)
    .join('');
  const box = confirm ? `<label><input type="checkbox" name="confirm" value="yes" required> ${esc(confirm)}</label>` : '';
  return `<form class="act" method="post" action="${esc(f.path)}">${hidden}${box}<button type="submit"${primary ? ' class="primary"' : ''}>${esc(button)}</button></form>`;
}

export function renderSignIn(path: string, opts: { error?: string; notice?: string } = {}): string {
  return page(
    'Lokario — console des tâches',
    `<main class="signin"><section><h1>Console des tâches planifiées</h1>` +
      (opts.error ? `<p class="notice bad" role="alert">${esc(opts.error)}</p>` : '') +
      (opts.notice ? `<p class="notice">${esc(opts.notice)}</p>` : '') +
      `<form method="post" action="${esc(path)}"><input type="hidden" name="op" value="signin">` +
      `<p><label for="actor">Votre nom (inscrit dans le journal des actions)</label><br><input type="text" id="actor" name="actor" autocomplete="username" required maxlength="60"></p>` +
      `<p><label for="password">Mot de passe (CONSOLE_PASSWORD, sinon CRON_SECRET)</label><br><input type="password" id="password" name="password" autocomplete="current-password" required></p>` +
      `<p><button type="submit" class="primary">Se connecter</button></p></form></section></main>`,
  );
}

const TIMELINE_W = 700;
const TIMELINE_H = 48;

/** One mark per run over the last 7 days: colour = outcome, height = duration (log scale). */
export function timelineSvg(runs: TimelineRun[], now: Date, maxDurationSec: number): string {
  const from = now.getTime() - TIMELINE_DAYS * 86_400_000;
  const span = now.getTime() - from;
  const maxLog = Math.log10(1 + maxDurationSec * 1000);
  const marks = runs
    .filter((r) => !r.dryRun)
    .map((r) => {
      const x = ((r.startedAt.getTime() - from) / span) * TIMELINE_W;
      const h = Math.max(4, (Math.log10(1 + Math.max(0, r.durationMs ?? 0)) / maxLog) * (TIMELINE_H - 4));
      return `<rect class="r-${esc(r.outcome)}" x="${x.toFixed(1)}" y="${(TIMELINE_H - h).toFixed(1)}" width="2" height="${h.toFixed(1)}"><title>${esc(parisTime(r.startedAt))} — ${esc(OUTCOME_LABEL[r.outcome] ?? r.outcome)}${r.durationMs !== null ? `, ${r.durationMs} ms` : ''}</title></rect>`;
    });
  const days = Array.from({ length: TIMELINE_DAYS - 1 }, (_, i) => {
    const x = ((i + 1) / TIMELINE_DAYS) * TIMELINE_W;
    return `<line x1="${x.toFixed(1)}" x2="${x.toFixed(1)}" y1="0" y2="${TIMELINE_H}" stroke="#d0d7de" stroke-width="1"/>`;
  });
  return `<svg viewBox="0 0 ${TIMELINE_W} ${TIMELINE_H}" preserveAspectRatio="none" role="img" aria-label="Exécutions des ${TIMELINE_DAYS} derniers jours : ${marks.length}">${days.join('')}${marks.join('')}</svg>`;
}

export type DashboardData = {
  now: Date;
  actor: string;
  healthy: boolean;
  /** Each registered job's health, with what the console shows of its declaration. */
  jobs: (JobHealth & Pick<Job, 'label' | 'maxDurationSec'> & { nextRunAt: Date | null })[];
  timeline: TimelineRun[];
  errors: RunError[];
  mailboxes: MailboxProblem[];
  unknownSends: UnknownSend[];
  actions: OperatorAction[];
  notice?: { text: string; bad?: boolean };
  /** Local development without a password: say so on every page. */
  unprotected?: boolean;
};

function jobCard(j: DashboardData['jobs'][number], d: DashboardData, f: Form): string {
  const id = j.job;
  const runs = d.timeline.filter((r) => r.job === id);
  const errors = d.errors.filter((e) => e.job === id);
  const last = j.lastRun;
  const reason =
    j.health === 'missed'
      ? `Aucune exécution planifiée reçue depuis ${parisTime(new Date(j.missed.windowStart))} : le déclencheur (Vercel Cron, cron-job.org) ne se déclenche plus ?`
      : j.health === 'unhealthy'
        ? j.reason === 'the last three runs failed'
          ? 'Les trois dernières exécutions ont échoué.'
          : 'Aucun succès depuis plus de trois intervalles.'
        : j.health === 'degraded'
          ? 'Des envois sont à l’état inconnu ou bloqués par une exécution interrompue : vérifiez-les dans « Envois à l’état inconnu ».'
          : '';
  return (
    `<article class="job ${esc(j.health)}" data-job="${esc(id)}"><h3>${esc(j.label)} <span class="badge">${esc(HEALTH_LABEL[j.health] ?? j.health)}</span></h3>` +
    `<div class="mute">${esc(id)} · <code>${esc(j.schedule)}</code> (UTC)</div>` +
    (reason ? `<p class="notice bad">${esc(reason)}</p>` : '') +
    `<dl><dt>Dernière exécution</dt><dd>${last ? `${esc(parisTime(new Date(last.startedAt)))} — ${esc(OUTCOME_LABEL[last.outcome] ?? last.outcome)}${last.durationMs !== null ? ` en ${esc(last.durationMs)} ms` : ''}` : 'aucune'}</dd>` +
    `<dt>Dernier succès</dt><dd>${j.lastSuccessAt ? `${esc(parisTime(new Date(j.lastSuccessAt)))} <span class="mute">(${esc(relative(new Date(j.lastSuccessAt), d.now))})</span>` : 'jamais'}</dd>` +
    `<dt>Prochaine prévue</dt><dd>${esc(parisTime(j.nextRunAt))} <span class="mute">(${esc(relative(j.nextRunAt, d.now))})</span></dd></dl>` +
    timelineSvg(runs, d.now, j.maxDurationSec) +
    (errors.length
      ? `<ul class="errors">${errors.map((e) => `<li>${esc(parisTime(e.startedAt))} : ${esc(e.error)}</li>`).join('')}</ul>`
      : '') +
    `<div>${actionForm(f, { op: 'run', job: id, dryRun: '1' }, 'Simuler (dry run)', null)}` +
    `${actionForm(f, { op: 'run', job: id }, 'Exécuter maintenant', 'Je confirme l’exécution réelle')}</div></article>`
  );
}

export function renderDashboard(d: DashboardData, f: Form): string {
  const header = `<header><h1>Lokario — tâches planifiées</h1><div>Connecté : ${esc(d.actor)} ${actionForm(f, { op: 'signout' }, 'Se déconnecter', null)}</div></header>`;
  const summary = d.healthy
    ? `<p class="notice">Tout va bien : ${d.jobs.length} tâches en bonne santé. Heures de Paris ; actualisé le ${esc(parisTime(d.now))}.</p>`
    : `<p class="notice bad">Attention : au moins une tâche demande une intervention. Heures de Paris ; actualisé le ${esc(parisTime(d.now))}.</p>`;
  const mailboxes =
    d.mailboxes.length === 0
      ? '<p class="mute">Aucune boîte en erreur, suspendue ou en attente.</p>'
      : `<table class="wide"><thead><tr><th>Boîte</th><th>État</th><th>Raison</th><th>Dernier succès</th><th></th></tr></thead><tbody>${d.mailboxes
          .map((m) => {
            const backoff = m.nextSyncAt && m.nextSyncAt > d.now ? `${parisTime(m.nextSyncAt)} (${relative(m.nextSyncAt, d.now)})` : null;
            return (
              `<tr data-integration="${m.id}"><td><strong>${esc(m.name)}</strong><br><span class="mute">${esc(m.email ?? '')} · ${esc(m.companyName ?? `entreprise ${m.companyId}`)} · n° ${m.id}</span></td>` +
              `<td><span class="badge bad">${esc(MAILBOX_STATUS_LABEL[m.status ?? ''] ?? 'En attente')}</span></td>` +
              `<td>${esc(mailboxReason(m.status, m.failures, backoff))}${m.error ? `<br><span class="mute">${esc(m.error)}</span>` : ''}</td>` +
              `<td>${m.lastSyncAt ? `${esc(parisTime(m.lastSyncAt))}<br><span class="mute">${esc(relative(m.lastSyncAt, d.now))}</span>` : 'jamais'}</td>` +
              `<td>${actionForm(f, { op: 'resume', integration: String(m.id) }, 'Reprendre', 'Je confirme', true)}</td></tr>`
            );
          })
          .join('')}</tbody></table>`;
  const sends =
    d.unknownSends.length === 0
      ? '<p class="mute">Aucun envoi à l’état inconnu.</p>'
      : `<p class="mute">L’invocation s’est arrêtée entre la réponse du serveur SMTP et son enregistrement : vérifiez le dossier « Envoyés », puis décidez. Rien n’est renvoyé automatiquement.</p>` +
        `<table class="wide"><thead><tr><th>Envoi</th><th>Destinataire</th><th>Objet</th><th>Heure</th><th></th></tr></thead><tbody>${d.unknownSends
          .map(
            (s) =>
              `<tr data-send="${esc(s.ref)}"><td><code>${esc(s.ref)}</code><br><span class="mute">${esc(s.companyName ?? '')}</span></td><td>${esc(s.recipient ?? '—')}</td><td class="subject">${esc(s.subject)}</td><td>${esc(parisTime(s.at))}</td>` +
              `<td>${actionForm(f, { op: 'resolve', send: s.ref, resolution: 'sent' }, 'Envoyé', 'Je l’ai trouvé dans « Envoyés »')}` +
              `${actionForm(f, { op: 'resolve', send: s.ref, resolution: 'resend' }, 'Non envoyé — renvoyer au prochain passage', 'Je confirme')}</td></tr>`,
          )
          .join('')}</tbody></table>`;
  const actions =
    d.actions.length === 0
      ? '<p class="mute">Aucune action pour l’instant.</p>'
      : `<table class="wide"><thead><tr><th>Quand</th><th>Qui</th><th>Quoi</th><th>Cible</th></tr></thead><tbody>${d.actions
          .map(
            (a) =>
              `<tr><td>${esc(parisTime(a.at))}</td><td>${esc(a.actor)}</td><td>${esc(ACTION_LABEL[a.action] ?? a.action)}${describeDetails(a)}</td><td><code>${esc(a.target)}</code></td></tr>`,
          )
          .join('')}</tbody></table>`;
  return page(
    'Lokario — tâches planifiées',
    header +
      '<main>' +
      (d.unprotected
        ? '<p class="notice bad">Ni CONSOLE_PASSWORD ni CRON_SECRET : console sans mot de passe (développement local uniquement).</p>'
        : '') +
      (d.notice ? `<p class="notice${d.notice.bad ? ' bad' : ''}" role="status">${esc(d.notice.text)}</p>` : '') +
      summary +
      `<section><h2>Tâches</h2><div class="jobs">${d.jobs.map((j) => jobCard(j, d, f)).join('')}</div></section>` +
      `<section id="inbox"><h2>Boîtes mail à surveiller (${d.mailboxes.length})</h2>${mailboxes}</section>` +
      `<section id="unknown"><h2>Envois à l’état inconnu (${d.unknownSends.length})</h2>${sends}</section>` +
      `<section id="actions"><h2>Journal des actions</h2>${actions}</section></main>`,
  );
}

function describeDetails(a: OperatorAction): string {
  const r = a.details.resolution;
  if (typeof r === 'string') return ` : ${esc(RESOLUTION_LABEL[r] ?? r)}`;
  if (typeof a.details.outcome === 'string') return ` : ${esc(a.details.outcome)}`;
  return '';
}

/** The answer of "run now" / "dry run": what happened, and the plan of a dry run. */
export function renderRunResult(job: Pick<Job, 'label'>, dryRun: boolean, status: number, body: Record<string, unknown>, f: Form): string {
  const ok = body.success === true;
  const head = `${dryRun ? 'Simulation' : 'Exécution'} de « ${job.label} » : ${ok ? (body.skipped ? 'ignorée (une autre exécution est en cours)' : 'terminée') : `échec (${String(body.error ?? status)})`}`;
  const plan = dryRun && Array.isArray(body.plan) ? body.plan : null;
  return page(
    'Lokario — résultat',
    `<header><h1>Lokario — tâches planifiées</h1></header><main><section>` +
      `<p class="notice${ok ? '' : ' bad'}" role="status">${esc(head)}</p>` +
      (plan
        ? `<h2>Plan (${plan.length} élément(s) au plus affichés) — rien n’a été fait</h2><pre class="plan">${esc(JSON.stringify(plan, null, 2))}</pre>`
        : '') +
      `<h2>Réponse</h2><pre>${esc(JSON.stringify({ ...body, plan: undefined }, null, 2))}</pre>` +
      `<p><a href="${esc(f.path)}">Retour au tableau de bord</a></p></section></main>`,
  );
}

export function renderMessage(title: string, text: string, back: string | null): string {
  return page(
    `Lokario — ${title}`,
    `<main class="signin"><section><h1>${esc(title)}</h1><p>${esc(text)}</p>${back ? `<p><a href="${esc(back)}">Retour</a></p>` : ''}</section></main>`,
  );
}
