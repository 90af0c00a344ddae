import { DateTime } from 'luxon';

/**
 * The only place that knows about time zones (SPEC §5: "today", "midnight", "weekday", "month"
 * are in the company's zone). Instants in, instants out.
 */
export const DEFAULT_TIMEZONE = 'Europe/Paris';

/** A valid IANA zone, or the default when the setting is missing or wrong. */
export function safeZone(tz: unknown): string {
  if (typeof tz === 'string' && tz && DateTime.now().setZone(tz).isValid) return tz;
  return DEFAULT_TIMEZONE;
}

const inZone = (instant: Date, tz: string) => DateTime.fromJSDate(instant, { zone: safeZone(tz) });

/** Midnight (00:00) of the day that contains `instant`, in `tz`, as an instant. */
export function startOfDay(instant: Date, tz: string): Date {
  return inZone(instant, tz).startOf('day').toJSDate();
}

/** The calendar date (`YYYY-MM-DD`) of `instant` in `tz`. */
export function localDate(instant: Date, tz: string): string {
  return inZone(instant, tz).toISODate()!;
}

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

/** Whole calendar days from `a` to `b` in `tz` (local dates, not 24-hour periods). */
export function calendarDaysBetween(a: Date, b: Date, tz: string): number {
  return Math.round(inZone(b, tz).startOf('day').diff(inZone(a, tz).startOf('day'), 'days').days);
}
