/**
 * Header fuzzing for the MIME reader: copies of real messages with random header lines of their
 * parts (the message's own block and every MIME part's) emptied or truncated, from a seeded
 * PRNG so that a failure names its seed and reproduces.
 */

/** mulberry32: a small, well-known seeded PRNG (reproducible runs, no dependency). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Indexes of the lines that belong to a header block: the message's, and each part's after a boundary line. */
export function headerLineIndexes(lines: string[]): number[] {
  const out: number[] = [];
  let inHeader = true;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    if (inHeader) {
      if (l === '') {
        inHeader = false;
        continue;
      }
      if (/^[!-9;-~]+:/.test(l) || /^[ \t]/.test(l)) out.push(i);
    } else if (/^--\S/.test(l) && !/--\s*$/.test(l.slice(2))) {
      inHeader = true; // a boundary: a part's header block follows
    }
  }
  return out;
}

const MUTATIONS = [
  // the value emptied, as in `Content-Type: ;`
  (name: string) => `${name}:`,
  (name: string) => `${name}: ;`,
  (name: string) => `${name}: `,
  // the value cut at a random place
  (name: string, value: string, r: () => number) => `${name}:${value.slice(0, Math.floor(r() * value.length))}`,
  // the parameters cut: `multipart/mixed; boundary="ab` (an open quote), `text/plain; charset=`
  (name: string, value: string, r: () => number) => {
    const semi = value.indexOf(';');
    return semi < 0 ? `${name}:${value}` : `${name}:${value.slice(0, semi + 1 + Math.floor(r() * (value.length - semi)))}`;
  },
] as const;

/** A copy of `raw` with 1 to 4 of its header lines emptied or truncated; what was changed, for the report. */
export function mutateHeaders(raw: Buffer, r: () => number): { raw: Buffer; changed: string[] } {
  const text = raw.toString('latin1');
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const lines = text.split(eol);
  const candidates = headerLineIndexes(lines).filter((i) => !/^[ \t]/.test(lines[i]));
  const changed: string[] = [];
  const n = 1 + Math.floor(r() * 4);
  for (let k = 0; k < n && candidates.length; k++) {
    // part headers that steer the parser are chosen more often: they are what breaks readers
    const steering = candidates.filter((i) => /^content-(type|transfer-encoding|disposition):/i.test(lines[i]));
    const pool = steering.length && r() < 0.7 ? steering : candidates;
    const i = pool[Math.floor(r() * pool.length)];
    const colon = lines[i].indexOf(':');
    const name = lines[i].slice(0, colon);
    const value = lines[i].slice(colon + 1);
    lines[i] = MUTATIONS[Math.floor(r() * MUTATIONS.length)](name, value, r);
    // a truncated header also loses its folded continuation lines
    while (lines[i + 1] !== undefined && /^[ \t]/.test(lines[i + 1]) && r() < 0.5) lines.splice(i + 1, 1);
    changed.push(`${i}: ${lines[i].slice(0, 80)}`);
  }
  return { raw: Buffer.from(lines.join(eol), 'latin1'), changed };
}
