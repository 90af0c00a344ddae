/** The domain of an address like `Lokario <noreply@lokario.fr>`. */
export function domainOf(address: string): string {
  const m = /@([A-Za-z0-9.-]+)>?\s*$/.exec(address.trim());
  return m ? m[1].toLowerCase() : 'lokario.local';
}

/**
 * A Message-ID that is the same every time the same logical email is built (e.g. one follow-up
 * step), so a receiving server or a re-import can recognise a duplicate.
 */
export function deterministicMessageId(kind: string, parts: ReadonlyArray<string | number>, fromAddress: string): string {
  const local = [kind, ...parts.map((p) => String(p).replace(/[^A-Za-z0-9-]/g, '_'))].join('.');
  return `<lokario.${local}@${domainOf(fromAddress)}>`;
}

/** Message-ID without angle brackets and surrounding space, compared exactly (docs/inbox-sync.md, "Dedupe key"). */
export function normaliseMessageId(raw: string | null | undefined): string | null {
  if (!raw) return null;
  let s = raw.trim();
  // a header with several ids (broken, but seen): the first one is the message's
  const bracketed = /<([^<>]*)>/.exec(s);
  if (bracketed) s = bracketed[1];
  s = s.replace(/[\s<>]+/g, '');
  return s.length > 0 && s.length <= 995 ? s : null; // 998 is the RFC 5322 line limit
}

/** The ids of a References / In-Reply-To header, in header order. */
export function parseIdList(raw: string | string[] | null | undefined): string[] {
  if (!raw) return [];
  const text = Array.isArray(raw) ? raw.join(' ') : raw;
  const ids = [...text.matchAll(/<([^<>]+)>/g)].map((m) => normaliseMessageId(m[1])).filter((x): x is string => !!x);
  if (ids.length) return ids;
  return text
    .split(/\s+/)
    .map((x) => normaliseMessageId(x))
    .filter((x): x is string => !!x);
}
