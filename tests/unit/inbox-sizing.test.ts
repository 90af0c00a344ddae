import { describe, expect, it } from 'vitest';
import {
  FETCH_GROUP_BYTES,
  META_CHUNK,
  MIN_META_CHUNK,
  MIN_SAMPLE_BYTES,
  MIN_SAMPLE_MS,
  SEGMENT_BYTES,
  SEGMENT_MESSAGES,
  linkTooSlowNote,
  nextThroughput,
  syncLimits,
} from '../../lib/imap/sizing.js';
import { mailboxProgress } from '../../lib/jobs/inbox-sync/attention.js';

describe('syncLimits: segments sized by the link', () => {
  it('an unmeasured link gets the defaults and no link size rule', () => {
    expect(syncLimits(null, 22_000)).toEqual({
      segmentMessages: SEGMENT_MESSAGES,
      segmentBytes: SEGMENT_BYTES,
      fetchGroupBytes: FETCH_GROUP_BYTES,
      metaChunk: META_CHUNK,
      linkMaxMessageBytes: null,
    });
  });
  it('a fast link keeps the defaults (capped), and a large message limit', () => {
    const l = syncLimits(50 * 1024 * 1024, 22_000);
    expect(l).toMatchObject({ segmentBytes: SEGMENT_BYTES, fetchGroupBytes: FETCH_GROUP_BYTES, metaChunk: META_CHUNK });
    expect(l.linkMaxMessageBytes).toBeGreaterThan(100 * 1024 * 1024);
  });
  it('a 20 KB/s link with a 22 s window: four segments a window, small meta FETCHes, what one run can carry as the message limit', () => {
    const l = syncLimits(20 * 1024, 22_000);
    const deliverable = 20 * 1024 * 22;
    expect(l.segmentBytes).toBe(Math.floor(deliverable / 4));
    expect(l.segmentBytes * 4).toBeLessThanOrEqual(deliverable);
    expect(l.fetchGroupBytes).toBe(deliverable);
    expect(l.metaChunk).toBeLessThan(META_CHUNK);
    expect(l.metaChunk * 128).toBeLessThanOrEqual(deliverable / 4);
    expect(l.linkMaxMessageBytes).toBeLessThan(deliverable);
    expect(l.linkMaxMessageBytes).toBeGreaterThan(deliverable / 4);
  });
  it('a crawling link still asks for at least a few UIDs and one small segment', () => {
    const l = syncLimits(100, 5_000);
    expect(l.metaChunk).toBe(MIN_META_CHUNK);
    expect(l.segmentBytes).toBeGreaterThan(0);
    expect(l.segmentMessages).toBe(SEGMENT_MESSAGES);
  });
  it('a slower link never gets larger segments', () => {
    let previous = Infinity;
    for (const rate of [10_000_000, 1_000_000, 100_000, 20_000, 5_000, 1_000]) {
      const l = syncLimits(rate, 22_000);
      expect(l.segmentBytes).toBeLessThanOrEqual(previous);
      previous = l.segmentBytes;
    }
  });
});

describe('nextThroughput: bytes per second from the previous runs', () => {
  it('a first meaningful sample is taken as is', () => {
    expect(nextThroughput(null, 200_000, 10_000)).toBe(20_000);
  });
  it('later samples are blended, so a change is followed within a couple of runs', () => {
    expect(nextThroughput(20_000, 400_000, 10_000)).toBe(30_000);
    expect(nextThroughput(20_000, 100_000, 10_000)).toBe(15_000);
  });
  it('a sample too short or too small keeps the previous value', () => {
    expect(nextThroughput(20_000, 1_000_000, MIN_SAMPLE_MS - 1)).toBe(20_000);
    expect(nextThroughput(20_000, MIN_SAMPLE_BYTES - 1, 60_000)).toBe(20_000);
    expect(nextThroughput(null, 10, 10)).toBeNull();
  });
});

describe('linkTooSlowNote', () => {
  it('says in French why the message is not imported', () => {
    expect(linkTooSlowNote(3 * 1024 * 1024, 20 * 1024)).toBe(
      '[Message de 3,0 Mo non importé : la liaison avec le serveur de messagerie (environ 20 Ko/s) ne permet pas de le télécharger pendant une synchronisation. Consultez-le dans votre messagerie.]',
    );
    expect(linkTooSlowNote(300 * 1024, 2048)).toMatch(/^\[Message de 300 Ko non importé/);
  });
});

describe('mailboxProgress (/cron/status)', () => {
  const now = new Date('2026-03-10T10:00:00Z');
  const interval = 5 * 60_000;
  const ago = (min: number) => new Date(now.getTime() - min * 60_000);
  it('caught up, advancing, stalled, never', () => {
    expect(mailboxProgress({ last_sync_status: 'success', last_progress_at: ago(600) }, interval, now)).toBe('caught-up');
    expect(mailboxProgress({ last_sync_status: 'partial', last_progress_at: ago(5) }, interval, now)).toBe('advancing');
    expect(mailboxProgress({ last_sync_status: 'partial', last_progress_at: ago(15) }, interval, now)).toBe('advancing');
    expect(mailboxProgress({ last_sync_status: 'partial', last_progress_at: ago(16) }, interval, now)).toBe('stalled');
    expect(mailboxProgress({ last_sync_status: 'partial', last_progress_at: null }, interval, now)).toBe('stalled');
    expect(mailboxProgress({ last_sync_status: 'error', last_progress_at: ago(2) }, interval, now)).toBe('advancing');
    expect(mailboxProgress({ last_sync_status: null, last_progress_at: null }, interval, now)).toBe('never');
  });
});
