import { describe, inject } from 'vitest';

/**
 * `describe` for tests that need a system service. Missing service: with CI=true the tests run
 * and fail loudly; locally they are reported as skipped, never passed.
 */
export function describeWithService(available: boolean, service: string) {
  if (available || process.env.CI) return describe;
  console.warn(`!! ${service} is not available: these tests are SKIPPED (CI fails instead)`);
  return describe.skip;
}

export const hasPostgres = () => inject('pgTemplate') !== '';
/** describe() for tests on the real PostgreSQL server. */
export const describePg = (name: string, fn: () => void) => describeWithService(hasPostgres(), 'PostgreSQL')(name, fn);
