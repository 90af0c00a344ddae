import { consoleRoute } from '../../lib/console/route.js';
import { JOB_REGISTRY } from '../../lib/jobs/registry.js';

export default consoleRoute(JOB_REGISTRY);
