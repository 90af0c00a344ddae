/**
 * Per-mail-host cap on concurrent IMAP connections (docs/scale.md). Gmail, Microsoft 365 and OVH
 * throttle and refuse logins when too many arrive at once from one client. The cap is for all
 * shards of a sweep together: each of `n` shards gets floor(cap / n) (at least one), so `n` shards
 * never open more than `cap` connections to one host while `n ≤ cap`.
 */
import pLimit, { type LimitFunction } from 'p-limit';

/** Pure: one shard's share of the host cap. */
export function hostCapPerShard(totalCap: number, shards: number | undefined): number {
  return Math.max(1, Math.floor(totalCap / Math.max(1, shards ?? 1)));
}

/** Host names compare case-insensitively, without a trailing dot. */
export function hostKey(host: string): string {
  return host.trim().toLowerCase().replace(/\.$/, '');
}

/** Runs each task with at most `cap` tasks at once per host. */
export function createHostLimiter(cap: number) {
  const limits = new Map<string, LimitFunction>();
  return <T>(host: string, task: () => Promise<T>): Promise<T> => {
    const key = hostKey(host);
    let l = limits.get(key);
    if (!l) { l = pLimit(cap); limits.set(key, l); }
    return l(task);
  };
}
