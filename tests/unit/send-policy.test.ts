/** The send-failure policy as data (lib/mail/sends.ts), read by the protocol (lib/mail/claimed-send.ts `failureAction`). */
import { describe, expect, it } from 'vitest';
import { RECORDED_BY_SENDER, RELEASE_ON_RETRY, failureAction } from '../../lib/mail/claimed-send.js';
import { DELETION_EMAIL_SENDS, FOLLOWUP_SENDS, REMINDER_SENDS } from '../../lib/mail/sends.js';
import { MailError } from '../../lib/mail/transport.js';

const busy = new MailError('smtp_busy', '451 try later', false, 451, 'envelope');
const refused = new MailError('smtp_rejected', '550 no such user', true, 550, 'envelope');
const silentAfterData = new MailError('smtp_timeout', 'no answer', false, undefined, 'data');
const notConfigured = new MailError('smtp_not_configured', 'SMTP is not configured', true);

describe('send-failure policy', () => {
  it('no answer after DATA is `unknown` under every policy, never given back', () => {
    for (const p of [RELEASE_ON_RETRY, RECORDED_BY_SENDER, FOLLOWUP_SENDS.policy, REMINDER_SENDS.policy]) {
      expect(failureAction(silentAfterData, p)).toEqual({ state: 'unknown', release: false });
    }
  });
  it('a 4xx is given back for reminders and deletion reminders, left to the back-off for follow-ups and confirmations', () => {
    expect(failureAction(busy, REMINDER_SENDS.policy)).toEqual({ state: 'retry', release: true });
    expect(failureAction(busy, DELETION_EMAIL_SENDS.policy)).toEqual({ state: 'retry', release: true });
    expect(failureAction(busy, FOLLOWUP_SENDS.policy)).toEqual({ state: 'retry', release: false });
    expect(failureAction(busy, RECORDED_BY_SENDER)).toEqual({ state: 'retry', release: false });
  });
  it("a 5xx is the sender's to record; SMTP not configured is given back for reminders only", () => {
    expect(failureAction(refused, REMINDER_SENDS.policy)).toEqual({ state: 'failed', release: false });
    expect(failureAction(notConfigured, REMINDER_SENDS.policy)).toEqual({ state: 'retry', release: true });
    expect(failureAction(notConfigured, DELETION_EMAIL_SENDS.policy)).toEqual({ state: 'failed', release: false });
  });
});
