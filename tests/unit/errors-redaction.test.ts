import { describe, expect, it } from 'vitest';
import { publicError, publicErrorText } from '../../lib/cron/errors.js';
import { redactText, redactUrl } from '../../lib/log.js';
import { parseRunParams } from '../../lib/cron/params.js';
import { ambiguousCredentials } from '../../lib/cron/auth.js';
import { parseConfig } from '../../lib/config.js';

describe('publicError: the driver cause, without SQL, hosts or ports', () => {
  it('unwraps drizzle’s "Failed query" to the PostgreSQL error', () => {
    const pgErr = Object.assign(new Error('relation "x" does not exist'), { code: '42P01' });
    const wrapped = Object.assign(new Error('Failed query: select * from x where email = $1\nparams: a@b.fr'), { cause: pgErr });
    expect(publicError(wrapped)).toEqual({ code: 'database_error', message: 'relation "x" does not exist' });
  });

  it('a socket error keeps its kind, loses its address', () => {
    const sock = Object.assign(new Error('connect ECONNREFUSED 10.1.2.3:5432'), { code: 'ECONNREFUSED' });
    expect(publicError(Object.assign(new Error('Failed query: select 1'), { cause: sock }))).toEqual({
      code: 'connection_error',
      message: 'connect ECONNREFUSED [address]',
    });
    expect(
      publicError(Object.assign(new Error('getaddrinfo ENOTFOUND ep-cool-name.eu-central-1.aws.neon.tech'), { code: 'ENOTFOUND' })).message,
    ).toBe('getaddrinfo ENOTFOUND [address]');
  });

  it.each([
    ['connection to [fe80::1]:5432 lost', 'connection to [address] lost'],
    ['connect to ::1 refused', 'connect to [address] refused'],
    ['db.internal.example:6543 timed out', '[address] timed out'],
    ['server at port 5432 closed', 'server at port [port] closed'],
    ['bad url postgres://u:p@h:5/db here', 'bad url [url] here'],
    ['Failed query: delete from users', 'a database statement failed'],
    ['rendez-vous à 10:00 le 11/03/2026', 'rendez-vous à 10:00 le 11/03/2026'],
    ['company_info.timezone: "local"', 'company_info.timezone: "local"'],
  ])('%j → %j', (input, out) => {
    expect(publicErrorText(input)).toBe(out);
  });

  it('our own coded errors keep their code and message', () => {
    expect(publicError(Object.assign(new Error('2 part(s) failed'), { code: 'part_failed' }))).toEqual({
      code: 'part_failed',
      message: '2 part(s) failed',
    });
  });
});

describe('redaction after URL decoding', () => {
  const S = 'topsecret-value';
  it.each([
    `/x?s%65cret=${S}`,
    `/x?%73ecret=${encodeURIComponent(S)}`,
    `/x?secret=%74%6f%70secret-value`,
    `/x?s%2565cret=%2574opsecret-value`,
    `/x?api_key=${S}`,
    `/x?Secret=${S}`,
  ])('%s', (url) => {
    for (const out of [redactUrl(url, []), redactText(url, [])]) {
      expect(out).not.toContain(S);
      expect(out).toContain('[REDACTED]');
    }
    expect(redactUrl(url, [S])).not.toContain(S);
  });

  it('keeps what is not a credential readable', () => {
    expect(redactUrl('/followups/process-automatic?dryRun=1&companyId=3', [])).toBe('/followups/process-automatic?dryRun=1&companyId=3');
  });
});

describe('params and credentials', () => {
  const config = parseConfig({});
  it('companyId is bounded to a PostgreSQL integer', () => {
    expect(parseRunParams({ companyId: '2147483647' }, config).scope.companyId).toBe(2147483647);
    for (const v of ['2147483648', '99999999999', '9'.repeat(400)])
      expect(() => parseRunParams({ companyId: v }, config), v).toThrow(/companyId/);
  });
  it('credentials sent twice are ambiguous', () => {
    expect(ambiguousCredentials(['Authorization', 'Bearer a', 'authorization', 'Bearer a'], undefined)).toMatch(/more than once/);
    expect(ambiguousCredentials(['Host', 'x'], ['a', 'a'])).toMatch(/more than once/);
    expect(ambiguousCredentials(['Authorization', 'Bearer a'], 'a')).toBeNull();
  });
});
