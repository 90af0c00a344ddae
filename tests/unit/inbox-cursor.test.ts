import { describe, expect, it } from 'vitest';
import { cursorAfter, planSync, uidsToProcess, FIRST_SYNC_DAYS, type Cursor } from '../../lib/jobs/inbox-sync/cursor.js';

const now = new Date('2026-03-10T12:00:00Z');
const DAY = 86_400_000;
const cur = (c: Partial<Cursor>): Cursor => ({ uidValidity: null, lastUid: null, highestModseq: null, lastSyncAt: null, ...c });

describe('planSync (SPEC §5.1.3)', () => {
  it('first sync: the last 14 days by date', () => {
    expect(planSync(cur({}), { uidValidity: 7, uidNext: 100, exists: 99 }, now)).toEqual({
      kind: 'since',
      since: new Date(now.getTime() - FIRST_SYNC_DAYS * DAY),
      reason: 'first-sync',
    });
  });
  it('same UIDVALIDITY and UIDNEXT unchanged: up to date (no fetch at all)', () => {
    expect(planSync(cur({ uidValidity: 7, lastUid: 99 }), { uidValidity: 7, uidNext: 100, exists: 99 }, now)).toEqual({
      kind: 'up-to-date',
    });
  });
  it('defect 12: new mail is fetched by UID above the cursor, whatever its date (no day-granular window)', () => {
    expect(
      planSync(
        cur({ uidValidity: 7, lastUid: 99, lastSyncAt: new Date(now.getTime() - 3 * DAY) }),
        { uidValidity: 7, uidNext: 140, exists: 139 },
        now,
      ),
    ).toEqual({ kind: 'uid-range', fromUid: 100 });
  });
  it('new UIDVALIDITY: forget the cursor, re-scan the first-sync window at least', () => {
    const p = planSync(
      cur({ uidValidity: 7, lastUid: 99, lastSyncAt: new Date(now.getTime() - DAY) }),
      { uidValidity: 8, uidNext: 5, exists: 4 },
      now,
    );
    expect(p).toEqual({ kind: 'since', since: new Date(now.getTime() - FIRST_SYNC_DAYS * DAY), reason: 'uidvalidity-changed' });
  });
  it('new UIDVALIDITY after a long outage: re-scan back to one day before the last successful sync', () => {
    const last = new Date(now.getTime() - 40 * DAY);
    const p = planSync(cur({ uidValidity: 7, lastUid: 99, lastSyncAt: last }), { uidValidity: 8, uidNext: 5, exists: 4 }, now);
    expect(p).toEqual({ kind: 'since', since: new Date(last.getTime() - DAY), reason: 'uidvalidity-changed' });
  });
  it('empty folder: nothing to fetch', () => {
    expect(planSync(cur({}), { uidValidity: 7, uidNext: 1, exists: 0 }, now)).toEqual({ kind: 'empty' });
  });
});

describe('uidsToProcess', () => {
  it('filters the `n:*` answer that returns the last message when n is above every UID', () => {
    expect(uidsToProcess([99], 100)).toEqual([]);
    expect(uidsToProcess([105, 101, 101, 99], 100)).toEqual([101, 105]);
  });
});

describe('cursorAfter', () => {
  const folder = { uidValidity: 7, uidNext: 120, exists: 10, highestModseq: '55' };
  it('complete run: UIDNEXT − 1, so the next run takes the fast path', () => {
    expect(cursorAfter(folder, [110, 115], 2, cur({ uidValidity: 7, lastUid: 100 }))).toEqual({
      uidValidity: 7,
      lastUid: 119,
      highestModseq: '55',
    });
  });
  it('cut run: the last UID handled, so the next run resumes right after it (no gap)', () => {
    expect(cursorAfter(folder, [110, 115, 118], 1, cur({ uidValidity: 7, lastUid: 100 }))).toEqual({
      uidValidity: 7,
      lastUid: 110,
      highestModseq: null,
    });
  });
  it('cut before the first message of a re-scan: just below it, never past it', () => {
    expect(cursorAfter({ ...folder, uidValidity: 8 }, [3, 4], 0, cur({ uidValidity: 7, lastUid: 100 }))).toEqual({
      uidValidity: 8,
      lastUid: 2,
      highestModseq: null,
    });
  });
  it('never moves backwards', () => {
    expect(cursorAfter(folder, [], 0, cur({ uidValidity: 7, lastUid: 130 })).lastUid).toBe(130);
  });
});
