import fs from 'node:fs';
import { describe, expect, it } from 'vitest';

describe('.env.example', () => {
  it('documents every variable that lib/config.ts reads, and nothing else', () => {
    const example = fs.readFileSync(new URL('../../.env.example', import.meta.url), 'utf8');
    const documented = [...example.matchAll(/^([A-Z_][A-Z0-9_]*)=/gm)].map((m) => m[1]).sort();
    const config = fs.readFileSync(new URL('../../lib/config.ts', import.meta.url), 'utf8');
    const start = config.indexOf('const EnvSchema = z.object({');
    const schema = config.slice(start, config.indexOf('});', start));
    const read = [...schema.matchAll(/^\s+([A-Z_][A-Z0-9_]*):/gm)]
      .map((m) => m[1])
      .filter((v) => !['NODE_ENV', 'VERCEL_ENV', 'CONTEXT'].includes(v))
      .sort();
    expect(documented).toEqual(read);
  });
});
