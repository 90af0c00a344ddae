import { describe, expect, it } from 'vitest';
import { parseCompanySettings } from '../../lib/settings.js';
import {
  STARTER_MONTHLY_QUOTA,
  afterFailure,
  afterSent,
  decideBatch,
  decideFollowup,
  delayBeforeStep,
  inSendWindow,
  retryDelayMs,
  stepDueAt,
  type FollowupFacts,
  type StepRecord,
} from '../../lib/jobs/followups/plan.js';
import { addDays } from '../../lib/time/zone.js';

const NOW = new Date('2026-03-11T10:00:00Z'); // Wednesday 11:00 in Paris
const ALL_WEEK = { start: '00:00', end: '23:59', weekdays: [1, 2, 3, 4, 5, 6, 7] };

function facts(
  over: {
    settings?: Record<string, unknown>;
    plan?: 'STARTER' | 'PROFESSIONAL';
    sentThisMonth?: number;
    companyId?: number;
    invoice?: Partial<NonNullable<FollowupFacts['invoice']>> | null;
    quote?: Partial<NonNullable<FollowupFacts['quote']>>;
    steps?: StepRecord[];
    lastClientMessageAt?: Date | null;
    clientEmail?: string | null;
    client?: null;
    isActive?: boolean;
  } = {},
): FollowupFacts {
  const isQuote = over.quote !== undefined;
  const { settings } = parseCompanySettings(over.settings ?? { followups: { send_window: ALL_WEEK } });
  return {
    followup: {
      id: 1,
      companyId: over.companyId ?? 1,
      clientId: 1,
      type: isQuote ? 'DEVIS_NON_REPONDU' : 'FACTURE_IMPAYEE',
      sourceType: isQuote ? 'quote' : 'invoice',
      sourceId: 1,
      sourceLabel: 'Facture FAC-1',
      dueDate: NOW,
      createdAt: new Date('2026-01-01T00:00:00Z'),
    },
    company: {
      id: over.companyId ?? 1,
      name: 'Atelier',
      isActive: over.isActive ?? true,
      settings,
      plan: over.plan ?? 'PROFESSIONAL',
      sentThisMonth: over.sentThisMonth ?? 0,
    },
    client:
      over.client === null
        ? null
        : { id: 1, name: 'Mme Martin', email: over.clientEmail === undefined ? 'martin@example.com' : over.clientEmail },
    invoice:
      isQuote || over.invoice === null
        ? null
        : {
            id: 1,
            number: 'FAC-1',
            invoiceType: 'FACTURE',
            status: 'ENVOYEE',
            totalCents: 120000,
            paidCents: 0,
            dueDate: new Date('2026-02-01T00:00:00Z'),
            sentAt: new Date('2026-01-15T00:00:00Z'),
            deletedAt: null,
            archivedAt: null,
            ...over.invoice,
          },
    quote: isQuote
      ? {
          id: 1,
          number: 'DEV-1',
          status: 'ENVOYE',
          totalCents: 50000,
          sentAt: new Date('2026-01-15T00:00:00Z'),
          acceptedAt: null,
          refusedAt: null,
          validUntil: null,
          signed: false,
          publicToken: 'tok',
          deletedAt: null,
          ...over.quote,
        }
      : null,
    steps: over.steps ?? [],
    lastClientMessageAt: over.lastClientMessageAt ?? null,
  };
}
const step = (n: number, delivery: StepRecord['delivery'], extra: Partial<StepRecord> = {}): StepRecord => ({
  step: n,
  delivery,
  sentAt: new Date('2026-02-20T10:00:00Z'),
  attempts: 1,
  nextAttemptAt: null,
  messageId: `<m${n}@x>`,
  ...extra,
});

describe('followups rules: due dates (defect 20)', () => {
  it('step k waits relance_delays[k-1] days; the last delay repeats', () => {
    expect([1, 2, 3, 4, 5].map((k) => delayBeforeStep(k, [7, 14, 21]))).toEqual([7, 14, 21, 21, 21]);
    expect(delayBeforeStep(3, [10])).toBe(10);
  });
  it('step 1 is due once the first delay after the anchor, not twice', () => {
    const anchor = new Date('2026-03-04T09:00:00Z');
    expect(stepDueAt(1, anchor, [7, 14, 21], 'Europe/Paris').toISOString()).toBe('2026-03-11T09:00:00.000Z');
  });
  it('days are calendar days in the company zone: 10:00 in Paris stays 10:00 across the DST switch', () => {
    const sent = new Date('2026-03-25T09:00:00Z'); // 10:00 CET
    expect(stepDueAt(3, sent, [7, 14, 21], 'Europe/Paris').toISOString()).toBe('2026-04-15T08:00:00.000Z'); // 10:00 CEST
  });
  it('after step k: next due relance_delays[k] days later; FAIT after max_relances', () => {
    const { settings } = parseCompanySettings({});
    const sent = new Date('2026-03-11T09:00:00Z');
    expect(afterSent(1, sent, settings)).toEqual({ status: 'A_FAIRE', dueDate: addDays(sent, 14, 'Europe/Paris') });
    expect(afterSent(2, sent, settings)).toEqual({ status: 'A_FAIRE', dueDate: addDays(sent, 21, 'Europe/Paris') });
    expect(afterSent(3, sent, settings).status).toBe('FAIT');
  });
});

describe('followups rules: send window', () => {
  const w = { start: '08:00', end: '19:00', weekdays: [1, 2, 3, 4, 5] };
  it.each([
    ['2026-03-14T10:00:00Z', false, 'Saturday'],
    ['2026-03-15T10:00:00Z', false, 'Sunday'],
    ['2026-03-16T06:59:00Z', false, 'Monday 07:59 Paris'],
    ['2026-03-16T07:00:00Z', true, 'Monday 08:00 Paris'],
    ['2026-03-16T17:59:00Z', true, 'Monday 18:59 Paris'],
    ['2026-03-16T18:00:00Z', false, 'Monday 19:00 Paris'],
    ['2026-03-16T23:00:00Z', false, 'Tuesday 00:00 Paris'],
  ])('%s → %s (%s)', (at, expected) => {
    expect(inSendWindow(new Date(at), w, 'Europe/Paris')).toBe(expected);
  });
  it('a window across midnight', () => {
    const night = { start: '22:00', end: '06:00', weekdays: [1, 2, 3, 4, 5, 6, 7] };
    expect(inSendWindow(new Date('2026-03-16T22:30:00Z'), night, 'Europe/Paris')).toBe(true);
    expect(inSendWindow(new Date('2026-03-16T12:00:00Z'), night, 'Europe/Paris')).toBe(false);
  });
});

describe('followups rules: decisions', () => {
  it('a due invoice with a balance is sent as step 1 with the balance as amount', () => {
    const d = decideFollowup(facts({ invoice: { paidCents: 20000 } }), NOW);
    expect(d).toMatchObject({ kind: 'send', step: 1, retry: false, balanceCents: 100000 });
  });
  it.each([
    [{ invoice: { status: 'PAYEE' as const } }, 'invoice_paid'],
    [{ invoice: { paidCents: 120000 } }, 'invoice_paid'],
    [{ invoice: { paidCents: 130000 } }, 'invoice_paid'],
    [{ invoice: { status: 'ANNULEE' as const } }, 'invoice_cancelled'],
    [{ invoice: { invoiceType: 'AVOIR' as const } }, 'credit_note'],
    [{ invoice: { deletedAt: NOW } }, 'source_deleted'],
    [{ invoice: null }, 'source_deleted'],
    [{ invoice: { archivedAt: NOW } }, 'source_archived'],
    [{ invoice: { status: 'BROUILLON' as const } }, 'invoice_not_sent'],
    [{ quote: { status: 'ACCEPTE' as const } }, 'quote_accepted'],
    [{ quote: { signed: true } }, 'quote_accepted'],
    [{ quote: { status: 'REFUSE' as const } }, 'quote_refused'],
    [{ quote: { validUntil: NOW } }, 'quote_expired'],
    [{ quote: { deletedAt: NOW } }, 'source_deleted'],
    [{ client: null }, 'client_deleted'],
    [{ lastClientMessageAt: new Date('2026-03-01T00:00:00Z') }, 'client_replied'],
    [{ steps: [step(1, 'sent'), step(2, 'sent'), step(3, 'sent')] }, 'max_relances'],
  ])('stop: %j → %s', (over, reason) => {
    expect(decideFollowup(facts(over as Parameters<typeof facts>[0]), NOW)).toEqual({ kind: 'stop', reason });
  });
  it('stop_on_quote_refused=false keeps following up a refused quote', () => {
    const d = decideFollowup(
      facts({
        quote: { status: 'REFUSE' },
        settings: { followups: { send_window: ALL_WEEK, stop_conditions: { stop_on_quote_refused: false } } },
      }),
      NOW,
    );
    expect(d.kind).toBe('send');
  });
  it('a client message older than the last step is not a reply to it', () => {
    const d = decideFollowup(facts({ steps: [step(1, 'sent')], lastClientMessageAt: new Date('2026-02-10T00:00:00Z') }), NOW);
    expect(d).toMatchObject({ kind: 'send', step: 2, previousMessageId: '<m1@x>' });
  });
  it.each<[Parameters<typeof facts>[0], string]>([
    [{ steps: [step(1, 'sending')] }, 'in_flight'],
    [{ steps: [step(1, 'unknown')] }, 'delivery_unknown'],
    [{ steps: [step(1, 'failed', { attempts: 3 })] }, 'failed_final'],
    [{ steps: [step(1, 'failed', { nextAttemptAt: new Date(NOW.getTime() + 60_000) })] }, 'retry_backoff'],
    [{ isActive: false }, 'company_inactive'],
    [{ clientEmail: null }, 'no_client_email'],
    [
      { settings: { followups: { send_window: ALL_WEEK, messages: [{ type: 'Facture impayée', content: 'x', method: 'sms' }] } } },
      'channel_unsupported',
    ],
  ])('wait: %j → %s', (over, reason) => {
    expect(decideFollowup(facts(over), NOW)).toEqual({ kind: 'wait', reason });
  });
  it('outside the default window (Saturday) → wait', () => {
    expect(decideFollowup(facts({ settings: {} }), new Date('2026-03-14T10:00:00Z'))).toEqual({
      kind: 'wait',
      reason: 'outside_send_window',
    });
  });
  it('a step in flight is never stopped under the feet of the invocation sending it', () => {
    expect(decideFollowup(facts({ invoice: { status: 'PAYEE' }, steps: [step(1, 'sending')] }), NOW)).toEqual({
      kind: 'wait',
      reason: 'in_flight',
    });
  });
  it('a failed step whose back-off has passed is retried, same step', () => {
    const d = decideFollowup(facts({ steps: [step(1, 'failed', { nextAttemptAt: new Date(NOW.getTime() - 1) })] }), NOW);
    expect(d).toMatchObject({ kind: 'send', step: 1, retry: true });
  });
  it('defect 28: manual history rows (no step) do not count toward max_relances', () => {
    const d = decideFollowup(facts({ steps: [step(1, 'sent'), step(2, 'sent')] }), NOW);
    expect(d).toMatchObject({ kind: 'send', step: 3 });
  });
});

describe('followups rules: STARTER quota', () => {
  it(`allows ${STARTER_MONTHLY_QUOTA} per month per company; the ${STARTER_MONTHLY_QUOTA + 1}st waits`, () => {
    const batch = [
      facts({ plan: 'STARTER', sentThisMonth: 18 }),
      facts({ plan: 'STARTER', sentThisMonth: 18 }),
      facts({ plan: 'STARTER', sentThisMonth: 18 }),
      facts({ plan: 'STARTER', sentThisMonth: 0, companyId: 2 }),
      facts({ plan: 'PROFESSIONAL', sentThisMonth: 500, companyId: 3 }),
    ];
    expect(decideBatch(batch, NOW).map((d) => (d.kind === 'wait' ? d.reason : d.kind))).toEqual([
      'send',
      'send',
      'quota_exceeded',
      'send',
      'send',
    ]);
  });
  it('stops and waits consume no quota', () => {
    const batch = [
      facts({ plan: 'STARTER', sentThisMonth: 19, invoice: { status: 'PAYEE' } }),
      facts({ plan: 'STARTER', sentThisMonth: 19 }),
    ];
    expect(decideBatch(batch, NOW).map((d) => d.kind)).toEqual(['stop', 'send']);
  });
});

describe('followups rules: retries', () => {
  it('back-off grows; 5xx waits longer than 4xx; the third failure is final', () => {
    expect(retryDelayMs(1, false)).toBe(15 * 60_000);
    expect(retryDelayMs(2, false)).toBe(60 * 60_000);
    expect(retryDelayMs(1, true)).toBe(60 * 60_000);
    expect(afterFailure(1, false, NOW)).toEqual({ final: false, nextAttemptAt: new Date(NOW.getTime() + 15 * 60_000) });
    expect(afterFailure(3, true, NOW)).toEqual({ final: true, nextAttemptAt: null });
  });
});

describe('followups rules: a step settled as sent by a person', () => {
  const settledTwoDaysAgo = step(1, 'sent', { sentAt: new Date(NOW.getTime() - 2 * 86_400_000) });
  it('the due date that sent it does not send the next step before its delay', () => {
    const f = facts({ steps: [settledTwoDaysAgo] });
    f.followup.dueDate = new Date(settledTwoDaysAgo.sentAt.getTime() - 3_600_000);
    expect(decideFollowup(f, NOW)).toEqual({ kind: 'wait', reason: 'next_step_not_due' });
    // once the delay after it has passed, step 2 goes
    expect(decideFollowup(f, new Date(NOW.getTime() + 20 * 86_400_000))).toMatchObject({ kind: 'send', step: 2 });
  });
  it('a due date set after it (moved by a person, or written by a run) is followed as it is', () => {
    const f = facts({ steps: [settledTwoDaysAgo] });
    f.followup.dueDate = new Date(NOW.getTime() - 3_600_000);
    expect(decideFollowup(f, NOW)).toMatchObject({ kind: 'send', step: 2 });
  });
});
