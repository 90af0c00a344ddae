/** The follow-ups due now, for a fan-out coordinator (docs/scale.md). */
import type { Executor } from '../../../db/client.js';
import { countDue } from './sql.js';

export function countDueFollowups(db: Executor, now: Date): Promise<number> {
  return countDue(db, {}, now);
}
