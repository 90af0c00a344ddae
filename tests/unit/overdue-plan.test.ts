import { describe, expect, it } from 'vitest';
import {
  planReminders,
  reminderCompany,
  reminderDedupeKey,
  type ReminderCandidate,
  type ReminderCompany,
} from '../../lib/jobs/overdue-reminders/plan.js';
import { renderReminder, rescheduleUrl } from '../../lib/jobs/overdue-reminders/messages.js';
import { addressOf } from '../../lib/text/address.js';
import { fillTemplate } from '../../lib/text/template.js';

const H = 3_600_000;
const start = new Date('2026-03-30T07:00:00Z'); // 09:00 in Paris (CEST)

function candidate(o: Partial<ReminderCandidate> = {}): ReminderCandidate {
  return {
    appointmentId: 1,
    companyId: 10,
    status: 'SCHEDULED',
    start,
    startIso: '2026-03-30T07:00:00.000000Z',
    employeeId: 5,
    hoursBefore: 24,
    clientName: 'Jeanne Moreau',
    clientEmail: 'jeanne@example.com',
    typeName: 'Bilan',
    existingDelivery: null,
    ...o,
  };
}
function companyOf(settings: unknown = {}, id = 10): ReminderCompany {
  return reminderCompany(id, 'Cabinet Lefèvre', settings).company;
}

// the weekly repeat of INVOICE_OVERDUE and the reminders' send window are SQL rules, tested against
// PostgreSQL: tests/integration/overdue-notifications.test.ts and overdue-reminders.test.ts

describe('reminder settings', () => {
  it('defaults: enabled, one 24 h offset, no reschedule link, Europe/Paris', () => {
    const { company, problems } = reminderCompany(1, 'X', undefined);
    expect(problems).toEqual([]);
    expect(company).toMatchObject({
      enabled: true,
      offsets: [{ hoursBefore: 24, content: null }],
      rescheduleBaseUrl: null,
      timezone: 'Europe/Paris',
    });
  });
  it('defect 34: every reminder_relances entry is an offset (deduplicated, whole hours, 0 h dropped)', () => {
    const c = companyOf({
      appointments: {
        reminder_relances: [
          { hours_before: 48, content: 'A {date}' },
          { hours_before: 2 },
          { hours_before: 48 },
          { hours_before: 1.5 },
          { hours_before: 0 },
        ],
      },
    });
    expect(c.offsets).toEqual([
      { hoursBefore: 48, content: 'A {date}' },
      { hoursBefore: 2, content: null },
    ]);
  });
  it('a malformed appointments section falls back to the defaults and is reported', () => {
    const { company, problems } = reminderCompany(1, 'X', { appointments: { reminder_relances: 'soon' } });
    expect(company.offsets).toEqual([{ hoursBefore: 24, content: null }]);
    expect(problems.join()).toContain('appointments');
  });
  it('the reschedule link only when enabled and a base URL is set; an invalid company email is dropped', () => {
    expect(companyOf({ appointments: { include_reschedule_link_in_reminder: true } }).rescheduleBaseUrl).toBeNull();
    expect(companyOf({ appointments: { reschedule_base_url: 'https://x' } }).rescheduleBaseUrl).toBeNull();
    expect(
      companyOf({ appointments: { include_reschedule_link_in_reminder: true, reschedule_base_url: 'https://x' } }).rescheduleBaseUrl,
    ).toBe('https://x');
    expect(companyOf({ company_info: { email: 'not an email' } }).email).toBeNull();
  });
});

describe('planReminders', () => {
  const companies = new Map([
    [10, companyOf()],
    [11, companyOf({ appointments: { auto_reminder_enabled: false } }, 11)],
  ]);

  it('sends what is due; counts already sent, in progress, unknown and each skip reason', () => {
    const plan = planReminders(
      [
        candidate({ appointmentId: 1 }),
        candidate({ appointmentId: 2, existingDelivery: 'sent' }),
        candidate({ appointmentId: 3, existingDelivery: 'sending' }),
        candidate({ appointmentId: 4, existingDelivery: 'unknown' }),
        candidate({ appointmentId: 5, existingDelivery: 'failed' }),
        candidate({ appointmentId: 6, status: 'CANCELLED' }),
        candidate({ appointmentId: 7, status: 'NO_SHOW' }),
        candidate({ appointmentId: 8, companyId: 11 }),
        candidate({ appointmentId: 9, clientEmail: null }),
        candidate({ appointmentId: 10, clientEmail: 'jeanne at example' }),
        candidate({ appointmentId: 12, status: 'CONFIRMED' }),
      ],
      companies,
      500,
    );
    expect(plan.send.map((r) => r.appointmentId)).toEqual([1, 12]);
    expect(plan).toMatchObject({ alreadySent: 1, inProgress: 1, unknown: 1, deferred: 0 });
    expect(plan.skipped).toEqual({
      failed_permanently: 1,
      appointment_cancelled: 1,
      appointment_not_active: 1,
      reminders_disabled: 1,
      no_client_email: 1,
      invalid_client_email: 1,
    });
  });

  it('caps the sends per run, most overdue first, and counts the rest as deferred', () => {
    const rows = [3, 1, 2].map((i) => candidate({ appointmentId: i, start: new Date(start.getTime() + i * H) }));
    const plan = planReminders(rows, companies, 2);
    expect(plan.send.map((r) => r.appointmentId)).toEqual([1, 2]);
    expect(plan.deferred).toBe(1);
  });
});

describe('renderReminder', () => {
  const opts = { frontendUrl: 'https://app.lokario.fr/', mailFrom: 'Lokario <noreply@lokario.fr>' };

  it('defect 34: date and time in the company timezone, not UTC, on both sides of the DST change', () => {
    const c = companyOf();
    expect(renderReminder(candidate(), c, opts).subject).toBe('Rappel : votre rendez-vous du 30/03/2026 à 09:00');
    const winter = candidate({ start: new Date('2026-03-28T08:00:00Z') });
    expect(renderReminder(winter, c, opts).subject).toBe('Rappel : votre rendez-vous du 28/03/2026 à 09:00');
    const ny = companyOf({ company_info: { timezone: 'America/New_York' } });
    expect(renderReminder(candidate(), ny, opts).subject).toBe('Rappel : votre rendez-vous du 30/03/2026 à 03:00');
  });

  it('uses the configured content with its variables, From MAIL_FROM under the company name, Reply-To the company', () => {
    const c = companyOf({
      company_info: { email: 'contact@lefevre.example' },
      appointments: {
        reminder_relances: [
          { hours_before: 24, content: '{client_name} : RDV {appointment_type} le {date} à {time} ({company_name}). {oops}' },
        ],
      },
    });
    const m = renderReminder(candidate(), c, opts);
    expect(m.text).toBe('Jeanne Moreau : RDV Bilan le 30/03/2026 à 09:00 (Cabinet Lefèvre). {oops}\n\nCordialement,\nCabinet Lefèvre');
    expect(m.unknownVariables).toEqual(['oops']);
    expect(m.from).toBe('"Cabinet Lefèvre" <noreply@lokario.fr>');
    expect(m.replyTo).toBe('contact@lefevre.example');
    expect(m.to).toBe('jeanne@example.com');
  });

  it('default content with a greeting; reschedule link appended; deterministic Message-ID; notification text', () => {
    const c = companyOf({ appointments: { include_reschedule_link_in_reminder: true, reschedule_base_url: 'https://rdv.example/r/' } });
    const m = renderReminder(candidate(), c, opts);
    expect(m.text).toBe(
      [
        'Bonjour Jeanne Moreau,',
        '',
        'Rappel : Vous avez un rendez-vous le 30/03/2026 à 09:00.',
        '',
        'Pour déplacer votre rendez-vous : https://rdv.example/r/1',
        '',
        'Cordialement,',
        'Cabinet Lefèvre',
      ].join('\n'),
    );
    expect(m.replyTo).toBeUndefined();
    expect(m.messageId).toBe(`<lokario.appointment-reminder.1.24.${start.getTime()}@lokario.fr>`);
    expect(renderReminder(candidate(), c, opts).messageId).toBe(m.messageId);
    expect(renderReminder(candidate({ start: new Date(start.getTime() + H) }), c, opts).messageId).not.toBe(m.messageId);
    expect(m.notification).toEqual({
      title: 'Rappel de rendez-vous envoyé',
      message: 'Rappel envoyé à Jeanne Moreau pour le rendez-vous « Bilan » du 30/03/2026 à 09:00.',
      linkUrl: 'https://app.lokario.fr/app/appointments',
      linkText: 'Voir les rendez-vous',
      dedupeKey: reminderDedupeKey('2026-03-30T07:00:00.000000Z', 24),
    });
  });

  it('helpers: template variables, MAIL_FROM address, reschedule URL', () => {
    expect(fillTemplate('{a} {b} {a}', { a: 'x' })).toEqual({ text: 'x {b} x', unknown: ['b'] });
    // one grammar for every job: a capitalised name is a variable too, and reported when unknown
    expect(fillTemplate('Bonjour {Client_Name}, {client_name}', { client_name: 'Jeanne' })).toEqual({
      text: 'Bonjour {Client_Name}, Jeanne',
      unknown: ['Client_Name'],
    });
    expect(addressOf('Lokario <noreply@lokario.fr>')).toBe('noreply@lokario.fr');
    expect(addressOf('noreply@lokario.fr')).toBe('noreply@lokario.fr');
    expect(rescheduleUrl('https://x/rdv/{appointment_id}/move', 7)).toBe('https://x/rdv/7/move');
    expect(rescheduleUrl('https://x/rdv/', 7)).toBe('https://x/rdv/7');
  });
});
