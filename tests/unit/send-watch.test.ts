import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { deadlineCut } from '../../lib/mail/send-watch.js';

// the run's deadline cuts a transport with one timer (docs/sending.md, "Deadlines")
describe('deadlineCut', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(new Date('2026-03-11T10:00:00Z'));
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('cuts the transport once at the deadline; the sends of that generation know it, later ones do not', () => {
    const cuts: number[] = [];
    const cut = deadlineCut(() => cuts.push(Date.now()));
    const at = Date.now() + 5_000;
    const g = cut.arm(at);
    expect(cut.arm(at)).toBe(g); // every send of the run: one timer
    vi.advanceTimersByTime(4_999);
    expect(cuts).toEqual([]);
    expect(cut.wasCut(g)).toBe(false);
    vi.advanceTimersByTime(1);
    expect(cuts).toEqual([at]);
    expect(cut.wasCut(g)).toBe(true);
    // a send after the cut (a new transport) is not reported as cut
    const g2 = cut.arm(Date.now() + 1_000);
    expect(cut.wasCut(g2)).toBe(false);
  });

  it('the earliest deadline asked for wins; clear() disarms it', () => {
    const cuts: number[] = [];
    const cut = deadlineCut(() => cuts.push(Date.now()));
    const start = Date.now();
    cut.arm(start + 9_000);
    const g = cut.arm(start + 3_000);
    cut.arm(start + 6_000);
    vi.advanceTimersByTime(3_000);
    expect(cuts).toEqual([start + 3_000]);
    expect(cut.wasCut(g)).toBe(true);
    cut.arm(Date.now() + 1_000);
    cut.clear();
    vi.advanceTimersByTime(10_000);
    expect(cuts).toHaveLength(1);
  });
});
