import { statusRoute } from '../../lib/cron/route.js';
import { JOB_REGISTRY } from '../../lib/jobs/registry.js';

export default statusRoute(JOB_REGISTRY);
