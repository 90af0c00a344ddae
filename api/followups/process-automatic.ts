import { cronRoute } from '../../lib/cron/route.js';
import { followupsJob } from '../../lib/jobs/followups/index.js';

export default cronRoute(followupsJob);
