/**
 * `npm run ops -- <command>`: the console's views and actions from the terminal (README
 * "Operating Lokario's jobs"). Readable tables, Paris times; every action goes to operator_actions.
 *
 *   status                          health of every job, mailboxes and sends needing a human
 *   unknown                         sends in `unknown`, with their reference
 *   resolve <ref> sent|resend       settle one (ref: followup_step:<id>, appointment_reminder:<id> or deletion_email:<id>)
 *   resume <integration id>         resume a paused or failing mailbox
 *   runs <job> [--last N]           the job's latest runs (default 20)
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { sql } from 'drizzle-orm';
import { getConfig, ConfigError } from '../lib/config.js';
import { closeAllDbs, openDb, queryRows } from '../db/client.js';
import { findJob } from '../lib/cron/jobs.js';
import { JOB_REGISTRY } from '../lib/jobs/registry.js';
import { readStatus } from '../lib/cron/status.js';
import { nextExpectedRun } from '../lib/cron/schedule.js';
import {
  ActionError,
  SEND_REF_FORMS,
  readMailboxProblems,
  readUnknownSends,
  resolveUnknownSend,
  resumeIntegration,
} from '../lib/console/sql.js';
import { HEALTH_LABEL, MAILBOX_STATUS_LABEL, OUTCOME_LABEL, RESOLUTION_LABEL, mailboxReason } from '../lib/console/messages.js';
import { parisTime } from '../lib/console/render.js';
import { loadDotEnv } from '../lib/local/dotenv.js';

const usage = `usage: npm run ops -- status | unknown | resolve <${SEND_REF_FORMS}> sent|resend | resume <integration id> | runs <${JOB_REGISTRY.jobs.map((j) => j.id).join('|')}> [--last N]  [--as <name>]`;
const MAX_CELL = 70;

/** A plain text table: columns as wide as their widest cell (capped), a rule under the header. */
function table(header: string[], rows: (string | number | null)[][]): string {
  const cells = [header, ...rows.map((r) => r.map((c) => (c === null ? '—' : String(c)).replace(/\s+/g, ' ')))];
  const clipped = cells.map((r) => r.map((c) => (c.length > MAX_CELL ? `${c.slice(0, MAX_CELL - 1)}…` : c)));
  const widths = header.map((_, i) => Math.max(...clipped.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  return [line(clipped[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...clipped.slice(1).map(line)].join('\n');
}

async function main(): Promise<number> {
  loadDotEnv();
  let parsed;
  try {
    parsed = parseArgs({ allowPositionals: true, options: { last: { type: 'string' }, as: { type: 'string' } } });
  } catch (err) {
    console.error(`${(err as Error).message}\n${usage}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command, ...args] = positionals;
  let config;
  try {
    config = getConfig();
  } catch (err) {
    console.error(err instanceof ConfigError ? `Configuration error: ${err.message}` : err);
    return 1;
  }
  const actor = `cli:${(values.as ?? process.env.USER ?? os.userInfo().username).slice(0, 60)}`;
  const handle = await openDb({
    driver: config.databaseDriver,
    url: config.DATABASE_URL,
    pgliteDir: config.PGLITE_DIR,
    poolMax: 2,
    migrate: config.databaseDriver === 'pglite',
  });
  const db = handle.db;
  const now = new Date();
  try {
    switch (command) {
      case 'status': {
        const s = await readStatus(db, now, JOB_REGISTRY);
        console.log(
          table(
            ['Tâche', 'Santé', 'Dernière exécution', 'Dernier succès', 'Prochaine prévue'],
            s.jobs.map((j) => [
              j.job,
              HEALTH_LABEL[j.health] ?? j.health,
              j.lastRun ? `${parisTime(new Date(j.lastRun.startedAt))} ${OUTCOME_LABEL[j.lastRun.outcome] ?? j.lastRun.outcome}` : 'aucune',
              j.lastSuccessAt ? parisTime(new Date(j.lastSuccessAt)) : 'jamais',
              parisTime(nextExpectedRun(j.schedule, now)),
            ]),
          ),
        );
        const boxes = await readMailboxProblems(db, now);
        const sends = await readUnknownSends(db);
        console.log(`\nBoîtes mail à surveiller : ${boxes.length}`);
        if (boxes.length) {
          console.log(
            table(
              ['N°', 'Boîte', 'État', 'Raison'],
              boxes.map((m) => [
                m.id,
                `${m.name} <${m.email ?? '?'}>`,
                MAILBOX_STATUS_LABEL[m.status ?? ''] ?? 'En attente',
                mailboxReason(m.status, m.failures, m.nextSyncAt && m.nextSyncAt > now ? parisTime(m.nextSyncAt) : null),
              ]),
            ),
          );
        }
        console.log(`\nEnvois à l'état inconnu : ${sends.length}${sends.length ? ' (npm run ops -- unknown)' : ''}`);
        console.log(
          `\n${s.healthy && !boxes.length && !sends.length ? 'Tout va bien.' : 'Attention : intervention requise.'} (heures de Paris)`,
        );
        return s.healthy ? 0 : 3;
      }
      case 'unknown': {
        const sends = await readUnknownSends(db);
        if (!sends.length) {
          console.log("Aucun envoi à l'état inconnu.");
          return 0;
        }
        console.log(
          table(
            ['Référence', 'Destinataire', 'Objet', 'Heure (Paris)', 'Entreprise'],
            sends.map((s) => [s.ref, s.recipient, s.subject, parisTime(s.at), s.companyName]),
          ),
        );
        console.log('\nVérifiez le dossier « Envoyés », puis : npm run ops -- resolve <référence> sent|resend');
        return 0;
      }
      case 'resolve': {
        const [ref, resolution] = args;
        if (!ref || (resolution !== 'sent' && resolution !== 'resend')) {
          console.error(usage);
          return 2;
        }
        const { actionId } = await resolveUnknownSend(db, ref, resolution, actor);
        console.log(`${ref} : ${RESOLUTION_LABEL[resolution]} (action n° ${actionId}, par ${actor})`);
        return 0;
      }
      case 'resume': {
        const id = Number(args[0]);
        if (!Number.isInteger(id) || id <= 0) {
          console.error(usage);
          return 2;
        }
        const { actionId, previous } = await resumeIntegration(db, id, actor);
        console.log(
          `Boîte ${id} reprise (était : ${previous.status ?? 'sans état'}, ${previous.failures} échec(s)) ; le prochain passage d'inbox-sync la synchronise. Action n° ${actionId}.`,
        );
        return 0;
      }
      case 'runs': {
        const job = args[0];
        if (!job || !findJob(JOB_REGISTRY, job)) {
          console.error(usage);
          return 2;
        }
        const last = values.last === undefined ? 20 : Number(values.last);
        if (!Number.isInteger(last) || last < 1 || last > 1000) {
          console.error(`--last: an integer from 1 to 1000\n${usage}`);
          return 2;
        }
        const rows = await queryRows<{
          id: string;
          trigger: string;
          started_at: Date;
          finished_at: Date | null;
          outcome: string;
          dry_run: boolean;
          error: string | null;
        }>(
          db,
          sql`
          select id, trigger, started_at, finished_at, outcome::text as outcome, dry_run, error from cron_runs
          where job = ${job} order by started_at desc limit ${last}`,
        );
        if (!rows.length) {
          console.log(`${job} : aucune exécution enregistrée.`);
          return 0;
        }
        console.log(
          table(
            ['Début (Paris)', 'Durée', 'Résultat', 'Déclencheur', 'Erreur', 'Run'],
            rows.map((r) => {
              const s = new Date(r.started_at);
              return [
                parisTime(s),
                r.finished_at ? `${new Date(r.finished_at).getTime() - s.getTime()} ms` : '—',
                `${OUTCOME_LABEL[r.outcome] ?? r.outcome}${r.dry_run ? ' (simulation)' : ''}`,
                r.trigger,
                r.error,
                r.id,
              ];
            }),
          ),
        );
        return 0;
      }
      default:
        console.error(usage);
        return 2;
    }
  } catch (err) {
    if (err instanceof ActionError) {
      console.error(err.message);
      return 1;
    }
    throw err;
  } finally {
    await handle.close();
    await closeAllDbs();
  }
}

process.exitCode = await main();
