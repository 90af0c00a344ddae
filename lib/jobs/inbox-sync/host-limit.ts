/**
 * Per-mail-host cap on concurrent IMAP connections (docs/scale.md). Gmail, Microsoft 365 and OVH
 * throttle and refuse logins when too many arrive at once from one client address. The cap is per
 * process: every run in this instance (with Fluid compute, several shards may share one) counts
 * against the same slots, so one source address never has more than the cap open to one host.
 */
import pLimit, { type LimitFunction } from 'p-limit';

/** Host names compare case-insensitively, without a trailing dot. */
export function hostKey(host: string): string {
  return host.trim().toLowerCase().replace(/\.$/, '');
}

const processLimits = new Map<string, LimitFunction>();

/** Runs each task with at most `cap` tasks at once per host, across every run of this process. */
export function createHostLimiter(cap: number, limits: Map<string, LimitFunction> = processLimits) {
  return <T>(host: string, task: () => Promise<T>): Promise<T> => {
    const key = `${cap}|${hostKey(host)}`;
    let l = limits.get(key);
    if (!l) {
      l = pLimit(cap);
      limits.set(key, l);
    }
    return l(task);
  };
}
