import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  clampToNow,
  clientCreationBlocker,
  clientSubjectKey,
  nextSyncAfterFailure,
  normaliseSubject,
  subjectKey,
  threadFor,
  BACKOFF_CAP_MS,
} from '../../lib/jobs/inbox-sync/threading.js';
import { normaliseMessageId, parseIdList } from '../../lib/mail/message-id.js';
import { classifyMessage } from '../../lib/mime/kinds.js';
import { fallbackKey, legacyFallbackKey } from '../../lib/mime/dedupe-key.js';
import { sanitiseFilename, storableText } from '../../lib/mime/storable.js';

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

describe('the fallback key for mail without a Message-ID', () => {
  const CRLF = '\r\n';
  const png = (n: number) => Buffer.alloc(64, n).toString('base64');
  const parts = {
    text: ['Content-Type: text/plain; charset=utf-8', '', 'Bonjour, voici le devis signé.'],
    html: ['Content-Type: text/html; charset=utf-8', '', '<p>Bonjour, voici le devis <b>signé</b>.</p>'],
    logo: ['Content-Type: image/png', 'Content-ID: <logo@x>', 'Content-Transfer-Encoding: base64', '', png(1)],
    pdf: [
      'Content-Type: application/pdf; name="devis.pdf"',
      'Content-Disposition: attachment; filename="devis.pdf"',
      'Content-Transfer-Encoding: base64',
      '',
      png(2),
    ],
  };
  type Parts = typeof parts;
  const source = (p: Parts, extraHeaders: string[] = [], eol = CRLF) =>
    Buffer.from(
      [
        ...extraHeaders,
        'From: Jean <jean@exemple.fr>',
        'To: contact@lokario.fr',
        'Subject: Devis',
        'Date: Mon, 12 Jan 2026 10:00:00 +0100',
        'MIME-Version: 1.0',
        'Content-Type: multipart/mixed; boundary="m"',
        '',
        '--m',
        'Content-Type: multipart/alternative; boundary="a"',
        '',
        '--a',
        ...p.text,
        '--a',
        'Content-Type: multipart/related; boundary="r"',
        '',
        '--r',
        ...p.html,
        '--r',
        ...p.logo,
        '--r--',
        '--a--',
        '--m',
        ...p.pdf,
        '--m--',
        '',
      ].join(eol),
    );

  it('two messages differing in any single body part (text, HTML, inline image, attachment) get different keys', () => {
    const base = fallbackKey(source(parts));
    const variants: Parts[] = [
      { ...parts, text: [...parts.text.slice(0, -1), 'Bonjour, voici le devis signe.'] },
      { ...parts, html: [...parts.html.slice(0, -1), '<p>Bonjour, voici le devis <i>signé</i>.</p>'] },
      { ...parts, logo: [...parts.logo.slice(0, -1), png(3)] },
      { ...parts, pdf: [...parts.pdf.slice(0, -1), png(4)] },
      { ...parts, pdf: [parts.pdf[0], 'Content-Disposition: attachment; filename="devis-v2.pdf"', ...parts.pdf.slice(2)] },
    ];
    const keys = variants.map((v) => fallbackKey(source(v)));
    expect(new Set([base, ...keys]).size).toBe(1 + variants.length);
    expect(base).toMatch(/^sha256:[0-9a-f]{64}$/);
  });
  it('differs on any header the sender wrote (Date, Subject, From, To, Cc)', () => {
    const base = fallbackKey(source(parts));
    for (const h of ['Cc: marie@exemple.fr', 'Reply-To: autre@exemple.fr', 'In-Reply-To: <a@b>'])
      expect(fallbackKey(source(parts, [h])), h).not.toBe(base);
    const other = Buffer.from(source(parts).toString('utf8').replace('10:00:00', '10:00:01'));
    expect(fallbackKey(other)).not.toBe(base);
  });
  it('is the same for the same message re-delivered, copied or stored with other line endings', () => {
    const base = fallbackKey(source(parts));
    expect(
      fallbackKey(
        source(parts, [
          'Return-Path: <jean@exemple.fr>',
          'Delivered-To: contact@lokario.fr',
          'Received: from mx.exemple.fr (mx.exemple.fr [192.0.2.1])\r\n\tby mx.lokario.fr; Mon, 12 Jan 2026 10:00:02 +0100',
          'Authentication-Results: mx.lokario.fr; spf=pass',
          'X-Spam-Score: 0.1',
          'X-Original-To: contact@lokario.fr',
          'ARC-Seal: i=1; a=rsa-sha256; cv=none',
        ]),
      ),
    ).toBe(base);
    expect(fallbackKey(source(parts, [], '\n'))).toBe(base);
    expect(fallbackKey(Buffer.concat([source(parts), Buffer.from('\r\n\r\n')]))).toBe(base);
  });
  it('oversize messages (headers only): the size stands in for the body', () => {
    const head = Buffer.from('From: a@x.fr\r\nSubject: Vidéo\r\nDate: Mon, 12 Jan 2026 10:00:00 +0100\r\n\r\n');
    expect(fallbackKey(head, { oversizeBytes: 30_000_000 })).not.toBe(fallbackKey(head, { oversizeBytes: 30_000_001 }));
    expect(fallbackKey(head, { oversizeBytes: 30_000_000 })).toBe(fallbackKey(head, { oversizeBytes: 30_000_000 }));
  });
  it('the legacy key (stored by earlier versions) is reproduced exactly', () => {
    const m = { fromEmail: 'A@x.fr', dateHeader: 'Mon, 1 Jan 2026 10:00:00 +0000', subject: 'S', body: 'hello\r\n' };
    // the value the previous fallbackKey computed for this input
    const h = createHash('sha256');
    for (const p of ['a@x.fr', 'Mon, 1 Jan 2026 10:00:00 +0000', 'S', 'hello']) {
      h.update(p);
      h.update('\u0000');
    }
    expect(legacyFallbackKey(m)).toBe(`hash:${h.digest('hex')}`);
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
  const who = (fromEmail: string | null, headers = {}, blocked: string[] = []) =>
    clientCreationBlocker({ fromEmail, headers: { ...h, ...headers } }, blocked);
  it('a real person does', () => expect(who('jean@exemple.fr')).toBeNull());
  it('blocked domains (and their subdomains) do not', () => {
    expect(who('a@partner.fr', {}, ['partner.fr'])).toBe('blocked_domain');
    expect(who('a@mail.partner.fr', {}, ['@Partner.fr'])).toBe('blocked_domain');
    expect(who('a@notpartner.fr', {}, ['partner.fr'])).toBeNull();
  });
  it('noreply-style local parts do not', () => {
    for (const e of [
      'noreply@x.fr',
      'no-reply@x.fr',
      'do-not-reply@x.fr',
      'ne-pas-repondre@x.fr',
      'mailer-daemon@x.fr',
      'notifications@x.fr',
      'no_reply+abc@x.fr',
      'gmail-noreply@google.com',
      'notifications-noreply@linkedin.com',
      'factures.ne-pas-repondre@edf.fr',
      'DoNotReply@microsoft.com',
      'info-noreply@x.fr',
    ])
      expect(who(e), e).not.toBeNull();
    for (const e of ['noemie@x.fr', 'reply@x.fr', 'nora.reply@x.fr', 'jean.dupont@x.fr']) expect(who(e), e).toBeNull();
  });
  it('automated kinds do not, even from an ordinary-looking address', () => {
    for (const kind of ['bounce', 'report', 'auto_reply'] as const)
      expect(clientCreationBlocker({ fromEmail: 'jean@exemple.fr', kind, headers: h }, [])).toBe(kind);
    expect(clientCreationBlocker({ fromEmail: 'jean@exemple.fr', kind: 'person', headers: h }, [])).toBeNull();
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

describe('the kind of a message (classifyMessage)', () => {
  const k = (over: Partial<Parameters<typeof classifyMessage>[0]> = {}, headers: Parameters<typeof classifyMessage>[0]['headers'] = {}) =>
    classifyMessage({ fromEmail: 'jean@exemple.fr', subject: 'Devis', ...over, headers });
  it('a person by default', () => expect(k()).toBe('person'));
  it('multipart/report: failed DSN is a bounce; delayed/delivered DSN, MDN and ARF are reports', () => {
    expect(k({ contentType: 'multipart/report', reportType: 'delivery-status', dsnActions: ['failed'] })).toBe('bounce');
    expect(k({ contentType: 'multipart/report', reportType: 'Delivery-Status', dsnActions: ['delayed'] })).toBe('report');
    expect(k({ contentType: 'multipart/report', reportType: 'delivery-status', dsnActions: ['relayed', 'failed'] })).toBe('bounce');
    expect(k({ contentType: 'multipart/report', reportType: 'disposition-notification' })).toBe('report');
    expect(k({ contentType: 'multipart/report', reportType: 'feedback-report' })).toBe('report');
  });
  it('mailer-daemon and postmaster are bounces; bounce subjects with Auto-Submitted too', () => {
    expect(k({ fromEmail: 'MAILER-DAEMON@mx.exemple.fr' })).toBe('bounce');
    expect(k({ fromEmail: 'postmaster@exemple.fr', subject: 'Undeliverable: Devis' })).toBe('bounce');
    expect(k({ subject: 'Mail delivery failed: returning message to sender' }, { autoSubmitted: 'auto-replied' })).toBe('bounce');
  });
  it('auto-replies: Auto-Submitted auto-replied, X-Autoreply, X-Autorespond, out-of-office subjects', () => {
    expect(k({}, { autoSubmitted: 'auto-replied' })).toBe('auto_reply');
    expect(k({}, { xAutoreply: 'yes' })).toBe('auto_reply');
    expect(k({}, { xAutorespond: 'vacation' })).toBe('auto_reply');
    expect(k({}, { precedence: 'auto_reply' })).toBe('auto_reply');
    for (const subject of [
      'Réponse automatique : Devis',
      'Automatic reply: Devis',
      'Out of Office: Devis',
      'Absence du bureau',
      'Abwesenheitsnotiz: Devis',
      'Out of Office AutoReply: Devis',
    ])
      expect(k({ subject }), subject).toBe('auto_reply');
    for (const subject of ['Auto : révision des freins', 'Absence du bureau jeudi, pouvez-vous passer vendredi ?'])
      expect(k({ subject }), subject).toBe('person');
    expect(k({ subject: 'TR: Réponse automatique' })).toBe('person'); // a person forwarding one
  });
  it('lists and bulk; other automated mail', () => {
    expect(k({}, { listId: '<news.x.fr>' })).toBe('list');
    expect(k({}, { listUnsubscribe: '<mailto:u@x.fr>' })).toBe('list');
    expect(k({}, { precedence: 'bulk' })).toBe('list');
    expect(k({}, { autoSubmitted: 'auto-generated' })).toBe('automated');
    expect(k({}, { autoSubmitted: 'no' })).toBe('person');
    expect(k({ fromEmail: 'gmail-noreply@google.com' })).toBe('automated');
  });
});

describe('threading (SPEC §5.1.6)', () => {
  const index = {
    byExternalId: new Map([
      ['orig@x', 10],
      ['older@x', 11],
    ]),
    byClientSubject: new Map([[clientSubjectKey(1, 'devis'), 20]]),
  };
  it('In-Reply-To first', () =>
    expect(threadFor({ inReplyTo: 'orig@x', references: ['older@x'], subjectKey: 'devis', clientId: 1 }, index)).toEqual({
      conversationId: 10,
      via: 'in-reply-to',
    }));
  it('then References, newest first', () =>
    expect(
      threadFor({ inReplyTo: 'unknown@x', references: ['older@x', 'orig@x', 'unknown2@x'], subjectKey: 'x', clientId: null }, index),
    ).toEqual({ conversationId: 10, via: 'references' }));
  it('then the same client and subject', () =>
    expect(threadFor({ inReplyTo: null, references: [], subjectKey: 'devis', clientId: 1 }, index)).toEqual({
      conversationId: 20,
      via: 'subject',
    }));
  it('defect 5: never another sender on subject alone', () => {
    expect(threadFor({ inReplyTo: null, references: [], subjectKey: 'devis', clientId: 2 }, index)).toEqual({
      conversationId: null,
      via: 'new',
    });
    expect(threadFor({ inReplyTo: null, references: [], subjectKey: 'devis', clientId: null }, index)).toEqual({
      conversationId: null,
      via: 'new',
    });
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
