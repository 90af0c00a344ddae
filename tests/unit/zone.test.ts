import { describe, expect, it } from 'vitest';
import { checkZone, isKnownZone, safeZone, zoneSql, DEFAULT_TIMEZONE } from '../../lib/time/zone.js';
import { parseCompanySettings } from '../../lib/settings.js';

describe('the one zone rule (lib/time/zone.ts), without a database: the luxon half', () => {
  it('accepts IANA names, refuses luxon keywords, offsets and nonsense', () => {
    for (const z of ['Europe/Paris', 'America/Guadeloupe', 'Indian/Reunion', 'UTC', 'Etc/GMT+5']) expect(isKnownZone(z), z).toBe(true);
    for (const z of [
      'local',
      'system',
      'default',
      'UTC+5',
      'GMT-03:00',
      '+02:00',
      'Mars/Olympus',
      'Europe/Paris ',
      '',
      42,
      null,
      ['Europe/Paris'],
    ]) {
      expect(isKnownZone(z), String(z)).toBe(false);
    }
  });

  it('checkZone: default without a problem when unset, default with a problem when unusable', () => {
    expect(checkZone(undefined)).toEqual({ zone: DEFAULT_TIMEZONE, problem: null });
    expect(checkZone('America/Martinique')).toEqual({ zone: 'America/Martinique', problem: null });
    expect(checkZone('local').zone).toBe(DEFAULT_TIMEZONE);
    expect(checkZone('local').problem).toMatch(/company_info\.timezone: "local"/);
    expect(safeZone(7)).toBe(DEFAULT_TIMEZONE);
  });

  it('parseCompanySettings reports a zone of the wrong type as a zone problem', () => {
    const { settings, problems } = parseCompanySettings({ company_info: { timezone: 42, email: 'a@b.fr' } });
    expect(settings.companyInfo.timezone).toBe(DEFAULT_TIMEZONE);
    expect(problems.some((p) => p.startsWith('company_info.timezone'))).toBe(true);
  });

  it('zoneSql refuses to run before PostgreSQL’s names are loaded (a statement must never guess)', () => {
    expect(() => zoneSql({} as never)).toThrow(/loadPostgresZones/);
  });
});
