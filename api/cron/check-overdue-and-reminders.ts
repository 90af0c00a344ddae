import { cronRoute } from '../../lib/cron/route.js';
import { overdueRemindersJob } from '../../lib/jobs/overdue-reminders/index.js';

export default cronRoute(overdueRemindersJob);
