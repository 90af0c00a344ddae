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
