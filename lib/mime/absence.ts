/**
 * The return date an out-of-office announces ("absent jusqu'au 15", "de retour le 3 janvier",
 * "back on December 15"), pure. Only an explicit date is read: a day alone means the next such
 * day on or after the message's date; a month name without a year, its next occurrence. Nothing
 * else is guessed (no "next week", no weekday alone). docs/bounces.md.
 */
export type Absence = {
  /** The sentence that announces the return, as written (at most ABSENCE_TEXT_MAX characters). */
  text: string;
  /** YYYY-MM-DD when the sentence states a date we could read, else null. */
  until: string | null;
};

export const ABSENCE_TEXT_MAX = 200;

const MONTHS: Record<string, number> = {
  janvier: 1,
  janv: 1,
  jan: 1,
  january: 1,
  février: 2,
  fevrier: 2,
  févr: 2,
  fevr: 2,
  feb: 2,
  february: 2,
  mars: 3,
  march: 3,
  mar: 3,
  avril: 4,
  avr: 4,
  april: 4,
  apr: 4,
  mai: 5,
  may: 5,
  juin: 6,
  june: 6,
  jun: 6,
  juillet: 7,
  juil: 7,
  july: 7,
  jul: 7,
  août: 8,
  aout: 8,
  august: 8,
  aug: 8,
  septembre: 9,
  sept: 9,
  sep: 9,
  september: 9,
  octobre: 10,
  oct: 10,
  october: 10,
  novembre: 11,
  nov: 11,
  november: 11,
  décembre: 12,
  decembre: 12,
  déc: 12,
  dec: 12,
  december: 12,
};
const MONTH_NAMES = Object.keys(MONTHS)
  .sort((a, b) => b.length - a.length)
  .join('|');
const WEEKDAYS = '(?:lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche|monday|tuesday|wednesday|thursday|friday|saturday|sunday)';

// What introduces the return date, in French and English.
const LEAD = String.raw`(?:jusqu'?au|jusqu’au|jusqu'à|jusqu’à|jusqu'?a|retour (?:prévu )?(?:le|au)|de retour (?:le|au|à partir du|a partir du)?|je serai (?:de retour|joignable|disponible) (?:le|à partir du|a partir du|dès le)?|à partir du|a partir du|reprise (?:le|au)|back (?:on|in the office on)?|return(?:ing)? (?:on|to the office on)?|until|till|through|away until|out of (?:the )?office until)`;
const DATE = String.raw`(?:${WEEKDAYS},?\s+)?(?:(?:le\s+)?(\d{1,2})(?:er|st|nd|rd|th)?(?:\s+(${MONTH_NAMES})\.?(?:\s+(\d{4}))?|[/.-](\d{1,2})(?:[/.-](\d{2,4}))?)?|(${MONTH_NAMES})\.?\s+(\d{1,2})(?:st|nd|rd|th)?(?:,?\s+(\d{4}))?)`;
const RETURN = new RegExp(String.raw`${LEAD}\s*:?\s*${DATE}(?![\d:h])`, 'i');

const pad = (n: number) => String(n).padStart(2, '0');

function valid(y: number, m: number, d: number): boolean {
  const t = new Date(Date.UTC(y, m - 1, d));
  return m >= 1 && m <= 12 && t.getUTCMonth() === m - 1 && t.getUTCDate() === d;
}

/** The next date on or after `from` (a UTC calendar day) with this day (and month, when given). */
function nextOccurrence(from: { y: number; m: number; d: number }, month: number | null, day: number): string | null {
  if (month === null) {
    for (let k = 0; k < 12; k++) {
      const m = ((from.m - 1 + k) % 12) + 1;
      const y = from.y + Math.floor((from.m - 1 + k) / 12);
      if ((k > 0 || day >= from.d) && valid(y, m, day)) return `${y}-${pad(m)}-${pad(day)}`;
    }
    return null;
  }
  const y = month > from.m || (month === from.m && day >= from.d) ? from.y : from.y + 1;
  return valid(y, month, day) ? `${y}-${pad(month)}-${pad(day)}` : null;
}

function sentenceAround(text: string, index: number, length: number): string {
  const start = Math.max(text.lastIndexOf('.', index - 1), text.lastIndexOf('\n', index - 1), text.lastIndexOf('!', index - 1)) + 1;
  // the date may end with its own dot ("déc."): the sentence ends at the first one from there
  const ends = ['.', '\n', '!'].map((c) => {
    const i = text.indexOf(c, index + length - 1);
    return i < 0 ? text.length : i;
  });
  let end = Math.min(...ends);
  // a date like 15.12.2026 holds dots: the sentence goes on after it
  if (end < index + length) end = index + length;
  return text
    .slice(start, end + 1)
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, ABSENCE_TEXT_MAX);
}

/**
 * The announced return of an auto-reply, from its subject and text; null when neither says
 * when the person is back. `sentAt`: the message's date (UTC day), the reference of a day alone.
 */
export function announcedReturn(subject: string, text: string, sentAt: Date): Absence | null {
  const from = { y: sentAt.getUTCFullYear(), m: sentAt.getUTCMonth() + 1, d: sentAt.getUTCDate() };
  for (const source of [text.slice(0, 5_000), subject]) {
    const m = RETURN.exec(source);
    if (!m) continue;
    const [, dayA, monthNameA, yearA, monthNumA, yearNumA, monthNameB, dayB, yearB] = m;
    let until: string | null = null;
    if (dayA) {
      const day = Number(dayA);
      const month = monthNameA ? MONTHS[monthNameA.toLowerCase()] : monthNumA ? Number(monthNumA) : null;
      const yRaw = yearA ?? yearNumA;
      if (yRaw) {
        const y = yRaw.length === 2 ? 2000 + Number(yRaw) : Number(yRaw);
        if (month !== null && valid(y, month, day)) until = `${y}-${pad(month)}-${pad(day)}`;
      } else if (month === null || (month >= 1 && month <= 12)) {
        until = nextOccurrence(from, month, day);
      }
    } else if (monthNameB && dayB) {
      const month = MONTHS[monthNameB.toLowerCase()];
      const day = Number(dayB);
      if (yearB) until = valid(Number(yearB), month, day) ? `${yearB}-${pad(month)}-${pad(day)}` : null;
      else until = nextOccurrence(from, month, day);
    }
    return { text: sentenceAround(source, m.index, m[0].length), until };
  }
  return null;
}
