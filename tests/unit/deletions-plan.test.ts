import { describe, expect, it } from 'vitest';
import {
  decideDeletion,
  emailSha256,
  handlesGlobalWork,
  isDeletionDue,
  newOwner,
  reminderWindow,
  type LockedUser,
  type OtherUser,
} from '../../lib/jobs/account-deletions/plan.js';
import { confirmationMail, reminderMail } from '../../lib/jobs/account-deletions/messages.js';

const now = new Date('2026-03-10T02:00:00Z');
const days = (n: number) => new Date(now.getTime() + n * 86_400_000);

const user = (over: Partial<LockedUser> = {}): LockedUser => ({
  id: 1,
  email: 'Jeanne@Example.fr',
  fullName: 'Jeanne Martin',
  role: 'owner',
  companyId: 7,
  isActive: true,
  deletionRequestedAt: days(-30),
  deletionScheduledAt: days(0),
  ...over,
});
const other = (over: Partial<OtherUser> = {}): OtherUser => ({
  id: 2,
  role: 'user',
  isActive: true,
  createdAt: days(-400),
  deletionRequestedAt: null,
  ...over,
});

describe('decideDeletion (the re-check under the row lock)', () => {
  it('a request cancelled before the lock (both columns null) is never deleted', () => {
    const locked = user({ deletionRequestedAt: null, deletionScheduledAt: null });
    expect(decideDeletion({ selectedCompanyId: 7, locked, others: [], now })).toEqual({ kind: 'skip', reason: 'cancelled' });
  });
  it('a request pushed back into the future is not due', () => {
    expect(decideDeletion({ selectedCompanyId: 7, locked: user({ deletionScheduledAt: days(3) }), others: [], now }).kind).toBe('skip');
  });
  it('a user already deleted by another run is skipped', () => {
    expect(decideDeletion({ selectedCompanyId: 7, locked: undefined, others: [], now })).toEqual({ kind: 'skip', reason: 'gone' });
  });
  it('a user moved to another company since the selection is skipped (the lock was taken on the old company)', () => {
    expect(decideDeletion({ selectedCompanyId: 7, locked: user({ companyId: 8 }), others: [], now })).toEqual({
      kind: 'skip',
      reason: 'moved',
    });
  });
  it('the last active user of the company: the whole company (inactive users do not keep it alive)', () => {
    const others = [other({ isActive: false })];
    expect(decideDeletion({ selectedCompanyId: 7, locked: user(), others, now })).toEqual({ kind: 'company', companyId: 7 });
  });
  it('another active user remains: only this user, and ownership is handed over', () => {
    expect(decideDeletion({ selectedCompanyId: 7, locked: user(), others: [other()], now })).toEqual({
      kind: 'user',
      companyId: 7,
      handOverTo: 2,
    });
  });
  it('a user without company (super_admin): only the user', () => {
    expect(decideDeletion({ selectedCompanyId: null, locked: user({ companyId: null, role: 'super_admin' }), others: [], now })).toEqual({
      kind: 'user',
      companyId: null,
      handOverTo: null,
    });
  });
  it('is due exactly at deletion_scheduled_at, not a millisecond before', () => {
    expect(isDeletionDue({ deletionRequestedAt: days(-30), deletionScheduledAt: now }, now)).toBe(true);
    expect(isDeletionDue({ deletionRequestedAt: days(-30), deletionScheduledAt: new Date(now.getTime() + 1) }, now)).toBe(false);
    expect(isDeletionDue({ deletionRequestedAt: null, deletionScheduledAt: days(-1) }, now)).toBe(false);
  });
});

describe('newOwner', () => {
  it('the oldest remaining active user becomes owner', () => {
    const others = [
      other({ id: 3, createdAt: days(-10) }),
      other({ id: 4, createdAt: days(-200) }),
      other({ id: 5, createdAt: days(-100) }),
    ];
    expect(newOwner({ role: 'owner' }, others)).toBe(4);
  });
  it('ties on creation time are broken by id', () => {
    expect(newOwner({ role: 'owner' }, [other({ id: 9, createdAt: days(-5) }), other({ id: 6, createdAt: days(-5) })])).toBe(6);
  });
  it('someone who is leaving too comes after the others, even if older', () => {
    const others = [other({ id: 3, createdAt: days(-500), deletionRequestedAt: days(-2) }), other({ id: 4, createdAt: days(-10) })];
    expect(newOwner({ role: 'owner' }, others)).toBe(4);
  });
  it('no hand-over when the leaving user is not owner, or another owner remains', () => {
    expect(newOwner({ role: 'user' }, [other()])).toBeNull();
    expect(newOwner({ role: 'owner' }, [other({ id: 3, role: 'owner' }), other({ id: 4 })])).toBeNull();
  });
});

describe('J-7 reminder window', () => {
  // the rule itself is SQL (sql.ts reminderDueWhere), tested against PostgreSQL in tests/integration/deletions-reminders.test.ts
  it('is the 7 days after now, now excluded', () => {
    expect(reminderWindow(now)).toEqual({ after: now, until: days(7) });
  });
});

describe('helpers', () => {
  it('the log keeps only sha256 of the trimmed, lowercased address', () => {
    expect(emailSha256(' Jeanne@Example.FR ')).toBe(emailSha256('jeanne@example.fr'));
    expect(emailSha256('jeanne@example.fr')).toMatch(/^[0-9a-f]{64}$/);
    expect(emailSha256('jeanne@example.fr')).not.toContain('jeanne');
  });
  it('company-less work belongs to unscoped runs and shard 0 only', () => {
    expect(handlesGlobalWork({})).toBe(true);
    expect(handlesGlobalWork({ shard: { k: 0, n: 4 } })).toBe(true);
    expect(handlesGlobalWork({ shard: { k: 1, n: 4 } })).toBe(false);
    expect(handlesGlobalWork({ companyId: 3 })).toBe(false);
  });
});

describe('French emails', () => {
  it('the reminder gives the date in the company zone and how to cancel', () => {
    const m = reminderMail({
      userId: 1,
      to: 'jeanne@example.fr',
      fullName: 'Jeanne',
      scheduledAt: new Date('2026-03-17T02:00:00Z'),
      timezone: 'Europe/Paris',
      from: 'Lokario <noreply@lokario.fr>',
      frontendUrl: 'https://app.lokario.fr',
    });
    expect(m.subject).toBe('Votre compte Lokario sera supprimé le 17/03/2026');
    expect(m.text).toContain('17/03/2026 à 03:00');
    expect(m.text).toContain('https://app.lokario.fr/login');
    expect(m.messageId).toMatch(/^<lokario\.deletion-reminder\.1\.\d+@lokario\.fr>$/);
  });
  it('the confirmation of a company deletion mentions the retained invoices', () => {
    const m = confirmationMail({
      userId: 1,
      logId: 5,
      to: 'jeanne@example.fr',
      fullName: null,
      scope: 'company',
      companyName: 'Boulangerie Martin',
      deletedAt: now,
      timezone: null,
      retainedInvoices: 3,
      from: 'Lokario <noreply@lokario.fr>',
    });
    expect(m.subject).toBe('Votre compte Lokario a été supprimé');
    expect(m.text).toMatch(/^Bonjour,/);
    expect(m.text).toContain('Boulangerie Martin');
    expect(m.text).toContain('Les factures émises (3)');
    expect(m.messageId).toBe('<lokario.account-deleted.1.5@lokario.fr>');
  });
});
