import { statusRoute } from '../../lib/cron/route.js';

export default statusRoute();
