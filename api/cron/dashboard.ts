import { consoleRoute } from '../../lib/console/route.js';

export default consoleRoute();
