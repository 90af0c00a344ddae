import { describe, expect, it } from 'vitest';
import { announcedReturn } from '../../lib/mime/absence.js';
import { comparableSubject, decideBounces, matchBounce, type BounceEvidence, type SendRef } from '../../lib/bounces/match.js';
import { envelopeSender, messageIdFromVerp, verpMessageId } from '../../lib/mail/verp.js';
import { bounceReason } from '../../lib/bounces/messages.js';

const SENT = new Date('2026-11-30T09:00:00Z');
const send = (over: Partial<SendRef> = {}): SendRef => ({
  kind: 'followup_step',
  id: 1,
  companyId: 7,
  messageId: 'lokario.followup.1.1@lokario.fr',
  recipient: 'jean@client.fr',
  subject: 'Relance facture F-12',
  sentAt: SENT,
  clientId: 3,
  clientName: 'Jean',
  followupId: 1,
  label: 'la relance n°1',
  ...over,
});
const ev = (over: Partial<BounceEvidence> = {}): BounceEvidence => ({
  key: 'b1',
  inboxMessageId: 1,
  recipients: ['jean@client.fr'],
  severity: 'hard',
  status: '5.1.1',
  diagnostic: 'user unknown',
  verpMessageId: null,
  messageIds: [],
  subject: null,
  at: new Date(SENT.getTime() + 60_000),
  ...over,
});

describe('announced return of an out-of-office', () => {
  const at = new Date('2026-12-02T08:00:00Z');
  it.each([
    ["Je suis absent jusqu'au 15 décembre inclus.", '2026-12-15'],
    ["Absente jusqu'au 15, je vous répondrai à mon retour.", '2026-12-15'],
    ["Absent jusqu'au 1er, merci.", '2027-01-01'],
    ['Je serai de retour le 5 janvier 2027.', '2027-01-05'],
    ['Je serai de retour le lundi 4 janvier.', '2027-01-04'],
    ['De retour le 12/12/2026, merci de votre patience.', '2026-12-12'],
    ['I am out of the office until December 15.', '2026-12-15'],
    ['I will be back on 3 January.', '2027-01-03'],
    ['Back on Monday, January 4th, 2027', '2027-01-04'],
  ])('%s → %s', (text, until) => {
    expect(announcedReturn('Réponse automatique', text, at)?.until).toBe(until);
  });
  it('keeps the sentence, and no date when none is explicit', () => {
    const a = announcedReturn('Absent', 'Bonjour, je suis en congés. Je reviens bientôt.', at);
    expect(a).toBeNull();
    const b = announcedReturn('Absent', "Bonjour.\nJe suis absent jusqu'au 15 décembre. Pour toute urgence : 01 02 03 04 05.", at)!;
    expect(b.text).toBe("Je suis absent jusqu'au 15 décembre.");
  });
  it('an impossible date is no date', () => {
    expect(announcedReturn('x', 'de retour le 31/02/2027', at)?.until ?? null).toBeNull();
  });
});

describe('VERP', () => {
  it('round-trips a deterministic Message-ID', () => {
    const a = envelopeSender('bounces@lokario.fr', '<lokario.followup.12.1@lokario.fr>', true);
    expect(a).toBe('bounces+lokario.followup.12.1=lokario.fr@lokario.fr');
    expect(messageIdFromVerp(a)).toBe('lokario.followup.12.1@lokario.fr');
    expect(verpMessageId(['Mail Delivery <x@y.fr>', `<${a}>`])).toBe('lokario.followup.12.1@lokario.fr');
  });
  it('off: the plain bounce address; an unusual id keeps it too', () => {
    expect(envelopeSender('bounces@lokario.fr', '<a@b.fr>', false)).toBe('bounces@lokario.fr');
    expect(envelopeSender('bounces@lokario.fr', '<a b"c@b.fr>', true)).toBe('bounces@lokario.fr');
    expect(messageIdFromVerp('jean+news@client.fr')).toBeNull();
  });
});

describe('matching a bounce to a send', () => {
  it('by VERP, then Message-ID, before anything else', () => {
    const a = send({ id: 1 });
    const b = send({ id: 2, messageId: 'lokario.followup.2.1@lokario.fr' });
    expect(matchBounce(ev({ verpMessageId: b.messageId, messageIds: [a.messageId!] }), [a, b])).toEqual({ send: b, by: 'verp' });
    expect(matchBounce(ev({ messageIds: ['other@x', a.messageId!], recipients: [] }), [a, b])).toEqual({ send: a, by: 'message_id' });
  });
  it('else recipient + subject inside the window: the latest send, a subject that disagrees excluded', () => {
    const old = send({ id: 1, sentAt: new Date(SENT.getTime() - 3 * 86_400_000) });
    const recent = send({ id: 2, messageId: 'x2@l', sentAt: SENT });
    const other = send({ id: 3, messageId: 'x3@l', subject: 'Rappel : votre rendez-vous', sentAt: new Date(SENT.getTime() + 30_000) });
    expect(matchBounce(ev({ subject: 'Undeliverable: Relance facture F-12' }), [old, recent, other])?.send.id).toBe(2);
    // no subject known: the latest send to that address
    expect(matchBounce(ev({ subject: 'Mail delivery failed: returning message to sender' }), [old, recent, other])?.send.id).toBe(3);
  });
  it('outside the window, another address, or before the send: ignored', () => {
    const s = send();
    expect(matchBounce(ev({ at: new Date(SENT.getTime() + 15 * 86_400_000) }), [s])).toBeNull();
    expect(matchBounce(ev({ recipients: ['autre@client.fr'] }), [s])).toBeNull();
    expect(matchBounce(ev({ at: new Date(SENT.getTime() - 86_400_000) }), [s])).toBeNull();
  });
  it('subjects compare without bounce prefixes; generic ones say nothing', () => {
    expect(comparableSubject('Non remis : Relance facture F-12')).toBe('relance facture f-12');
    expect(comparableSubject('Undelivered Mail Returned to Sender')).toBeNull();
  });
});

describe('deciding a batch', () => {
  it('three soft bounces in a row for one address make a hard one, within the batch or with history', () => {
    const s = send();
    const soft = (k: string, min: number) =>
      ev({ key: k, severity: 'soft', status: '4.2.2', at: new Date(SENT.getTime() + min * 60_000), messageIds: [s.messageId!] });
    const d = decideBounces([soft('c', 3), soft('a', 1), soft('b', 2)], [s], () => []);
    expect(d.map((x) => [x.evidence.key, x.outcome])).toEqual([
      ['a', 'soft'],
      ['b', 'soft'],
      ['c', 'hard'],
    ]);
    expect(decideBounces([soft('z', 9)], [s], () => ['soft', 'soft'])[0].outcome).toBe('hard');
    expect(decideBounces([soft('z', 9)], [s], () => ['soft', 'hard', 'soft'])[0].outcome).toBe('soft');
  });
  it('a bounce for nothing we sent, or without a failed recipient, is ignored', () => {
    expect(decideBounces([ev({ recipients: ['x@y.fr'] })], [send()], () => [])[0].outcome).toBe('ignored');
    expect(decideBounces([ev({ severity: null })], [send()], () => [])[0].outcome).toBe('ignored');
  });
});

describe('the reason in French', () => {
  it('names the usual cases', () => {
    expect(bounceReason('5.1.1', '550 5.1.1 User unknown', false)).toBe('adresse inconnue');
    expect(bounceReason(null, 'mailbox full', true)).toMatch(/plusieurs échecs temporaires/);
    expect(bounceReason('5.2.2', null, false)).toBe('boîte de réception pleine');
    expect(bounceReason('5.4.4', null, false)).toBe('domaine introuvable');
  });
});
