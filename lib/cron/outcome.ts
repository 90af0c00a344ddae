/**
 * What one run of the contract came to, independent of who asked: the HTTP route maps it to a
 * status code (`httpStatusOf`), the CLI to an exit code (`exitCodeOf`), the scheduler and the
 * console read the body. docs/contract.md lists every response.
 */
export type OutcomeKind =
  /** the job ran (possibly partially: `body.partial`) */
  | 'ran'
  /** another run of the same job (and shard) holds the lease: nothing done, not a failure */
  | 'skipped'
  /** a fan-out shard holds its lease and goes on working after the answer */
  | 'accepted'
  /** the database could not be opened, or the job threw */
  | 'failed'
  /** the job exists in the registry but has no implementation */
  | 'not_implemented';

export type RunOutcome = { kind: OutcomeKind; body: Record<string, unknown> };

const HTTP_STATUS: Record<OutcomeKind, number> = {
  ran: 200,
  skipped: 200, // a schedule firing twice is normal; 200 keeps cron services from alerting on it
  accepted: 202,
  failed: 500,
  not_implemented: 501,
};

export function httpStatusOf(outcome: Pick<RunOutcome, 'kind'>): number {
  return HTTP_STATUS[outcome.kind];
}

/** `npm run job`: 0 when the job ran or was rightly skipped, 1 otherwise (2, bad usage, is the CLI's own). */
export function exitCodeOf(outcome: RunOutcome): number {
  return (outcome.kind === 'ran' || outcome.kind === 'skipped') && outcome.body.success === true ? 0 : 1;
}
