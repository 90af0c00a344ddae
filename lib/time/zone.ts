import { DateTime, IANAZone } from 'luxon';
import { sql, type SQL } from 'drizzle-orm';
import { queryRows, type Executor } from '../../db/client.js';

/**
 * The only place that knows about time zones (every job's "today", "midnight", "weekday", "month"
 * are in the company's zone). Instants in, instants out.
 *
 * A company's zone is used both by luxon (here) and by PostgreSQL (`at time zone` in set-based
 * statements that cover many companies), so a zone is valid only when BOTH know it by that exact
 * name: one company's `"local"` (luxon's system zone, unknown to PostgreSQL) must never fail a
 * statement for everybody. Every job validates through isKnownZone / checkZone, after
 * loadPostgresZones (docs/security.md, "Tenant isolation").
 */
export const DEFAULT_TIMEZONE = 'Europe/Paris';

// luxon's own keywords and fixed offsets ("UTC+5": PostgreSQL reads POSIX offsets with the
// opposite sign) are never a company's zone
const LUXON_KEYWORDS = /^(local|system|default)$/i;
const OFFSET_FORM = /^(utc|gmt|ut)?\s*[+-]\d/i;
const ZONE_NAME = /^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+)*$/;

/** Zone names already judged: luxon builds a formatter to judge one (~0.3 ms), once is enough. */
const luxonVerdicts = new Map<string, boolean>();
/** Beyond this many distinct names (garbage settings), verdicts are no longer kept. */
const MAX_KEPT_VERDICTS = 2_000;

function luxonKnows(tz: string): boolean {
  const kept = luxonVerdicts.get(tz);
  if (kept !== undefined) return kept;
  const known = tz.length <= 64 && ZONE_NAME.test(tz) && !LUXON_KEYWORDS.test(tz) && !OFFSET_FORM.test(tz) && IANAZone.isValidZone(tz);
  if (luxonVerdicts.size < MAX_KEPT_VERDICTS) luxonVerdicts.set(tz, known);
  return known;
}

/**
 * The zone names PostgreSQL knows (pg_timezone_names), loaded once per process: they change only
 * with the server's time zone database. pg_timezone_names reads every zone file (~0.5 s on a
 * fresh connection, ~75 ms after), hence the cache.
 */
let postgresZones: ReadonlySet<string> | undefined;
let loading: Promise<ReadonlySet<string>> | undefined;
/** The zones known to both, as one jsonb array (a parameter of statements over many companies). */
let validJson: string | undefined;

export async function loadPostgresZones(db: Executor): Promise<void> {
  if (postgresZones) return;
  loading ??= queryRows<{ name: string }>(db, sql`select name from pg_timezone_names`).then(
    (rows) => new Set(rows.map((r) => r.name)),
    (err) => {
      loading = undefined;
      throw err;
    },
  );
  const names = await loading;
  postgresZones = names;
  validJson = JSON.stringify([...names].filter(luxonKnows).sort());
}

/**
 * Known to luxon and to PostgreSQL (exact name). Before loadPostgresZones has run (pure unit
 * tests), only the luxon half is checked.
 */
export function isKnownZone(tz: unknown): tz is string {
  return typeof tz === 'string' && luxonKnows(tz) && (postgresZones === undefined || postgresZones.has(tz));
}

/** A company's zone setting: the zone to use, and the problem to report when it was unusable. */
export function checkZone(raw: unknown): { zone: string; problem: string | null } {
  if (raw === undefined || raw === null || raw === '') return { zone: DEFAULT_TIMEZONE, problem: null };
  if (isKnownZone(raw)) return { zone: raw, problem: null };
  const shown = typeof raw === 'string' ? JSON.stringify(raw.slice(0, 64)) : typeof raw;
  return {
    zone: DEFAULT_TIMEZONE,
    problem: `company_info.timezone: ${shown} is not a zone known to both luxon and PostgreSQL; ${DEFAULT_TIMEZONE} used`,
  };
}

/** A valid zone, or the default when the setting is missing or wrong. */
export function safeZone(tz: unknown): string {
  return checkZone(tz).zone;
}

/**
 * SQL: a company's `company_info.timezone` setting as stored (text, possibly invalid): check it
 * with checkZone, or wrap it in zoneSql. `companyId` is the SQL expression of the company's id.
 */
export function companyZoneSetting(companyId: SQL): SQL {
  return sql`(select zs.settings #>> '{company_info,timezone}' from company_settings zs where zs.company_id = ${companyId})`;
}

/**
 * SQL: the zone of `raw` (a text expression, e.g. `settings #>> '{company_info,timezone}'`) by
 * the same rule as checkZone, for statements that cover many companies. Needs loadPostgresZones.
 */
export function zoneSql(raw: SQL): SQL {
  if (validJson === undefined) throw new Error('zoneSql: loadPostgresZones(db) must run first');
  return sql`(case when ${validJson}::jsonb ? (${raw}) then (${raw}) else ${DEFAULT_TIMEZONE} end)`;
}

const inZone = (instant: Date, tz: string) => DateTime.fromJSDate(instant, { zone: safeZone(tz) });

/** First instant of the calendar month that contains `instant`, in `tz`. */
export function startOfMonth(instant: Date, tz: string): Date {
  return inZone(instant, tz).startOf('month').toJSDate();
}

/** `instant` plus whole calendar days in `tz` (a day across a DST change is 23 or 25 hours). */
export function addDays(instant: Date, days: number, tz: string): Date {
  return inZone(instant, tz).plus({ days }).toJSDate();
}

/** ISO weekday (1 = Monday … 7 = Sunday) and minutes since local midnight. */
export function localWeekdayAndMinutes(instant: Date, tz: string): { weekday: number; minutes: number } {
  const d = inZone(instant, tz);
  return { weekday: d.weekday, minutes: d.hour * 60 + d.minute };
}

/** `dd/MM/yyyy` and `HH:mm` in `tz`, as French readers expect. */
export function formatFrenchDate(instant: Date, tz: string): string {
  return inZone(instant, tz).toFormat('dd/MM/yyyy');
}
export function formatFrenchTime(instant: Date, tz: string): string {
  return inZone(instant, tz).toFormat('HH:mm');
}
