import { spawn } from 'node:child_process';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { queryRows } from '../../db/client.js';
import {
  pauseIntegration,
  seedCompany,
  seedHealthyRuns,
  seedUnknownFollowup,
  seedUnknownReminder,
} from '../../devtools/console-fixtures.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePg } from '../helpers/services.js';

const root = path.resolve(import.meta.dirname, '../..');

/** `npm run ops -- …` as typed (the script behind it, without npm's banner). */
function ops(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/ops.ts', ...args], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ENV_FILE: 'none', USER: 'bob', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describePg('npm run ops (the operator CLI) on real PostgreSQL', () => {
  // each call starts a Node process with tsx: seconds each when the machine is busy
  vi.setConfig({ testTimeout: 180_000 });
  let t: TestDatabase;
  let env: Record<string, string>;
  let integrationId: number;
  let historyId: number;
  let reminderId: number;
  beforeAll(async () => {
    t = await createTestDatabase('opscli');
    env = { DATABASE_URL: t.url };
    const db = t.handle.db;
    await seedHealthyRuns(db, new Date(), 2, { failEvery: 5 });
    const company = await seedCompany(db);
    const [row] = await queryRows<{ id: number }>(
      db,
      sql`
      insert into inbox_integrations (company_id, name, imap_server, imap_port, email_address, email_password)
      values (${company}, 'Boîte accueil', '127.0.0.1', 1, 'accueil@exemple.fr', 'x') returning id`,
    );
    integrationId = Number(row.id);
    await pauseIntegration(db, integrationId);
    ({ historyId } = await seedUnknownFollowup(db, company, 'Facture F-2026-001'));
    reminderId = await seedUnknownReminder(db, company);
  });
  afterAll(async () => {
    await t?.drop();
  });

  it('status: a table of the four jobs, the paused mailbox, the unknown sends', async () => {
    const r = await ops(['status'], env);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^Tâche\s+Santé\s+Dernière exécution\s+Dernier succès\s+Prochaine prévue\n-+/);
    for (const job of ['inbox-sync', 'account-deletions']) expect(r.stdout).toMatch(new RegExp(`^${job}\\s+En bonne santé`, 'm'));
    // the two jobs whose sends are in `unknown` need a person (docs/sending.md)
    for (const job of ['followups', 'overdue-reminders']) expect(r.stdout).toMatch(new RegExp(`^${job}\\s+À vérifier`, 'm'));
    expect(r.stdout).toContain('Boîtes mail à surveiller : 1');
    expect(r.stdout).toContain('Suspendue');
    expect(r.stdout).toContain("Envois à l'état inconnu : 2");
    expect(r.stdout).toContain('Attention : intervention requise.');
  });

  it('unknown lists both sends with reference, recipient, subject and Paris time', async () => {
    const r = await ops(['unknown'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`followup_step:${historyId}\\s+client@exemple\\.fr\\s+Relance \\(étape 1\\) : Facture F-2026-001`));
    expect(r.stdout).toMatch(
      new RegExp(`appointment_reminder:${reminderId}\\s+leroy@exemple\\.fr\\s+Rappel de rendez-vous : Visite technique`),
    );
    expect(r.stdout).toMatch(/\d\d\/\d\d\/\d{4} \d\d:\d\d/);
  });

  it('resolve: "resend" removes the reminder claim, "sent" settles the follow-up; twice is refused; every action is logged', async () => {
    const a = await ops(['resolve', `appointment_reminder:${reminderId}`, 'resend'], env);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout).toContain('non envoyé — renvoyer au prochain passage');
    expect(await queryRows(t.handle.db, sql`select 1 from appointment_reminders where id = ${reminderId}`)).toEqual([]);
    const b = await ops(['resolve', `followup_step:${historyId}`, 'sent', '--as', 'claire'], env);
    expect(b.code, b.stderr).toBe(0);
    const again = await ops(['resolve', `followup_step:${historyId}`, 'resend'], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('déjà résolu');
    const [h] = await queryRows<{ delivery: string }>(
      t.handle.db,
      sql`select delivery::text from followup_history where id = ${historyId}`,
    );
    expect(h.delivery).toBe('sent');
    const bad = await ops(['resolve', 'users:1', 'sent'], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("référence d'envoi invalide");
    const log = await queryRows<{ actor: string; action: string; target: string; details: { resolution: string } }>(
      t.handle.db,
      sql`
      select actor, action, target, details from operator_actions order by id`,
    );
    expect(log).toEqual([
      { actor: 'cli:bob', action: 'resolve_send', target: `appointment_reminder:${reminderId}`, details: { resolution: 'resend' } },
      { actor: 'cli:claire', action: 'resolve_send', target: `followup_step:${historyId}`, details: { resolution: 'sent' } },
    ]);
  });

  it('resume clears the pause and the back-off; an unknown id is a clear error', async () => {
    const r = await ops(['resume', String(integrationId)], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('était : paused, 5 échec(s)');
    const [row] = await queryRows<{ last_sync_status: string | null; consecutive_failures: number; next_sync_at: Date | null }>(
      t.handle.db,
      sql`
      select last_sync_status, consecutive_failures, next_sync_at from inbox_integrations where id = ${integrationId}`,
    );
    expect(row).toEqual({ last_sync_status: null, consecutive_failures: 0, next_sync_at: null });
    const missing = await ops(['resume', '999999'], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('boîte mail 999999 introuvable');
  });

  it('runs <job> --last N: the N latest runs, newest first, with errors; bad arguments print the usage', async () => {
    const r = await ops(['runs', 'followups', '--last', '6'], env);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^Début \(Paris\)\s+Durée\s+Résultat\s+Déclencheur\s+Erreur\s+Run$/);
    expect(lines).toHaveLength(2 + 6);
    expect(r.stdout).toContain('échouée');
    expect(r.stdout).toContain('database_error: connexion perdue');
    for (const args of [['runs', 'followups', '--last', '0'], ['frobnicate']]) {
      const u = await ops(args, env);
      expect(u.code, args.join(' ')).toBe(2);
      expect(u.stderr).toContain('usage: npm run ops');
    }
  });
});
