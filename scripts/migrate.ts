/** `npm run db:migrate`: applies the committed migrations in db/migrations/ to the configured database. */
import { getConfig } from '../lib/config.js';
import { loadDotEnv } from '../lib/local/dotenv.js';
import { migrateDb } from '../db/client.js';
import { closeAllDbs } from '../db/client.js';

loadDotEnv();
const config = getConfig();
const started = Date.now();
await migrateDb({ driver: config.databaseDriver, url: config.DATABASE_URL, pgliteDir: config.PGLITE_DIR });
await closeAllDbs();
console.log(`migrations applied (${config.databaseDriver}) in ${Date.now() - started} ms`);
