import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadDotEnv } from '../../lib/local/dotenv.js';

describe('.env for the local scripts', () => {
  const keys = ['LOKARIO_TEST_FROM_FILE', 'LOKARIO_TEST_ALREADY_SET'];
  afterEach(() => {
    for (const k of keys) delete process.env[k];
  });

  it('loads the file; a variable already in the environment wins; none and a missing file load nothing', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lokario-env-'));
    const file = path.join(dir, '.env');
    fs.writeFileSync(file, 'LOKARIO_TEST_FROM_FILE=from-file\nLOKARIO_TEST_ALREADY_SET=from-file\n');
    process.env.LOKARIO_TEST_ALREADY_SET = 'from-env';
    try {
      expect(loadDotEnv('none')).toBe(false);
      expect(process.env.LOKARIO_TEST_FROM_FILE).toBeUndefined();
      expect(loadDotEnv(path.join(dir, 'missing.env'))).toBe(false);
      expect(loadDotEnv(file)).toBe(true);
      expect(process.env.LOKARIO_TEST_FROM_FILE).toBe('from-file');
      expect(process.env.LOKARIO_TEST_ALREADY_SET).toBe('from-env');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
