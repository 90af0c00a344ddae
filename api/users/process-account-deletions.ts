import { cronRoute } from '../../lib/cron/route.js';
import { accountDeletionsJob } from '../../lib/jobs/account-deletions/index.js';

export default cronRoute(accountDeletionsJob);
