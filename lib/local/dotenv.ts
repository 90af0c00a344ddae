import fs from 'node:fs';

/**
 * Local scripts only (npm start, job, demo, db:migrate): reads `.env` (or the file named by
 * ENV_FILE; `ENV_FILE=none` reads nothing, as the tests do) with Node's own parser. Variables
 * already set in the environment win. Vercel sets its own.
 */
export function loadDotEnv(file = process.env.ENV_FILE ?? '.env'): boolean {
  if (file === 'none' || !fs.existsSync(file)) return false;
  const before = { ...process.env };
  process.loadEnvFile(file);
  Object.assign(process.env, before);
  return true;
}
