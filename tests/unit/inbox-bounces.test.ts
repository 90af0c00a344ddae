import { describe, expect, it } from 'vitest';
import { effectiveSeverity, parseBounce } from '../../lib/mime/bounce.js';

const crlf = (s: string) => s.replace(/\r?\n/g, '\r\n');
const MID = 'lokario-f12-s2.1733000000@lokario.fr';

const dsn = (rcpt: string, action: string, status: string, diag: string, returnedType = 'text/rfc822-headers') =>
  crlf(`From: Mail Delivery System <MAILER-DAEMON@mx1.example.net>
To: facturation@plomberie-dupont.fr
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B1"

--B1
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx1.example.net.

--B1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx1.example.net
Arrival-Date: Mon, 30 Nov 2026 10:00:00 +0100

Final-Recipient: rfc822; ${rcpt}
Original-Recipient: rfc822;${rcpt}
Action: ${action}
Status: ${status}
Remote-MTA: dns; mx.client.fr
Diagnostic-Code: smtp; ${diag}

--B1
Content-Type: ${returnedType}

Message-ID: <${MID}>
From: Plomberie Dupont <facturation@plomberie-dupont.fr>
To: ${rcpt}
Subject: Relance facture F-2026-012

--B1--
`);

describe('RFC 3464 delivery-status reports', () => {
  it('Postfix DSN, user unknown: hard, code, diagnostic, original Message-ID from text/rfc822-headers', () => {
    const b = parseBounce(
      dsn('jean.martin@client.fr', 'failed', '5.1.1', '550 5.1.1 <jean.martin@client.fr>: Recipient address rejected: User unknown'),
    )!;
    expect(b).toEqual({
      recipients: ['jean.martin@client.fr'],
      status: '5.1.1',
      severity: 'hard',
      diagnostic: '550 5.1.1 <jean.martin@client.fr>: Recipient address rejected: User unknown',
      originalMessageId: MID,
      originalSubject: 'Relance facture F-2026-012',
    });
  });
  it('delayed DSN with message/rfc822: soft', () => {
    const b = parseBounce(dsn('a.leroy@client.fr', 'delayed', '4.4.1', '421 4.4.1 connection timed out', 'message/rfc822'))!;
    expect(b.severity).toBe('soft');
    expect(b.status).toBe('4.4.1');
    expect(b.originalMessageId).toBe(MID);
    expect(b.recipients).toEqual(['a.leroy@client.fr']);
  });
  it('mailbox full with 4.2.2: soft', () => {
    expect(parseBounce(dsn('x@client.fr', 'failed', '4.2.2', '452 4.2.2 Mailbox full'))!.severity).toBe('soft');
  });
});

describe('X-Failed-Recipients and Exim', () => {
  const exim = (rcpt: string, reason: string) =>
    crlf(`From: Mail Delivery System <Mailer-Daemon@mail.hebergeur.fr>
To: contact@garage-durand.fr
Subject: Mail delivery failed: returning message to sender
X-Failed-Recipients: ${rcpt}
Auto-Submitted: auto-replied

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  ${rcpt}
    host mx.client.fr [192.0.2.5]
    SMTP error from remote mail server after RCPT TO:<${rcpt}>:
    ${reason}

------ This is a copy of the message, including all the headers. ------

Message-Id: <${MID}>
From: contact@garage-durand.fr
To: ${rcpt}
Subject: Rappel : rendez-vous demain

Bonjour,
`);
  it('Exim with X-Failed-Recipients, 550 no such user: hard', () => {
    const b = parseBounce(exim('paul@client.fr', '550 5.1.1 No such user here'))!;
    expect(b.recipients).toEqual(['paul@client.fr']);
    expect(b.status).toBe('5.1.1');
    expect(b.severity).toBe('hard');
    expect(b.originalMessageId).toBe(MID);
    expect(b.originalSubject).toBe('Rappel : rendez-vous demain');
  });
  it('Exim over quota: soft', () => {
    const b = parseBounce(exim('marie@client.fr', '452 4.2.2 Mailbox over quota'))!;
    expect(b.severity).toBe('soft');
    expect(b.recipients).toEqual(['marie@client.fr']);
  });
  it('Exim without X-Failed-Recipients: recipient from the indented list', () => {
    const b = parseBounce(exim('luc@client.fr', '550 User unknown').replace(/X-Failed-Recipients:.*\r\n/, ''))!;
    expect(b.recipients).toEqual(['luc@client.fr']);
    expect(b.severity).toBe('hard');
  });
});

describe('Postfix and qmail plain-text bounces', () => {
  it('Postfix plain text: <addr>: host said 550', () => {
    const b = parseBounce(
      crlf(`From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
To: facturation@plomberie-dupont.fr
Subject: Undelivered Mail Returned to Sender

This is the mail system at host mx.example.net.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<jean@client.fr>: host mx.client.fr[192.0.2.1] said: 550 5.1.1
    <jean@client.fr>: Recipient address rejected: User unknown in virtual mailbox table

--- Below this line is a copy of the message.

Message-ID: <${MID}>
Subject: Relance facture F-2026-012
`),
    )!;
    expect(b.recipients).toEqual(['jean@client.fr']);
    expect(b.status).toBe('5.1.1');
    expect(b.severity).toBe('hard');
    expect(b.originalMessageId).toBe(MID);
  });
  it('qmail: no mailbox here by that name (#5.1.1)', () => {
    const b = parseBounce(
      crlf(`From: MAILER-DAEMON@qmail.example.org
To: contact@garage-durand.fr
Subject: failure notice

Hi. This is the qmail-send program at qmail.example.org.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<sophie@client.fr>:
Sorry, no mailbox here by that name. (#5.1.1)

--- Below this line is a copy of the message.

Message-ID: <${MID}>
Subject: Rappel : rendez-vous demain
`),
    )!;
    expect(b.recipients).toEqual(['sophie@client.fr']);
    expect(b.status).toBe('5.1.1');
    expect(b.severity).toBe('hard');
    expect(b.originalMessageId).toBe(MID);
  });
});

describe('Exchange and Gmail', () => {
  it('Exchange "Undeliverable", quoted-printable, original via In-Reply-To', () => {
    const b = parseBounce(
      crlf(`From: Microsoft Outlook <postmaster@client.onmicrosoft.com>
To: facturation@plomberie-dupont.fr
Subject: Undeliverable: Relance facture F-2026-012
In-Reply-To: <${MID}>
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Your message to bernard@client.fr couldn't be delivered.
bernard wasn't found at client.fr.

Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipien=
t not found by SMTP address lookup'
`),
    )!;
    expect(b.recipients).toEqual(['bernard@client.fr']);
    expect(b.status).toBe('5.1.10');
    expect(b.severity).toBe('hard');
    expect(b.diagnostic).toContain('RecipientNotFound; Recipient not found');
    expect(b.originalMessageId).toBe(MID);
  });
  it('Gmail "Delivery Status Notification (Failure)": address not found', () => {
    const b = parseBounce(
      crlf(`From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: contact@garage-durand.fr
Subject: Delivery Status Notification (Failure)
References: <${MID}>
X-Failed-Recipients: claire.typo@gmial.com

Address not found

Your message wasn't delivered to claire.typo@gmial.com because the address couldn't be found, or is unable to receive mail.

The response from the remote server was:
550 5.1.1 The email account that you tried to reach does not exist.
`),
    )!;
    expect(b.recipients).toEqual(['claire.typo@gmial.com']);
    expect(b.status).toBe('5.1.1');
    expect(b.severity).toBe('hard');
    expect(b.originalMessageId).toBe(MID);
  });
  it('Gmail without X-Failed-Recipients: recipient from the sentence', () => {
    const b = parseBounce(
      crlf(`From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: contact@garage-durand.fr
Subject: Delivery Status Notification (Failure)

Your message wasn't delivered to nobody@client.fr because the address couldn't be found.
`),
    )!;
    expect(b.recipients).toEqual(['nobody@client.fr']);
    expect(b.severity).toBe('hard');
    expect(b.originalMessageId).toBeNull();
  });
});

it('a message naming no failed recipient is not a bounce we act on', () => {
  expect(parseBounce(crlf(`From: mailer-daemon@x.fr\r\nTo: a@b.fr\r\nSubject: hello\r\n\r\nNothing here.\r\n`))).toBeNull();
});

describe('soft bounces in a row', () => {
  it('the third soft bounce in a row counts as hard; any other bounce in between breaks the run', () => {
    expect(effectiveSeverity([], 'soft')).toBe('soft');
    expect(effectiveSeverity(['soft'], 'soft')).toBe('soft');
    expect(effectiveSeverity(['soft', 'soft'], 'soft')).toBe('hard');
    expect(effectiveSeverity(['soft', 'hard', 'soft'], 'soft')).toBe('soft');
    expect(effectiveSeverity([], 'hard')).toBe('hard');
  });
});
