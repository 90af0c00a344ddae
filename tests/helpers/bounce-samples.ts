/**
 * Realistic bounces, two per format (DSN, Exchange, Gmail, Postfix, Exim, qmail,
 * X-Failed-Recipients), modelled on what these servers really send. Each names the email it
 * returns in the way its format does (returned headers, In-Reply-To / References, or only the
 * recipient and the subject), so the matching rules are exercised by every path.
 */
export type BounceFormat = 'dsn' | 'exchange' | 'gmail' | 'postfix' | 'exim' | 'qmail' | 'x-failed-recipients';

export type SampleInput = {
  /** The failed address (the client's). */
  rcpt: string;
  /** The original's Message-ID, without angle brackets. */
  messageId: string;
  subject: string;
  /** The company's address the original came from (the bounce's To). */
  sender: string;
  date: Date;
  /** Unique per bounce: its own Message-ID. */
  tag: string;
};

export type BounceSample = {
  format: BounceFormat;
  name: string;
  /** How the sample names the original: the path the matcher must take. */
  names: 'message_id' | 'recipient_subject';
  build(i: SampleInput): string;
};

const crlf = (s: string) => s.replace(/\r?\n/g, '\r\n');
const rfcDate = (d: Date) => d.toUTCString().replace('GMT', '+0000');
const returned = (i: SampleInput) => `Return-Path: <${i.sender}>
Message-ID: <${i.messageId}>
Date: ${rfcDate(new Date(i.date.getTime() - 60_000))}
From: "Plomberie Dupont" <${i.sender}>
To: ${i.rcpt}
Subject: ${i.subject}
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8`;

export const BOUNCE_SAMPLES: BounceSample[] = [
  {
    format: 'dsn',
    name: 'Postfix RFC 3464 report, user unknown, text/rfc822-headers',
    names: 'message_id',
    build: (i) =>
      crlf(`Return-Path: <>
From: MAILER-DAEMON@mx1.hebergeur-mail.fr (Mail Delivery System)
To: ${i.sender}
Subject: Undelivered Mail Returned to Sender
Date: ${rfcDate(i.date)}
Message-ID: <${i.tag}@mx1.hebergeur-mail.fr>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="7A1F2C0E34.1733150000/mx1.hebergeur-mail.fr"

This is a MIME-encapsulated message.

--7A1F2C0E34.1733150000/mx1.hebergeur-mail.fr
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx1.hebergeur-mail.fr.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<${i.rcpt}>: host mx.client.fr[192.0.2.10] said: 550 5.1.1 <${i.rcpt}>:
    Recipient address rejected: User unknown in virtual mailbox table

--7A1F2C0E34.1733150000/mx1.hebergeur-mail.fr
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx1.hebergeur-mail.fr
X-Postfix-Queue-ID: 7A1F2C0E34
Arrival-Date: ${rfcDate(i.date)}

Final-Recipient: rfc822; ${i.rcpt}
Original-Recipient: rfc822;${i.rcpt}
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.client.fr
Diagnostic-Code: smtp; 550 5.1.1 <${i.rcpt}>: Recipient address rejected: User
    unknown in virtual mailbox table

--7A1F2C0E34.1733150000/mx1.hebergeur-mail.fr
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

${returned(i)}

--7A1F2C0E34.1733150000/mx1.hebergeur-mail.fr--
`),
  },
  {
    format: 'dsn',
    name: 'Sendmail RFC 3464 report, 5.1.2 host unknown, whole message/rfc822',
    names: 'message_id',
    build: (i) =>
      crlf(`From: Mail Delivery Subsystem <MAILER-DAEMON@relay.exemple.net>
To: <${i.sender}>
Date: ${rfcDate(i.date)}
Message-Id: <${i.tag}@relay.exemple.net>
Subject: Returned mail: see transcript for details
Auto-Submitted: auto-generated (failure)
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="4B2AK3Dq028510.1733150000/relay.exemple.net"

--4B2AK3Dq028510.1733150000/relay.exemple.net
Content-Type: text/plain

The original message was received at ${rfcDate(i.date)}

   ----- The following addresses had permanent fatal errors -----
<${i.rcpt}>
    (reason: 550 5.1.2 Host unknown (Name server: client.fr: host not found))

--4B2AK3Dq028510.1733150000/relay.exemple.net
Content-Type: message/delivery-status

Reporting-MTA: dns; relay.exemple.net

Final-Recipient: RFC822; ${i.rcpt}
Action: failed
Status: 5.1.2
Diagnostic-Code: SMTP; 550 5.1.2 Host unknown (Name server: client.fr: host not found)
Last-Attempt-Date: ${rfcDate(i.date)}

--4B2AK3Dq028510.1733150000/relay.exemple.net
Content-Type: message/rfc822

${returned(i)}

Bonjour, sauf erreur de notre part, la facture reste impayée.

--4B2AK3Dq028510.1733150000/relay.exemple.net--
`),
  },
  {
    format: 'exchange',
    name: 'Exchange Online NDR in English, quoted-printable, In-Reply-To',
    names: 'message_id',
    build: (i) =>
      crlf(`From: Microsoft Outlook <postmaster@clientfr.onmicrosoft.com>
To: <${i.sender}>
Date: ${rfcDate(i.date)}
Subject: Undeliverable: ${i.subject}
Message-ID: <${i.tag}@PR3PR02MB6010.eurprd02.prod.outlook.com>
In-Reply-To: <${i.messageId}>
References: <${i.messageId}>
Auto-Submitted: auto-replied
X-MS-Exchange-Message-Is-Ndr:
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable
MIME-Version: 1.0

Your message to ${i.rcpt} couldn't be delivered.
${i.rcpt.split('@')[0]} wasn't found at ${i.rcpt.split('@')[1]}.

Action Required
Unknown To address

Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipien=
t ${i.rcpt} not found by SMTP address lookup'
`),
  },
  {
    format: 'exchange',
    name: 'Exchange on-premises NDR, "Delivery has failed", original headers quoted',
    names: 'message_id',
    build: (i) =>
      crlf(`From: postmaster@mail.client-entreprise.fr
To: ${i.sender}
Date: ${rfcDate(i.date)}
Subject: Undeliverable: ${i.subject}
Message-ID: <${i.tag}@EXCH01.client-entreprise.local>
Content-Type: text/plain; charset=us-ascii
MIME-Version: 1.0

Delivery has failed to these recipients or groups:

${i.rcpt}
The e-mail address you entered couldn't be found. Please check the recipient's e-mail address and try to resend the message.

Diagnostic information for administrators:

Generating server: EXCH01.client-entreprise.local

${i.rcpt}
Remote Server returned '550 5.1.1 RESOLVER.ADR.RecipNotFound; not found'

Original message headers:

${returned(i)}
`),
  },
  {
    format: 'gmail',
    name: 'Gmail "Address not found", X-Failed-Recipients, References',
    names: 'message_id',
    build: (i) =>
      crlf(`From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: ${i.sender}
Date: ${rfcDate(i.date)}
Subject: Delivery Status Notification (Failure)
Message-ID: <${i.tag}.GMR@mx.google.com>
References: <${i.messageId}>
In-Reply-To: <${i.messageId}>
X-Failed-Recipients: ${i.rcpt}
Auto-Submitted: auto-replied
Content-Type: text/plain; charset=UTF-8
MIME-Version: 1.0

** Address not found **

Your message wasn't delivered to ${i.rcpt} because the address couldn't be found, or is unable to receive mail.

Learn more here: https://support.google.com/mail/?p=NoSuchUser

The response from the remote server was:
550 5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces.
`),
  },
  {
    format: 'gmail',
    name: 'Gmail in French, no id: recipient and subject only',
    names: 'recipient_subject',
    build: (i) =>
      crlf(`From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: ${i.sender}
Date: ${rfcDate(i.date)}
Subject: Delivery Status Notification (Failure)
Message-ID: <${i.tag}.GMR@mx.google.com>
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: quoted-printable
MIME-Version: 1.0

** Adresse introuvable **

Votre message n'a pas pu =C3=AAtre remis =C3=A0 ${i.rcpt}, car l'adresse est introuvable ou ne peut pas recevoir d'e-mails.

La r=C3=A9ponse du serveur distant est la suivante :
550 5.1.1 The email account that you tried to reach does not exist.

----- Original message -----

Subject: ${i.subject}
To: ${i.rcpt}
`),
  },
  {
    format: 'postfix',
    name: 'Postfix plain-text bounce, copy of the message below',
    names: 'message_id',
    build: (i) =>
      crlf(`From: MAILER-DAEMON@smtp.hebergeur.fr (Mail Delivery System)
To: ${i.sender}
Date: ${rfcDate(i.date)}
Subject: Undelivered Mail Returned to Sender
Message-ID: <${i.tag}@smtp.hebergeur.fr>

This is the mail system at host smtp.hebergeur.fr.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

<${i.rcpt}>: host mx.client.fr[192.0.2.1] said: 550 5.1.1
    <${i.rcpt}>: Recipient address rejected: User unknown in local recipient
    table (in reply to RCPT TO command)

--- Below this line is a copy of the message.

${returned(i)}

Bonjour,
`),
  },
  {
    format: 'postfix',
    name: 'Postfix plain-text bounce, mailbox disabled, no copy: recipient and subject',
    names: 'recipient_subject',
    build: (i) =>
      crlf(`From: Mail Delivery System <MAILER-DAEMON@mail.exemple-hebergement.com>
To: ${i.sender}
Date: ${rfcDate(i.date)}
Subject: Undelivered Mail Returned to Sender
Message-ID: <${i.tag}@mail.exemple-hebergement.com>

This is the mail system at host mail.exemple-hebergement.com.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<${i.rcpt}>: host mx2.client.fr[192.0.2.2] said: 550 5.2.1 Mailbox
    disabled for this recipient (in reply to RCPT TO command)
`),
  },
  {
    format: 'exim',
    name: 'Exim, X-Failed-Recipients, copy of the message',
    names: 'message_id',
    build: (i) =>
      crlf(`From: Mail Delivery System <Mailer-Daemon@srv1.hebergeur.fr>
To: ${i.sender}
Date: ${rfcDate(i.date)}
Subject: Mail delivery failed: returning message to sender
Message-Id: <${i.tag}@srv1.hebergeur.fr>
X-Failed-Recipients: ${i.rcpt}
Auto-Submitted: auto-replied

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  ${i.rcpt}
    host mx.client.fr [192.0.2.5]
    SMTP error from remote mail server after RCPT TO:<${i.rcpt}>:
    550 5.1.1 No such user here

------ This is a copy of the message, including all the headers. ------

${returned(i)}

Bonjour,
`),
  },
  {
    format: 'exim',
    name: 'Exim without X-Failed-Recipients, unrouteable domain',
    names: 'message_id',
    build: (i) =>
      crlf(`From: Mail Delivery System <Mailer-Daemon@mail.o2switch.net>
To: ${i.sender}
Date: ${rfcDate(i.date)}
Subject: Mail delivery failed: returning message to sender
Message-Id: <${i.tag}@mail.o2switch.net>
Auto-Submitted: auto-replied

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  ${i.rcpt}
    Unrouteable address

------ This is a copy of the message, including all the headers. ------

${returned(i)}
`),
  },
  {
    format: 'qmail',
    name: 'qmail, no mailbox here by that name (#5.1.1)',
    names: 'message_id',
    build: (i) =>
      crlf(`From: MAILER-DAEMON@qmail.exemple.org
To: ${i.sender}
Date: ${rfcDate(i.date)}
Subject: failure notice
Message-ID: <${i.tag}@qmail.exemple.org>

Hi. This is the qmail-send program at qmail.exemple.org.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<${i.rcpt}>:
Sorry, no mailbox here by that name. (#5.1.1)

--- Below this line is a copy of the message.

${returned(i)}
`),
  },
  {
    format: 'qmail',
    name: 'qmail, remote 550 relayed, no copy: recipient and subject',
    names: 'recipient_subject',
    build: (i) =>
      crlf(`From: MAILER-DAEMON@mail.ovh.net
To: ${i.sender}
Date: ${rfcDate(i.date)}
Subject: failure notice
Message-ID: <${i.tag}@mail.ovh.net>

Hi. This is the qmail-send program at mail.ovh.net.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<${i.rcpt}>:
192.0.2.8 does not like recipient.
Remote host said: 550 5.1.1 <${i.rcpt}>... User unknown
Giving up on 192.0.2.8.
`),
  },
  {
    format: 'x-failed-recipients',
    name: 'X-Failed-Recipients only, returned Message-ID in the body',
    names: 'message_id',
    build: (i) =>
      crlf(`From: postmaster@smtp-out.exemple.com
To: ${i.sender}
Date: ${rfcDate(i.date)}
Subject: Delivery failure
Message-ID: <${i.tag}@smtp-out.exemple.com>
X-Failed-Recipients: ${i.rcpt}
Auto-Submitted: auto-replied

Your message could not be delivered: the recipient's server answered
550 Requested action not taken: mailbox unavailable

Message-ID: <${i.messageId}>
Subject: ${i.subject}
`),
  },
  {
    format: 'x-failed-recipients',
    name: 'X-Failed-Recipients, French notice, no id: recipient and subject',
    names: 'recipient_subject',
    build: (i) =>
      crlf(`From: "Serveur de messagerie" <mailer-daemon@mail.laposte-pro.fr>
To: ${i.sender}
Date: ${rfcDate(i.date)}
Subject: Non remis : ${i.subject}
Message-ID: <${i.tag}@mail.laposte-pro.fr>
X-Failed-Recipients: ${i.rcpt}
Auto-Submitted: auto-replied
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Votre message n'a pas pu être remis à son destinataire : adresse inconnue.
`),
  },
];

/** A soft bounce (mailbox full, RFC 3464 with a 4.2.2 status), returning the original's headers. */
export function softBounce(i: SampleInput): string {
  return BOUNCE_SAMPLES[0]
    .build(i)
    .replace(/Status: 5\.1\.1/, 'Status: 4.2.2')
    .replace(/Diagnostic-Code: smtp; 550 5\.1\.1 [^\r\n]*\r\n[^\r\n]*/, 'Diagnostic-Code: smtp; 452 4.2.2 Mailbox full')
    .replace(/Action: failed/, 'Action: failed');
}
