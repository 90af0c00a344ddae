import { z } from 'zod';
import { checkZone } from './time/zone.js';

/**
 * `company_settings.settings` with its defaults (the schemas below are the reference). Each section is parsed on its own: a
 * malformed section falls back to its defaults and is reported in `problems`, so one company's bad
 * blob never stops the others. The zone follows lib/time/zone.ts (known to luxon and PostgreSQL;
 * jobs run loadPostgresZones first). Tenant isolation: docs/security.md.
 */
const hhmm = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/);

const CompanyInfo = z
  .object({
    email: z.string().nullish(),
    phone: z.string().nullish(),
    address: z.string().nullish(),
    city: z.string().nullish(),
    postal_code: z.string().nullish(),
    country: z.string().nullish(),
    siren: z.string().nullish(),
    siret: z.string().nullish(),
    vat_number: z.string().nullish(),
    timezone: z.string().nullish(),
  })
  .partial();

const AutoFollowups = z.object({ quotes_enabled: z.boolean().default(false), invoices_enabled: z.boolean().default(false) });

const FollowupMessage = z.object({
  type: z.string(),
  content: z.string(),
  method: z.string().default('email'),
  subject: z.string().optional(),
});
const Followups = z.object({
  max_relances: z.number().int().min(1).max(10).default(3),
  relance_delays: z.array(z.number().int().min(0).max(365)).min(1).default([7, 14, 21]),
  messages: z.array(FollowupMessage).default([]),
  stop_conditions: z
    .object({
      stop_on_client_response: z.boolean().default(true),
      stop_on_invoice_paid: z.boolean().default(true),
      stop_on_quote_refused: z.boolean().default(true),
    })
    .default({ stop_on_client_response: true, stop_on_invoice_paid: true, stop_on_quote_refused: true }),
  send_window: z
    .object({
      start: hhmm.default('08:00'),
      end: hhmm.default('19:00'),
      weekdays: z.array(z.number().int().min(1).max(7)).default([1, 2, 3, 4, 5]),
    })
    .default({ start: '08:00', end: '19:00', weekdays: [1, 2, 3, 4, 5] }),
});

const ReminderRelance = z.object({
  relance_number: z.number().int().optional(),
  hours_before: z
    .number()
    .min(0)
    .max(24 * 60)
    .default(24),
  content: z.string().optional(),
});
const Appointments = z.object({
  auto_reminder_enabled: z.boolean().default(true),
  reminder_relances: z.array(ReminderRelance).default([{ hours_before: 24 }]),
  include_reschedule_link_in_reminder: z.boolean().default(false),
  reschedule_base_url: z.string().nullish(),
});

const Clients = z.object({ blocked_client_domains: z.array(z.string()).default([]) });

export type CompanySettings = {
  companyInfo: z.infer<typeof CompanyInfo> & { timezone: string };
  autoFollowups: z.infer<typeof AutoFollowups>;
  followups: z.infer<typeof Followups>;
  appointments: z.infer<typeof Appointments>;
  clients: z.infer<typeof Clients>;
};

function section<T extends z.ZodType>(schema: T, raw: unknown, name: string, problems: string[]): z.infer<T> {
  const res = schema.safeParse(raw ?? {});
  if (res.success) return res.data;
  problems.push(`${name}: ${res.error.issues.map((i) => `${i.path.join('.') || '(root)'} ${i.message}`).join(', ')}`);
  return schema.parse({});
}

export function parseCompanySettings(raw: unknown): { settings: CompanySettings; problems: string[] } {
  const problems: string[] = [];
  const root = raw && typeof raw === 'object' && !Array.isArray(raw) ? (raw as Record<string, unknown>) : {};
  if (raw !== null && raw !== undefined && root !== raw) problems.push('settings: not an object');
  const billing = root.billing && typeof root.billing === 'object' ? (root.billing as Record<string, unknown>) : {};
  const info = section(CompanyInfo, root.company_info, 'company_info', problems);
  // read from the raw blob: a zone of the wrong type (a number) fails the section's parse and
  // must still be reported as a zone problem, not silently defaulted
  const rawInfo = root.company_info && typeof root.company_info === 'object' ? (root.company_info as Record<string, unknown>) : {};
  const tz = checkZone(rawInfo.timezone ?? info.timezone);
  if (tz.problem) problems.push(tz.problem);
  return {
    settings: {
      companyInfo: { ...info, timezone: tz.zone },
      autoFollowups: section(AutoFollowups, billing.auto_followups, 'billing.auto_followups', problems),
      followups: section(Followups, root.followups, 'followups', problems),
      appointments: section(Appointments, root.appointments, 'appointments', problems),
      clients: section(Clients, root.clients, 'clients', problems),
    },
    problems,
  };
}
