import { describe, expect, it } from 'vitest';
import { HOBBY_TOLERANCE_MS, judgeMissed, nextExpectedRun } from '../../lib/cron/schedule.js';
import { healthcheckBaseUrl, pingSummary, pingUrl } from '../../lib/cron/healthcheck.js';
import { parseConfig } from '../../lib/config.js';
import {
  cleanActor,
  csrfToken,
  csrfValid,
  failureDelayMs,
  isLoopbackHost,
  readCookie,
  sessionCookie,
  signSession,
  verifySession,
  SESSION_TTL_MS,
} from '../../lib/console/session.js';
import { esc, parisTime, timelineSvg } from '../../lib/console/render.js';
import { parseSendRef } from '../../lib/console/sql.js';
import { HEALTH_LABEL, MAILBOX_STATUS_LABEL, mailboxReason } from '../../lib/console/messages.js';

const at = (iso: string) => new Date(iso);

describe('missed-run rule (injected clock)', () => {
  const ledger = at('2026-01-01T00:00:00Z');

  it('hourly job: on time, late within the Hobby hour, then missed after two silent intervals', () => {
    const now = at('2026-03-10T14:30:00Z');
    expect(judgeMissed('0 * * * *', at('2026-03-10T14:00:05Z'), ledger, now).missed).toBe(false);
    // Hobby fires anywhere in the hour: a run at 12:58 still covers the 12:00 occurrence
    expect(judgeMissed('0 * * * *', at('2026-03-10T12:58:00Z'), ledger, now).missed).toBe(false);
    const v = judgeMissed('0 * * * *', at('2026-03-10T10:00:00Z'), ledger, now);
    expect(v.missed).toBe(true);
    expect(v.expected).toEqual(['2026-03-10T12:00:00.000Z', '2026-03-10T13:00:00.000Z']);
    expect(v.windowStart).toBe(new Date(at('2026-03-10T12:00:00Z').getTime() - HOBBY_TOLERANCE_MS).toISOString());
  });

  it('daily job: 59 minutes of slack after each occurrence', () => {
    // 02:00 daily; at 02:58 today's occurrence is still within its hour: yesterday's run is enough
    expect(judgeMissed('0 2 * * *', at('2026-03-09T02:40:00Z'), ledger, at('2026-03-10T02:58:00Z')).missed).toBe(false);
    // two days without a run: missed
    expect(judgeMissed('0 2 * * *', at('2026-03-07T02:10:00Z'), ledger, at('2026-03-10T03:30:00Z')).missed).toBe(true);
    expect(judgeMissed('0 2 * * *', at('2026-03-09T02:10:00Z'), ledger, at('2026-03-10T03:30:00Z')).missed).toBe(false);
  });

  it('every 5 minutes: one interval of slack, so a stop is seen within ~20 minutes', () => {
    const last = at('2026-03-10T14:00:00Z');
    expect(judgeMissed('*/5 * * * *', last, ledger, at('2026-03-10T14:12:00Z')).missed).toBe(false);
    expect(judgeMissed('*/5 * * * *', last, ledger, at('2026-03-10T14:21:00Z')).missed).toBe(true);
  });

  it('a fresh ledger (nothing older than the window) or a never-run job on a fresh database is not missed', () => {
    const now = at('2026-03-10T14:30:00Z');
    expect(judgeMissed('0 * * * *', null, null, now).missed).toBe(false);
    expect(judgeMissed('0 * * * *', null, at('2026-03-10T13:00:00Z'), now).missed).toBe(false);
    // but a job that never ran while the others have for days is missed
    expect(judgeMissed('0 * * * *', null, ledger, now).missed).toBe(true);
  });

  it('next expected run comes from the schedule (UTC)', () => {
    expect(nextExpectedRun('0 2 * * *', at('2026-03-10T14:30:00Z'))?.toISOString()).toBe('2026-03-11T02:00:00.000Z');
  });
});

describe('health-check URLs', () => {
  const cfg = (env: Record<string, string>) => parseConfig({ NODE_ENV: 'test', ...env });

  const inboxSync = { id: 'inbox-sync', healthcheckVariable: 'HEALTHCHECK_URL_INBOX_SYNC' };
  const followups = { id: 'followups', healthcheckVariable: 'HEALTHCHECK_URL_FOLLOWUPS' };

  it('template with {job}, a per-job variable wins, none means no ping', () => {
    const c = cfg({ HEALTHCHECK_URL: 'https://hc-ping.com/k3y/{job}', HEALTHCHECK_URL_FOLLOWUPS: 'https://cronitor.link/p/abc/relances' });
    expect(healthcheckBaseUrl(c, inboxSync)).toBe('https://hc-ping.com/k3y/inbox-sync');
    expect(healthcheckBaseUrl(c, followups)).toBe('https://cronitor.link/p/abc/relances');
    expect(healthcheckBaseUrl(cfg({}), followups)).toBeNull();
    expect(() => cfg({ HEALTHCHECK_URL: 'ftp://x' })).toThrow(/HEALTHCHECK_URL/);
  });

  it('any HEALTHCHECK_URL_<JOB> is read and checked, without a line per job in lib/config.ts', () => {
    const c = cfg({ HEALTHCHECK_URL_QUOTE_EXPIRY: 'https://hc-ping.com/uuid-q' });
    expect(healthcheckBaseUrl(c, { id: 'quote-expiry', healthcheckVariable: 'HEALTHCHECK_URL_QUOTE_EXPIRY' })).toBe(
      'https://hc-ping.com/uuid-q',
    );
    expect(healthcheckBaseUrl(c, followups)).toBeNull();
    expect(() => cfg({ HEALTHCHECK_URL_QUOTE_EXPIRY: 'ftp://x' })).toThrow(/HEALTHCHECK_URL_QUOTE_EXPIRY: must be an http/);
  });

  it('/start and /fail go after the path, before the query string', () => {
    expect(pingUrl('https://hc-ping.com/k3y/inbox-sync?create=1', 'start')).toBe('https://hc-ping.com/k3y/inbox-sync/start?create=1');
    expect(pingUrl('https://hc-ping.com/uuid/', 'fail')).toBe('https://hc-ping.com/uuid/fail');
    expect(pingUrl('https://hc-ping.com/uuid', 'success')).toBe('https://hc-ping.com/uuid');
  });

  it('the summary is one short French line', () => {
    expect(pingSummary('followups', { kind: 'failed', body: { success: false, error: 'database_unavailable', message: 'refused' } })).toBe(
      'followups : échec (HTTP 500) — database_unavailable : refused',
    );
    expect(pingSummary('followups', { kind: 'ran', body: { success: true, durationMs: 12, errorsCount: 0, stats: { sent: 2 } } })).toBe(
      'followups : réussi en 12 ms, 0 erreur(s) d\'élément — {"sent":2}',
    );
  });
});

describe('console session, CSRF, escaping', () => {
  const now = at('2026-03-10T14:30:00Z');
  const pw = 'p'.repeat(32);

  it('a signed session verifies for 12 h, not after, not with another password, not when tampered', () => {
    const { value, session } = signSession(pw, 'Alice', now);
    expect(verifySession(pw, value, now)?.actor).toBe('Alice');
    expect(verifySession(pw, value, new Date(now.getTime() + SESSION_TTL_MS - 1000))).not.toBeNull();
    expect(verifySession(pw, value, new Date(now.getTime() + SESSION_TTL_MS + 1))).toBeNull();
    expect(verifySession('rotated-' + pw, value, now)).toBeNull(); // rotation signs everyone out
    const [payload, sig] = value.split('.');
    const forged = Buffer.from(JSON.stringify({ ...session, actor: 'Mallory' })).toString('base64url');
    expect(verifySession(pw, `${forged}.${sig}`, now)).toBeNull();
    expect(verifySession(pw, `${payload}.x${sig.slice(1)}`, now)).toBeNull();
    expect(verifySession(pw, 'garbage', now)).toBeNull();
  });

  it('the CSRF token belongs to one session and one password', () => {
    const a = signSession(pw, 'Alice', now).session;
    const b = signSession(pw, 'Alice', now).session;
    expect(csrfValid(pw, a, csrfToken(pw, a))).toBe(true);
    expect(csrfValid(pw, a, csrfToken(pw, b))).toBe(false);
    expect(csrfValid(pw, a, undefined)).toBe(false);
    expect(csrfValid('other-' + pw, a, csrfToken(pw, a))).toBe(false);
  });

  it('cookie flags: HttpOnly, SameSite=Strict, Secure outside loopback', () => {
    expect(sessionCookie('v', 'lokario.vercel.app')).toBe('lokario_console=v; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200; Secure');
    expect(sessionCookie('v', 'localhost:3000')).not.toContain('Secure');
    expect(isLoopbackHost('127.0.0.1:8080')).toBe(true);
    expect(isLoopbackHost('localhost.evil.fr')).toBe(false);
    expect(readCookie('a=1; lokario_console=xyz; b=2', 'lokario_console')).toBe('xyz');
  });

  it('failed sign-ins wait longer each time (0.5 s, 1 s, 2 s… capped at 8 s)', () => {
    const ip = `203.0.113.${Math.floor(Math.random() * 200)}`;
    const t = Date.now();
    expect([1, 2, 3, 4, 5, 6].map((i) => failureDelayMs(ip, t + i))).toEqual([500, 1000, 2000, 4000, 8000, 8000]);
  });

  it('escapes everything from outside; actor names are cleaned', () => {
    expect(esc(`<script>"x" & 'y'</script>`)).toBe('&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;');
    expect(cleanActor('<b>Alice</b>')).toBe('bAliceb');
    expect(cleanActor('')).toBe('opérateur');
  });

  it('Paris time, summer and winter', () => {
    expect(parisTime(at('2026-07-01T12:00:00Z'))).toBe('01/07/2026 14:00');
    expect(parisTime(at('2026-01-01T12:00:00Z'))).toBe('01/01/2026 13:00');
  });

  it('timeline: one mark per run, coloured by outcome, dry runs left out', () => {
    const svg = timelineSvg(
      [
        { job: 'followups', startedAt: at('2026-03-10T13:00:00Z'), durationMs: 1200, outcome: 'succeeded', dryRun: false },
        { job: 'followups', startedAt: at('2026-03-10T12:00:00Z'), durationMs: 30_000, outcome: 'failed', dryRun: false },
        { job: 'followups', startedAt: at('2026-03-10T12:30:00Z'), durationMs: 10, outcome: 'succeeded', dryRun: true },
      ],
      now,
      60,
    );
    expect(svg.match(/<rect /g)).toHaveLength(2);
    expect(svg).toContain('class="r-failed"');
    expect(svg).toContain('class="r-succeeded"');
  });

  it('send references', () => {
    const parsed = (ref: string) => {
      const p = parseSendRef(ref);
      return p && { kind: p.table.kind, table: p.table.name, id: p.id };
    };
    expect(parsed('followup_step:12')).toEqual({ kind: 'followup_step', table: 'followup_history', id: 12 });
    expect(parsed('appointment_reminder:7')).toEqual({ kind: 'appointment_reminder', table: 'appointment_reminders', id: 7 });
    expect(parsed('deletion_email:3')).toEqual({ kind: 'deletion_email', table: 'mail_sends', id: 3 });
    // one name per kind: the bounces' (send_bounces.send_kind), no second spelling
    expect(parseSendRef('followup:12')).toBeNull();
    expect(parseSendRef('users:1')).toBeNull();
    expect(parseSendRef('followup_step:12345678901')).toBeNull();
  });

  it('health and mailbox labels cover the states other features add (degraded sends, OAuth re-consent)', () => {
    expect(HEALTH_LABEL.degraded).toBe('À vérifier');
    expect(MAILBOX_STATUS_LABEL.needs_reauth).toBe('À reconnecter (OAuth)');
    expect(mailboxReason('needs_reauth', 0, null)).toMatch(/^Autorisation OAuth .* reconnecter sa boîte/);
  });
});
