import { cronRoute } from '../../../lib/cron/route.js';
import { inboxSyncJob } from '../../../lib/jobs/inbox-sync/index.js';

export default cronRoute(inboxSyncJob);
