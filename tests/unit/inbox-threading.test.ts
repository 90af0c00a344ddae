import { describe, expect, it } from 'vitest';
import {
  clampToNow, clientCreationBlocker, clientSubjectKey, fallbackKey, nextSyncAfterFailure, normaliseMessageId, normaliseSubject,
  parseIdList, sanitiseFilename, storableText, subjectKey, threadFor, BACKOFF_CAP_MS,
} from '../../lib/jobs/inbox-sync/threading.js';

describe('Message-ID normalisation (SPEC §5.1.4)', () => {
  it('strips brackets and surrounding space; compares exactly', () => {
    expect(normaliseMessageId('  <abc@x.fr>  ')).toBe('abc@x.fr');
    expect(normaliseMessageId('abc@x.fr')).toBe('abc@x.fr');
    expect(normaliseMessageId('<>')).toBeNull();
    expect(normaliseMessageId(undefined)).toBeNull();
  });
  it('defect 6: `%` and `_` are ordinary characters, not wildcards', () => {
    expect(normaliseMessageId('<50%_off@x>')).toBe('50%_off@x');
    expect(normaliseMessageId('<123@x>')).not.toBe(normaliseMessageId('<abc-123@x>'));
  });
  it('References: in header order, brackets removed', () => {
    expect(parseIdList('<a@x> <b@x>\r\n <c@x>')).toEqual(['a@x', 'b@x', 'c@x']);
    expect(parseIdList('a@x b@x')).toEqual(['a@x', 'b@x']);
  });
});

describe('defect 7: the fallback key for mail without a Message-ID', () => {
  const m = { fromEmail: 'A@x.fr', dateHeader: 'Mon, 1 Jan 2026 10:00:00 +0000', subject: 'S', body: 'hello\r\n' };
  it('is stable (same content → same key, whatever the UID or the run)', () => {
    expect(fallbackKey(m)).toBe(fallbackKey({ ...m, fromEmail: 'a@x.fr', body: 'hello\n' }));
    expect(fallbackKey(m)).toMatch(/^hash:[0-9a-f]{64}$/);
  });
  it('differs when any part differs', () => {
    expect(fallbackKey(m)).not.toBe(fallbackKey({ ...m, body: 'hello!' }));
    expect(fallbackKey(m)).not.toBe(fallbackKey({ ...m, dateHeader: 'Mon, 1 Jan 2026 10:00:01 +0000' }));
  });
});

describe('subjects', () => {
  it('strips re/fwd/fw/tr/aw prefixes, repeated and mixed', () => {
    expect(normaliseSubject('RE: Fwd: TR:  aw: Devis n°12')).toBe('Devis n°12');
    expect(normaliseSubject('Re[2]: Devis')).toBe('Devis');
    expect(subjectKey('Re: DEVIS')).toBe('devis');
    expect(normaliseSubject('Reunion')).toBe('Reunion');
  });
});

describe('defect 8: who becomes a client (SPEC §5.1.5)', () => {
  const h = { autoSubmitted: null, listId: null, listUnsubscribe: null, precedence: null };
  const who = (fromEmail: string | null, headers = {}, blocked: string[] = []) => clientCreationBlocker({ fromEmail, headers: { ...h, ...headers } }, blocked);
  it('a real person does', () => expect(who('jean@exemple.fr')).toBeNull());
  it('blocked domains (and their subdomains) do not', () => {
    expect(who('a@partner.fr', {}, ['partner.fr'])).toBe('blocked_domain');
    expect(who('a@mail.partner.fr', {}, ['@Partner.fr'])).toBe('blocked_domain');
    expect(who('a@notpartner.fr', {}, ['partner.fr'])).toBeNull();
  });
  it('noreply-style local parts do not', () => {
    for (const e of ['noreply@x.fr', 'no-reply@x.fr', 'do-not-reply@x.fr', 'ne-pas-repondre@x.fr', 'mailer-daemon@x.fr', 'notifications@x.fr', 'no_reply+abc@x.fr']) expect(who(e), e).not.toBeNull();
  });
  it('Auto-Submitted, List-Id, List-Unsubscribe, Precedence bulk|list|junk do not', () => {
    expect(who('a@x.fr', { autoSubmitted: 'auto-replied' })).toBe('auto_submitted');
    expect(who('a@x.fr', { autoSubmitted: 'no' })).toBeNull();
    expect(who('a@x.fr', { listId: '<l.x.fr>' })).toBe('mailing_list');
    expect(who('a@x.fr', { listUnsubscribe: '<mailto:u@x.fr>' })).toBe('mailing_list');
    for (const p of ['bulk', 'list', 'junk', 'Bulk']) expect(who('a@x.fr', { precedence: p })).toBe('bulk');
  });
  it('no sender address: no client', () => expect(who(null)).toBe('no_sender'));
});

describe('threading (SPEC §5.1.6)', () => {
  const index = {
    byExternalId: new Map([['orig@x', 10], ['older@x', 11]]),
    byClientSubject: new Map([[clientSubjectKey(1, 'devis'), 20]]),
  };
  it('In-Reply-To first', () => expect(threadFor({ inReplyTo: 'orig@x', references: ['older@x'], subjectKey: 'devis', clientId: 1 }, index)).toEqual({ conversationId: 10, via: 'in-reply-to' }));
  it('then References, newest first', () => expect(threadFor({ inReplyTo: 'unknown@x', references: ['older@x', 'orig@x', 'unknown2@x'], subjectKey: 'x', clientId: null }, index)).toEqual({ conversationId: 10, via: 'references' }));
  it('then the same client and subject', () => expect(threadFor({ inReplyTo: null, references: [], subjectKey: 'devis', clientId: 1 }, index)).toEqual({ conversationId: 20, via: 'subject' }));
  it('defect 5: never another sender on subject alone', () => {
    expect(threadFor({ inReplyTo: null, references: [], subjectKey: 'devis', clientId: 2 }, index)).toEqual({ conversationId: null, via: 'new' });
    expect(threadFor({ inReplyTo: null, references: [], subjectKey: 'devis', clientId: null }, index)).toEqual({ conversationId: null, via: 'new' });
  });
  it('defect 6: exact id matching (a substring is not a match)', () => {
    expect(threadFor({ inReplyTo: 'rig@x', references: [], subjectKey: '', clientId: null }, index).via).toBe('new');
  });
});

describe('defect 4: attachment names', () => {
  it('no path, no control or bidi characters, no leading dots, bounded', () => {
    expect(sanitiseFilename('../../etc/passwd')).toBe('passwd');
    expect(sanitiseFilename('..\\..\\boot.ini')).toBe('boot.ini');
    expect(sanitiseFilename('fac\u0000ture\u202egpj.exe')).toBe('facturegpj.exe');
    expect(sanitiseFilename('..')).toBe('piece-jointe');
    expect(sanitiseFilename('')).toBe('piece-jointe');
    expect(sanitiseFilename('a:b*c?.pdf')).toBe('a_b_c_.pdf');
    const long = sanitiseFilename(`${'x'.repeat(400)}.pdf`);
    expect(long.length).toBeLessThanOrEqual(180);
    expect(long.endsWith('.pdf')).toBe(true);
  });
});

describe('time and text', () => {
  const now = new Date('2026-03-10T12:00:00Z');
  it('a future Date is clamped to now; a missing one is now', () => {
    expect(clampToNow(new Date('2099-01-01T00:00:00Z'), now)).toEqual(now);
    expect(clampToNow(null, now)).toEqual(now);
    expect(clampToNow(new Date('2026-03-01T00:00:00Z'), now)).toEqual(new Date('2026-03-01T00:00:00Z'));
  });
  it('back-off doubles from 5 minutes and is capped at 1 hour', () => {
    const mins = [1, 2, 3, 4, 5, 10].map((n) => (nextSyncAfterFailure(n, now).getTime() - now.getTime()) / 60_000);
    expect(mins).toEqual([5, 10, 20, 40, 60, 60]);
    expect(nextSyncAfterFailure(100, now).getTime() - now.getTime()).toBe(BACKOFF_CAP_MS);
  });
  it('text Postgres accepts: no NUL, no lone surrogate', () => {
    expect(storableText('a\u0000b\ud800c')).toBe('ab\ufffdc');
  });
});
