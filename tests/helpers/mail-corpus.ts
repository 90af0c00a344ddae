/**
 * A malformed / tricky mail corpus, generated (no binary fixtures), each message with the outcome
 * the import must produce. Order matters: messages are appended in this order, so a reply
 * always comes after the message it answers.
 */
import { fallbackKey } from '../../lib/mime/dedupe-key.js';
import type { MessageKind } from '../../lib/mime/kinds.js';

const CRLF = '\r\n';

export type CorpusExpectation = {
  /** A row whose external_id is this (or `hash` for a content-hash row found by its text) exists. */
  externalId: string | 'hash';
  /** The stored `inbox_messages.kind`. */
  kind?: MessageKind;
  /** The stored text starts with this (after trimming). */
  textStartsWith?: string;
  /** Another corpus message with the same key: this one must NOT create a second row. */
  duplicateOf?: string;
  subject?: string;
  textIncludes?: string[];
  textExcludes?: string[];
  fromEmail?: string | null;
  fromName?: string;
  /** created: a client with this email now exists; none: no client for the sender. */
  client?: 'created' | 'existing' | 'none';
  attachments?: { name: string; mimeType?: string; skipped?: boolean }[];
  sentAt?: 'null' | 'future' | string;
  oversize?: boolean;
  /** The parser gives up on it: recorded in inbox_poison_messages, skipped, never blocks the mailbox. */
  poison?: boolean;
  /** In the same conversation as that corpus message. */
  threadWith?: string;
  /** In a different conversation from that corpus message. */
  separateFrom?: string;
};

export type CorpusMessage = { name: string; raw: Buffer; expect: CorpusExpectation };

const date = 'Mon, 12 Jan 2026 10:00:00 +0100';

function msg(headers: Record<string, string | undefined>, body: string | Buffer, encoding: BufferEncoding = 'utf8'): Buffer {
  const head = Object.entries(headers)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}: ${v}`)
    .join(CRLF);
  return Buffer.concat([Buffer.from(head + CRLF + CRLF, encoding), typeof body === 'string' ? Buffer.from(body, encoding) : body]);
}

function b64lines(buf: Buffer): string {
  return buf.toString('base64').replace(/.{76}/g, `$&${CRLF}`);
}

export type CorpusOptions = {
  /** Size of the huge attachment (the issue asks for 30 MB; over MAX_MESSAGE_BYTES once base64). */
  hugeAttachmentBytes?: number;
  /** Size of an attachment over MAX_ATTACHMENT_BYTES but inside MAX_MESSAGE_BYTES. */
  bigAttachmentBytes?: number;
  blockedDomain?: string;
  existingClientEmail?: string;
};

export function buildCorpus(opts: CorpusOptions = {}): CorpusMessage[] {
  const huge = opts.hugeAttachmentBytes ?? 30 * 1024 * 1024;
  const big = opts.bigAttachmentBytes ?? 1_500_000;
  const blocked = opts.blockedDomain ?? 'partenaire-bloque.fr';
  const existing = opts.existingClientEmail ?? 'deja.client@exemple.fr';
  const out: CorpusMessage[] = [];
  const add = (name: string, raw: Buffer, expect: CorpusExpectation) => out.push({ name, raw, expect });
  const base = (id: string | undefined, from: string, subject: string, extra: Record<string, string | undefined> = {}) => ({
    From: from,
    To: 'contact@lokario-test.fr',
    Subject: subject,
    Date: date,
    'Message-ID': id,
    'MIME-Version': '1.0',
    ...extra,
  });

  add(
    'plain',
    msg(
      {
        ...base('<plain-1@corpus.test>', 'Jean Dupont <jean.dupont@exemple.fr>', 'Demande de devis'),
        'Content-Type': 'text/plain; charset=utf-8',
      },
      `Bonjour,${CRLF}Pouvez-vous m'envoyer un devis ?${CRLF}Jean${CRLF}`,
    ),
    {
      externalId: 'plain-1@corpus.test',
      kind: 'person',
      subject: 'Demande de devis',
      textIncludes: ["m'envoyer un devis"],
      fromEmail: 'jean.dupont@exemple.fr',
      fromName: 'Jean Dupont',
      client: 'created',
      sentAt: '2026-01-12T09:00:00.000Z',
    },
  );

  add(
    'no-message-id-a',
    msg(
      { ...base(undefined, 'Paul <paul@exemple.fr>', 'Sans identifiant'), 'Content-Type': 'text/plain' },
      `Premier message sans Message-ID${CRLF}`,
    ),
    { externalId: 'hash', textIncludes: ['Premier message sans Message-ID'], client: 'created' },
  );
  add(
    'no-message-id-b',
    msg(
      { ...base(undefined, 'Paul <paul@exemple.fr>', 'Sans identifiant'), 'Content-Type': 'text/plain' },
      `Second message sans Message-ID${CRLF}`,
    ),
    { externalId: 'hash', textIncludes: ['Second message sans Message-ID'], client: 'existing' },
  );

  add(
    'dup-mid-first',
    msg({ ...base('<dup@corpus.test>', 'Alice <alice@exemple.fr>', 'Doublon'), 'Content-Type': 'text/plain' }, `version 1${CRLF}`),
    { externalId: 'dup@corpus.test', textIncludes: ['version 1'], client: 'created' },
  );
  add(
    'dup-mid-second',
    msg({ ...base(' < dup@corpus.test > ', 'Alice <alice@exemple.fr>', 'Doublon'), 'Content-Type': 'text/plain' }, `version 2${CRLF}`),
    { externalId: 'dup@corpus.test', duplicateOf: 'dup-mid-first' },
  );

  add(
    'iso-8859-1-qp',
    msg(
      {
        ...base('<latin1-qp@corpus.test>', 'Zoé <zoe@exemple.fr>', 'Facture'),
        'Content-Type': 'text/plain; charset=ISO-8859-1',
        'Content-Transfer-Encoding': 'quoted-printable',
      },
      `Caf=E9 cr=E8me et g=E2teau${CRLF}`,
    ),
    { externalId: 'latin1-qp@corpus.test', textIncludes: ['Café crème et gâteau'] },
  );
  add(
    'iso-8859-1-8bit',
    msg(
      {
        ...base('<latin1-8bit@corpus.test>', 'zoe@exemple.fr', 'Réservation'),
        'Content-Type': 'text/plain; charset=iso-8859-1',
        'Content-Transfer-Encoding': '8bit',
      },
      Buffer.from(`Réservation confirmée à Orléans${CRLF}`, 'latin1'),
    ),
    { externalId: 'latin1-8bit@corpus.test', textIncludes: ['Réservation confirmée à Orléans'] },
  );
  add(
    'windows-1252',
    msg(
      {
        ...base('<cp1252@corpus.test>', 'compta@fournisseur.fr', 'Montant'),
        'Content-Type': 'text/plain; charset=windows-1252',
        'Content-Transfer-Encoding': '8bit',
      },
      Buffer.concat([
        Buffer.from('Total : 120 '),
        Buffer.from([0x80]),
        Buffer.from(' ', 'latin1'),
        Buffer.from([0x93]),
        Buffer.from('merci'),
        Buffer.from([0x94, 0x0d, 0x0a]),
      ]),
    ),
    { externalId: 'cp1252@corpus.test', textIncludes: ['Total : 120 € “merci”'] },
  );

  add(
    'rfc2047-q',
    msg(
      {
        ...base('<rfc2047-q@corpus.test>', '=?ISO-8859-1?Q?Ren=E9_Martin?= <rene@exemple.fr>', '=?ISO-8859-1?Q?R=E9union_de_chantier?='),
        'Content-Type': 'text/plain',
      },
      `ok${CRLF}`,
    ),
    { externalId: 'rfc2047-q@corpus.test', subject: 'Réunion de chantier', fromName: 'René Martin' },
  );
  add(
    'rfc2047-b-emoji',
    msg(
      {
        ...base('<rfc2047-b@corpus.test>', 'emma@exemple.fr', `=?UTF-8?B?${Buffer.from('Merci 🎉 pour le chantier').toString('base64')}?=`),
        'Content-Type': 'text/plain',
      },
      `ok${CRLF}`,
    ),
    { externalId: 'rfc2047-b@corpus.test', subject: 'Merci 🎉 pour le chantier' },
  );
  add(
    'rfc2047-split',
    msg(
      {
        ...base(
          '<rfc2047-split@corpus.test>',
          'emma@exemple.fr',
          `=?UTF-8?Q?Pr=C3=A9paration?=${CRLF} =?UTF-8?Q?_du_d=C3=A9m=C3=A9nagement?=`,
        ),
        'Content-Type': 'text/plain',
      },
      `ok${CRLF}`,
    ),
    { externalId: 'rfc2047-split@corpus.test', subject: 'Préparation du déménagement' },
  );

  add(
    'html-only',
    msg(
      { ...base('<html-only@corpus.test>', 'Marc <marc@exemple.fr>', 'HTML seulement'), 'Content-Type': 'text/html; charset=utf-8' },
      `<html><head><style>p{color:red}</style><script>alert('x')</script></head><body><p>Bonjour <b>Lokario</b></p><p>Deuxi&egrave;me paragraphe</p></body></html>${CRLF}`,
    ),
    {
      externalId: 'html-only@corpus.test',
      textIncludes: ['Bonjour Lokario', 'Deuxième paragraphe'],
      textExcludes: ['<b>', 'alert(', 'color:red'],
    },
  );

  add(
    'alternative',
    msg(
      {
        ...base('<alternative@corpus.test>', 'Marc <marc@exemple.fr>', 'Alternative'),
        'Content-Type': 'multipart/alternative; boundary="alt"',
      },
      [
        '--alt',
        'Content-Type: text/plain; charset=utf-8',
        '',
        'Version texte',
        '--alt',
        'Content-Type: text/html; charset=utf-8',
        '',
        '<p>Version HTML</p>',
        '--alt--',
        '',
      ].join(CRLF),
    ),
    { externalId: 'alternative@corpus.test', textIncludes: ['Version texte'], textExcludes: ['Version HTML'] },
  );

  const pdf = Buffer.from('%PDF-1.4\n% fake pdf for tests\n');
  const png = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010806000000', 'hex');
  add(
    'nested-multipart',
    msg(
      { ...base('<nested@corpus.test>', 'Marc <marc@exemple.fr>', 'Plans'), 'Content-Type': 'multipart/mixed; boundary="outer"' },
      [
        '--outer',
        'Content-Type: multipart/alternative; boundary="mid"',
        '',
        '--mid',
        'Content-Type: text/plain; charset=utf-8',
        '',
        'Voici les plans',
        '',
        '--mid',
        'Content-Type: multipart/related; boundary="inner"',
        '',
        '--inner',
        'Content-Type: text/html; charset=utf-8',
        '',
        '<p>Voici les plans <img src="cid:logo@x"></p>',
        '--inner',
        'Content-Type: image/png',
        'Content-ID: <logo@x>',
        'Content-Disposition: inline',
        'Content-Transfer-Encoding: base64',
        '',
        png.toString('base64'),
        '--inner--',
        '',
        '--mid--',
        '',
        '--outer',
        'Content-Type: application/pdf; name="plans.pdf"',
        'Content-Disposition: attachment; filename="plans.pdf"',
        'Content-Transfer-Encoding: base64',
        '',
        pdf.toString('base64'),
        '--outer--',
        '',
      ].join(CRLF),
    ),
    {
      externalId: 'nested@corpus.test',
      textIncludes: ['Voici les plans'],
      attachments: [{ name: 'plans.pdf', mimeType: 'application/pdf' }],
    },
  );

  add(
    'evil-filename',
    msg(
      { ...base('<evil-name@corpus.test>', 'Marc <marc@exemple.fr>', 'Fichier'), 'Content-Type': 'multipart/mixed; boundary="b"' },
      [
        '--b',
        'Content-Type: text/plain',
        '',
        'voir pièce jointe',
        '--b',
        'Content-Type: application/octet-stream',
        'Content-Disposition: attachment; filename="../../etc/pa\u0001ss\twd\u202e.txt"',
        '',
        'secret',
        '--b--',
        '',
      ].join(CRLF),
    ),
    { externalId: 'evil-name@corpus.test', attachments: [{ name: 'passwd.txt' }] },
  );
  add(
    'rfc2231-filename',
    msg(
      { ...base('<rfc2231@corpus.test>', 'Marc <marc@exemple.fr>', 'CV'), 'Content-Type': 'multipart/mixed; boundary="b"' },
      [
        '--b',
        'Content-Type: text/plain',
        '',
        'cv joint',
        '--b',
        'Content-Type: application/pdf',
        "Content-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9%20final.pdf",
        'Content-Transfer-Encoding: base64',
        '',
        pdf.toString('base64'),
        '--b--',
        '',
      ].join(CRLF),
    ),
    { externalId: 'rfc2231@corpus.test', attachments: [{ name: 'résumé final.pdf', mimeType: 'application/pdf' }] },
  );

  add(
    'huge-attachment',
    msg(
      { ...base('<huge@corpus.test>', 'Marc <marc@exemple.fr>', 'Vidéo du chantier'), 'Content-Type': 'multipart/mixed; boundary="b"' },
      [
        '--b',
        'Content-Type: text/plain',
        '',
        'la vidéo',
        '--b',
        'Content-Type: video/mp4',
        'Content-Disposition: attachment; filename="chantier.mp4"',
        'Content-Transfer-Encoding: base64',
        '',
        b64lines(Buffer.alloc(huge, 7)),
        '--b--',
        '',
      ].join(CRLF),
    ),
    { externalId: 'huge@corpus.test', subject: 'Vidéo du chantier', oversize: true, textIncludes: ['non importé'], attachments: [] },
  );
  add(
    'big-attachment',
    msg(
      { ...base('<big-attachment@corpus.test>', 'Marc <marc@exemple.fr>', 'Photos'), 'Content-Type': 'multipart/mixed; boundary="b"' },
      [
        '--b',
        'Content-Type: text/plain',
        '',
        'les photos',
        '--b',
        'Content-Type: image/jpeg',
        'Content-Disposition: attachment; filename="photo.jpg"',
        'Content-Transfer-Encoding: base64',
        '',
        b64lines(Buffer.alloc(big, 1)),
        '--b',
        'Content-Type: text/plain',
        'Content-Disposition: attachment; filename="notes.txt"',
        '',
        'petit fichier',
        '--b--',
        '',
      ].join(CRLF),
    ),
    {
      externalId: 'big-attachment@corpus.test',
      textIncludes: ['les photos'],
      attachments: [
        { name: 'photo.jpg', mimeType: 'image/jpeg', skipped: true },
        { name: 'notes.txt', mimeType: 'text/plain' },
      ],
    },
  );

  add(
    'broken-boundary',
    msg(
      {
        ...base('<broken-boundary@corpus.test>', 'Luc <luc@exemple.fr>', 'Coupé'),
        'Content-Type': 'multipart/mixed; boundary="never-closed"',
      },
      [
        'preamble',
        '--never-closed',
        'Content-Type: text/plain',
        '',
        'texte avant la coupure',
        '--never-closed',
        'Content-Type: application/pdf',
        'Content-Disposition: attachment; filename="tronque.pdf"',
        'Content-Transfer-Encoding: base64',
        '',
        'JVBERi0x',
      ].join(CRLF),
    ),
    { externalId: 'broken-boundary@corpus.test', textIncludes: ['texte avant la coupure'] },
  );
  add(
    'unused-boundary',
    msg(
      {
        ...base('<unused-boundary@corpus.test>', 'Luc <luc@exemple.fr>', 'Pas de parties'),
        'Content-Type': 'multipart/mixed; boundary="absent"',
      },
      `Corps sans aucune partie${CRLF}`,
    ),
    { externalId: 'unused-boundary@corpus.test' },
  );

  add(
    '8bit-utf8-headers',
    msg(
      {
        ...base('<8bit-utf8@corpus.test>', 'Hélène Côté <helene@exemple.fr>', 'Chiffrage à l’étage'),
        'Content-Type': 'text/plain; charset=utf-8',
      },
      `ok${CRLF}`,
    ),
    { externalId: '8bit-utf8@corpus.test', subject: 'Chiffrage à l’étage', fromName: 'Hélène Côté', fromEmail: 'helene@exemple.fr' },
  );
  add(
    '8bit-latin1-headers',
    msg(
      { ...base('<8bit-latin1@corpus.test>', 'Gérard <gerard@exemple.fr>', 'Problème'), 'Content-Type': 'text/plain; charset=iso-8859-1' },
      `ok${CRLF}`,
      'latin1',
    ),
    { externalId: '8bit-latin1@corpus.test', fromEmail: 'gerard@exemple.fr', fromName: 'Gérard', subject: 'Problème' },
  );

  add(
    'future-date',
    msg(
      {
        ...base('<future@corpus.test>', 'Luc <luc@exemple.fr>', 'Du futur', { Date: 'Thu, 01 Jan 2099 00:00:00 +0000' }),
        'Content-Type': 'text/plain',
      },
      `ok${CRLF}`,
    ),
    { externalId: 'future@corpus.test', sentAt: 'future' },
  );
  add(
    'no-date',
    msg(
      { ...base('<no-date@corpus.test>', 'Luc <luc@exemple.fr>', 'Sans date', { Date: undefined }), 'Content-Type': 'text/plain' },
      `ok${CRLF}`,
    ),
    { externalId: 'no-date@corpus.test', sentAt: 'null' },
  );
  add(
    'garbage-date',
    msg(
      {
        ...base('<garbage-date@corpus.test>', 'Luc <luc@exemple.fr>', 'Date illisible', { Date: 'le 32 du mois prochain' }),
        'Content-Type': 'text/plain',
      },
      `ok${CRLF}`,
    ),
    { externalId: 'garbage-date@corpus.test', sentAt: 'null' },
  );

  add(
    'noreply',
    msg(
      { ...base('<noreply@corpus.test>', 'Boutique <no-reply@boutique.fr>', 'Votre commande'), 'Content-Type': 'text/plain' },
      `commande${CRLF}`,
    ),
    { externalId: 'noreply@corpus.test', client: 'none', kind: 'automated' },
  );
  add(
    'list-id',
    msg(
      {
        ...base('<list@corpus.test>', 'La Lettre <lettre@media.fr>', 'Lettre hebdo', {
          'List-Id': '<hebdo.media.fr>',
          'List-Unsubscribe': '<mailto:unsub@media.fr>',
        }),
        'Content-Type': 'text/plain',
      },
      `news${CRLF}`,
    ),
    { externalId: 'list@corpus.test', client: 'none', kind: 'list' },
  );
  add(
    'precedence-bulk',
    msg(
      { ...base('<bulk@corpus.test>', 'Promo <promo@soldes.fr>', 'Soldes', { Precedence: 'bulk' }), 'Content-Type': 'text/plain' },
      `soldes${CRLF}`,
    ),
    { externalId: 'bulk@corpus.test', client: 'none', kind: 'list' },
  );
  add(
    'auto-submitted',
    msg(
      {
        ...base('<auto@corpus.test>', 'Bob <bob@vacances.fr>', 'Absence', { 'Auto-Submitted': 'auto-replied' }),
        'Content-Type': 'text/plain',
      },
      `absent${CRLF}`,
    ),
    { externalId: 'auto@corpus.test', client: 'none', kind: 'auto_reply' },
  );
  add(
    'blocked-domain',
    msg(
      { ...base('<blocked@corpus.test>', `Partenaire <contact@${blocked}>`, 'Partenariat'), 'Content-Type': 'text/plain' },
      `partenariat${CRLF}`,
    ),
    { externalId: 'blocked@corpus.test', client: 'none' },
  );
  add(
    'existing-client-mixed-case',
    msg(
      { ...base('<existing@corpus.test>', `Client Connu <${existing.toUpperCase()}>`, 'Question'), 'Content-Type': 'text/plain' },
      `question${CRLF}`,
    ),
    { externalId: 'existing@corpus.test', client: 'existing', fromEmail: existing },
  );

  add(
    'reply-in-reply-to',
    msg(
      {
        ...base('<reply-1@corpus.test>', 'Jean Dupont <jean.dupont@exemple.fr>', 'RE: Demande de devis', {
          'In-Reply-To': '<plain-1@corpus.test>',
        }),
        'Content-Type': 'text/plain',
      },
      `précision${CRLF}`,
    ),
    { externalId: 'reply-1@corpus.test', threadWith: 'plain' },
  );
  add(
    'reply-references',
    msg(
      {
        ...base('<reply-2@corpus.test>', 'Marie <marie@exemple.fr>', 'Tr: autre sujet', {
          References: '<unknown-old@elsewhere> <plain-1@corpus.test> <never-seen@elsewhere>',
        }),
        'Content-Type': 'text/plain',
      },
      `transfert${CRLF}`,
    ),
    { externalId: 'reply-2@corpus.test', threadWith: 'plain' },
  );
  add(
    'same-subject-other-sender',
    msg(
      { ...base('<other-sender@corpus.test>', 'Inconnu <quelquun@ailleurs.fr>', 'Demande de devis'), 'Content-Type': 'text/plain' },
      `autre personne${CRLF}`,
    ),
    { externalId: 'other-sender@corpus.test', separateFrom: 'plain', client: 'created' },
  );
  add(
    'same-sender-same-subject',
    msg(
      {
        ...base('<same-sender@corpus.test>', 'Jean Dupont <JEAN.DUPONT@exemple.fr>', 'Re: Re: demande de devis'),
        'Content-Type': 'text/plain',
      },
      `relance${CRLF}`,
    ),
    { externalId: 'same-sender@corpus.test', threadWith: 'plain' },
  );

  add(
    'nul-byte',
    msg({ ...base('<nul@corpus.test>', 'Luc <luc@exemple.fr>', 'Octet nul'), 'Content-Type': 'text/plain' }, `avant\u0000après${CRLF}`),
    { externalId: 'nul@corpus.test', textIncludes: ['avant', 'après'], textExcludes: ['\u0000'] },
  );
  add(
    'no-from',
    msg(
      {
        To: 'contact@lokario-test.fr',
        Subject: 'Anonyme',
        Date: date,
        'Message-ID': '<no-from@corpus.test>',
        'Content-Type': 'text/plain',
      },
      `qui ?${CRLF}`,
    ),
    { externalId: 'no-from@corpus.test', fromEmail: null, fromName: 'Inconnu', client: 'none' },
  );
  add(
    'like-metachar-a',
    msg({ ...base('<abc-123@corpus.test>', 'Luc <luc@exemple.fr>', 'Id A'), 'Content-Type': 'text/plain' }, `a${CRLF}`),
    { externalId: 'abc-123@corpus.test' },
  );
  add('like-metachar-b', msg({ ...base('<123@corpus.test>', 'Luc <luc@exemple.fr>', 'Id B'), 'Content-Type': 'text/plain' }, `b${CRLF}`), {
    externalId: '123@corpus.test',
  });
  add(
    'like-metachar-c',
    msg({ ...base('<50%_off@corpus.test>', 'Luc <luc@exemple.fr>', 'Id C'), 'Content-Type': 'text/plain' }, `c${CRLF}`),
    { externalId: '50%_off@corpus.test' },
  );
  add('empty-body', msg({ ...base('<empty@corpus.test>', 'Luc <luc@exemple.fr>', 'Vide'), 'Content-Type': 'text/plain' }, ''), {
    externalId: 'empty@corpus.test',
  });
  add(
    'forwarded-rfc822',
    msg(
      { ...base('<fwd@corpus.test>', 'Luc <luc@exemple.fr>', 'Fwd: message'), 'Content-Type': 'multipart/mixed; boundary="b"' },
      [
        '--b',
        'Content-Type: text/plain',
        '',
        'je transfère',
        '--b',
        'Content-Type: message/rfc822',
        'Content-Disposition: attachment; filename="original.eml"',
        '',
        'From: x@y.fr',
        'Subject: original',
        '',
        'corps original',
        '--b--',
        '',
      ].join(CRLF),
    ),
    { externalId: 'fwd@corpus.test', textIncludes: ['je transfère'], attachments: [{ name: 'original.eml' }] },
  );
  let nested = '';
  for (let i = 0; i < 3000; i++) nested += `Content-Type: multipart/mixed; boundary="n${i}"${CRLF}${CRLF}--n${i}${CRLF}`;
  // mailparser refuses this structure: imported from its header block, with a note as its text
  add(
    'deep-nesting-headers-only',
    Buffer.from(
      `From: Luc <luc@exemple.fr>${CRLF}Subject: Poupées russes${CRLF}Message-ID: <poison@corpus.test>${CRLF}MIME-Version: 1.0${CRLF}${nested}Content-Type: text/plain${CRLF}${CRLF}fond${CRLF}`,
    ),
    { externalId: 'poison@corpus.test', subject: 'Poupées russes', fromEmail: 'luc@exemple.fr', textIncludes: ['illisible', 'messagerie'] },
  );
  // not a message: no header field at all
  add('poison-no-header', Buffer.from(`ceci n'est pas un en-tête${CRLF}ni ceci${CRLF}${CRLF}corps sans en-tête${CRLF}`), {
    externalId: 'hash',
    poison: true,
  });
  // an attachment whose Content-Type is empty (seen in real mail): its body and the message are kept
  add(
    'empty-part-content-type',
    msg(
      { ...base('<empty-ct@corpus.test>', 'Luc <luc@exemple.fr>', 'Pièce sans type'), 'Content-Type': 'multipart/mixed; boundary="e"' },
      [
        '--e',
        'Content-Type: text/plain; charset=utf-8',
        '',
        'voici le devis signé',
        '--e',
        'Content-Type: ;',
        'Content-Disposition: attachment; filename="devis.pdf"',
        'Content-Transfer-Encoding: base64',
        '',
        Buffer.from('%PDF-1.4 devis').toString('base64'),
        '--e--',
        '',
      ].join(CRLF),
    ),
    { externalId: 'empty-ct@corpus.test', textIncludes: ['voici le devis signé'], attachments: [{ name: 'devis.pdf' }] },
  );
  add(
    'after-poison',
    msg(
      { ...base('<after-poison@corpus.test>', 'Luc <luc@exemple.fr>', 'Après le poison'), 'Content-Type': 'text/plain' },
      `toujours importé${CRLF}`,
    ),
    { externalId: 'after-poison@corpus.test', textIncludes: ['toujours importé'] },
  );
  for (const m of realWorldMessages()) out.push(m);
  return out;
}

/** Lines joined with CRLF, as bytes: `latin1` keeps \xNN escapes as single raw bytes (8-bit headers). */
const eml = (lines: string[], encoding: BufferEncoding = 'utf8') => Buffer.from(lines.join(CRLF) + CRLF, encoding);
const b64 = (s: string | Buffer) => b64lines(Buffer.isBuffer(s) ? s : Buffer.from(s, 'utf8'));
const qp = (s: string) =>
  Buffer.from(s, 'utf8')
    .toString('latin1')
    .replace(/[=\x80-\xff]/g, (c) => `=${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);

/**
 * Messages written the way real clients and servers produce them, one group per way the import
 * went wrong on real mail (docs/inbox-sync.md): mail without Message-ID differing only by an
 * attachment or its HTML, HTML without text/plain, garbled headers, UTF-7, machine mail.
 */
export function realWorldMessages(): CorpusMessage[] {
  const out: CorpusMessage[] = [];
  const add = (name: string, raw: Buffer, expect: CorpusExpectation) => out.push({ name, raw, expect });
  const logo = Buffer.from('89504e470d0a1a0a0000000d49484452000000100000001008060000001ff3ff61', 'hex');

  // --- 1. no Message-ID, differing only by the attachment or the HTML (old key: one row for both)
  const scan = (n: number) =>
    eml([
      'From: Scanner Accueil <scanner@cabinet-martin.fr>',
      'To: contact@lokario-test.fr',
      'Subject: Document numérisé',
      'Date: Tue, 13 Jan 2026 08:15:02 +0100',
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="----=_NextPart_SCAN"',
      '',
      '------=_NextPart_SCAN',
      'Content-Type: application/pdf; name="scan.pdf"',
      'Content-Disposition: attachment; filename="scan.pdf"',
      'Content-Transfer-Encoding: base64',
      '',
      b64(`%PDF-1.4\n% page ${n}\n${'x'.repeat(200)}\n%%EOF\n`),
      '------=_NextPart_SCAN--',
    ]);
  for (const n of [1, 2]) {
    const raw = scan(n);
    add(`no-id-attachment-only-${n}`, raw, {
      externalId: fallbackKey(raw),
      kind: 'person',
      client: n === 1 ? 'created' : 'existing',
      attachments: [{ name: 'scan.pdf', mimeType: 'application/pdf' }],
    });
  }
  const webForm = (who: string) =>
    eml([
      'From: Formulaire du site <formulaire@menuiserie-roux.fr>',
      'To: contact@lokario-test.fr',
      'Subject: Nouveau message du site',
      'Date: Wed, 14 Jan 2026 09:30:00 +0100',
      'MIME-Version: 1.0',
      'Content-Type: multipart/alternative; boundary="b1_form"',
      '', // a PHP mailer: the alternative, its text part left out
      '--b1_form',
      'Content-Type: text/html; charset=UTF-8',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      qp(`<html><body><h2>Nouveau message</h2><p>Nom : ${who}</p><p>Message : devis pour une fenêtre</p></body></html>`),
      '--b1_form--',
    ]);
  for (const who of ['Claire Petit', 'Hugo Lambert']) {
    const raw = webForm(who);
    add(`no-id-html-only-${who.split(' ')[0].toLowerCase()}`, raw, {
      externalId: fallbackKey(raw),
      kind: 'person',
      textIncludes: [`Nom : ${who}`, 'devis pour une fenêtre'],
      client: who === 'Claire Petit' ? 'created' : 'existing',
    });
  }
  const photo = (n: number) =>
    eml([
      'From: Luc Bernard <luc.bernard@exemple.fr>',
      'To: contact@lokario-test.fr',
      'Subject: Photos',
      'Date: Thu, 15 Jan 2026 18:02:11 +0100',
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="Apple-Mail=_P"',
      '',
      '--Apple-Mail=_P',
      'Content-Type: text/plain; charset=us-ascii',
      '',
      'Voici la photo',
      '',
      '--Apple-Mail=_P',
      'Content-Type: image/jpeg; name="IMG_0001.jpg"',
      'Content-Disposition: attachment; filename="IMG_0001.jpg"',
      'Content-Transfer-Encoding: base64',
      '',
      b64(Buffer.alloc(600, n)),
      '--Apple-Mail=_P--',
    ]);
  for (const n of [1, 2]) {
    const raw = photo(n);
    add(`no-id-same-text-other-photo-${n}`, raw, {
      externalId: fallbackKey(raw),
      textStartsWith: 'Voici la photo',
      attachments: [{ name: 'IMG_0001.jpg', mimeType: 'image/jpeg' }],
    });
  }

  // --- 2. HTML without text/plain, in every kind of container
  add(
    'outlook-html-inline-logo',
    eml([
      'From: "Sophie Moreau" <sophie.moreau@moreau-batiment.fr>',
      'To: "contact@lokario-test.fr" <contact@lokario-test.fr>',
      'Subject: Chantier rue des Lilas',
      'Date: Fri, 16 Jan 2026 11:42:07 +0000',
      'Message-ID: <DB9PR02MB7211A1B2C3D4E5F6@DB9PR02MB7211.eurprd02.prod.outlook.com>',
      'Content-Language: fr-FR',
      'X-MS-Has-Attach: yes',
      'MIME-Version: 1.0',
      'Content-Type: multipart/related; boundary="_004_DB9PR02MB7211_"; type="text/html"',
      '',
      '--_004_DB9PR02MB7211_',
      'Content-Type: text/html; charset="utf-8"',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      qp(
        '<html xmlns:o="urn:schemas-microsoft-com:office:office"><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"><style><!-- p.MsoNormal {margin:0cm; font-family:"Calibri",sans-serif;} --></style><!--[if gte mso 9]><xml><o:shapedefaults v:ext="edit" spidmax="1026" /></xml><![endif]--></head><body lang="FR"><div class="WordSection1"><p class="MsoNormal">Bonjour,<o:p></o:p></p><p class="MsoNormal">Pouvez-vous passer jeudi pour le métré ? Le plan est <a href="https://moreau-batiment.fr/plans/lilas">sur notre site</a>.<o:p></o:p></p><p class="MsoNormal">Cordialement,<br>Sophie Moreau</p><p class="MsoNormal"><img width="120" height="40" id="Image_x0020_1" src="cid:image001.png@01DC8A1B.2F3E4D50" alt="Moreau Bâtiment"></p></div></body></html>',
      ),
      '',
      '--_004_DB9PR02MB7211_',
      'Content-Type: image/png; name="image001.png"',
      'Content-Description: image001.png',
      'Content-Disposition: inline; filename="image001.png"; size=33',
      'Content-ID: <image001.png@01DC8A1B.2F3E4D50>',
      'Content-Transfer-Encoding: base64',
      '',
      logo.toString('base64'),
      '',
      '--_004_DB9PR02MB7211_--',
    ]),
    {
      externalId: 'DB9PR02MB7211A1B2C3D4E5F6@DB9PR02MB7211.eurprd02.prod.outlook.com',
      kind: 'person',
      client: 'created',
      subject: 'Chantier rue des Lilas',
      fromName: 'Sophie Moreau',
      textStartsWith: 'Bonjour,',
      textIncludes: [
        'Pouvez-vous passer jeudi pour le métré ?',
        'sur notre site [https://moreau-batiment.fr/plans/lilas]',
        'Sophie Moreau',
      ],
      textExcludes: ['MsoNormal', 'Calibri', 'shapedefaults', 'cid:', '<p'],
    },
  );

  add(
    'alternative-html-only-with-script',
    eml([
      'From: Karim Haddad <karim.haddad@exemple.fr>',
      'To: contact@lokario-test.fr',
      'Subject: Rendez-vous',
      'Date: Sat, 17 Jan 2026 07:05:00 +0100',
      'Message-ID: <CAKx9=AbCdEf123@mail.gmail.com>',
      'MIME-Version: 1.0',
      'Content-Type: multipart/alternative; boundary="000000000000a1b2c3"',
      '',
      '--000000000000a1b2c3',
      'Content-Type: text/html; charset="UTF-8"',
      'Content-Transfer-Encoding: base64',
      '',
      b64(
        '<div dir="ltr"><script>document.write("piège")</script><div>Je confirme le rendez-vous de lundi à 9 h.</div><div><br></div><div>Karim</div></div>',
      ),
      '--000000000000a1b2c3--',
    ]),
    {
      externalId: 'CAKx9=AbCdEf123@mail.gmail.com',
      kind: 'person',
      textStartsWith: 'Je confirme le rendez-vous de lundi à 9 h.',
      textIncludes: ['Karim'],
      textExcludes: ['piège', 'document.write'],
    },
  );

  add(
    'mixed-html-and-pdf',
    eml([
      'From: Agence Durand <agence@durand-immo.fr>',
      'To: contact@lokario-test.fr',
      'Subject: Bon de commande signé',
      'Date: Sun, 18 Jan 2026 15:20:00 +0100',
      'Message-ID: <20260118142000.4F2A1@durand-immo.fr>',
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="=_mixed_01"',
      '',
      '--=_mixed_01',
      'Content-Type: multipart/related; boundary="=_related_01"',
      '',
      '--=_related_01',
      'Content-Type: text/html; charset=iso-8859-1',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      '<p>Veuillez trouver ci-joint le bon de commande sign=E9.</p><ul><li>Fen=EAtres</li><li>Volets</li></ul>',
      '--=_related_01',
      'Content-Type: image/gif',
      'Content-ID: <sig01>',
      'Content-Transfer-Encoding: base64',
      '',
      'R0lGODlhAQABAAAAACw=',
      '--=_related_01--',
      '--=_mixed_01',
      'Content-Type: application/pdf; name="bon-de-commande.pdf"',
      'Content-Disposition: attachment; filename="bon-de-commande.pdf"',
      'Content-Transfer-Encoding: base64',
      '',
      b64('%PDF-1.4\n%%EOF\n'),
      '--=_mixed_01--',
    ]),
    {
      externalId: '20260118142000.4F2A1@durand-immo.fr',
      kind: 'person',
      textStartsWith: 'Veuillez trouver ci-joint le bon de commande signé.',
      textIncludes: ['Fenêtres', 'Volets'],
      attachments: [{ name: 'bon-de-commande.pdf', mimeType: 'application/pdf' }],
    },
  );

  add(
    'apple-alternative-text-and-html',
    eml([
      'From: =?utf-8?Q?Am=C3=A9lie_Fontaine?= <amelie.fontaine@icloud.com>',
      'Content-Type: multipart/alternative; boundary="Apple-Mail=_A1B2"',
      'Mime-Version: 1.0 (Mac OS X Mail 16.0 \\(3774.600.62\\))',
      'Subject: =?utf-8?Q?Question_sur_la_facture_n=C2=B0_2026-014?=',
      'Message-Id: <6F1E2D3C-AAAA-BBBB-CCCC-0123456789AB@icloud.com>',
      'Date: Mon, 19 Jan 2026 20:11:45 +0100',
      'To: contact@lokario-test.fr',
      '',
      '--Apple-Mail=_A1B2',
      'Content-Transfer-Encoding: quoted-printable',
      'Content-Type: text/plain; charset=utf-8',
      '',
      qp('Bonsoir, la facture indique 3 fenêtres au lieu de 2.'),
      '',
      '--Apple-Mail=_A1B2',
      'Content-Transfer-Encoding: quoted-printable',
      'Content-Type: text/html; charset=utf-8',
      '',
      qp('<html><body><div>Bonsoir, la facture indique <b>3</b> fenêtres au lieu de 2.</div></body></html>'),
      '--Apple-Mail=_A1B2--',
    ]),
    {
      externalId: '6F1E2D3C-AAAA-BBBB-CCCC-0123456789AB@icloud.com',
      kind: 'person',
      fromName: 'Amélie Fontaine',
      subject: 'Question sur la facture n° 2026-014',
      textStartsWith: 'Bonsoir, la facture indique 3 fenêtres au lieu de 2.',
      textExcludes: ['<b>'],
    },
  );

  // --- 3. headers: 8-bit bytes inside encoded words, raw Latin-1 / Windows-1252, raw 8-bit file names
  add(
    'rfc2047-stray-8bit',
    eml(
      [
        'From: =?iso-8859-1?Q?J=FCrgen_M\xfcller?= <juergen.mueller@beispiel.de>',
        'To: contact@lokario-test.fr',
        'Subject: =?iso-8859-1?Q?Fr\xf6sche_Br\xf6tchen_f=FCr_den_Empfang?=',
        'Date: Tue, 20 Jan 2026 10:00:00 +0100',
        'Message-ID: <stray8bit.1@beispiel.de>',
        'MIME-Version: 1.0',
        'Content-Type: text/plain; charset=iso-8859-1',
        'Content-Transfer-Encoding: 8bit',
        '',
        'Guten Tag, gr\xfc\xdfe aus M\xfcnchen.',
      ],
      'latin1',
    ),
    {
      externalId: 'stray8bit.1@beispiel.de',
      subject: 'Frösche Brötchen für den Empfang',
      fromName: 'Jürgen Müller',
      textStartsWith: 'Guten Tag, grüße aus München.',
    },
  );
  add(
    'raw-latin1-headers',
    eml(
      [
        'From: G\xe9rard Lef\xe8vre <gerard.lefevre@wanadoo.fr>',
        'To: contact@lokario-test.fr',
        'Subject: Probl\xe8me de livraison \xe0 Orl\xe9ans',
        'Date: Wed, 21 Jan 2026 08:00:00 +0100',
        'Message-ID: <raw-latin1.2@wanadoo.fr>',
        'X-Mailer: Microsoft Outlook Express 6.00.2900.5931',
        'MIME-Version: 1.0',
        'Content-Type: text/plain; charset="iso-8859-1"',
        'Content-Transfer-Encoding: 8bit',
        '',
        "Le colis n'est pas arriv\xe9.",
      ],
      'latin1',
    ),
    {
      externalId: 'raw-latin1.2@wanadoo.fr',
      subject: 'Problème de livraison à Orléans',
      fromName: 'Gérard Lefèvre',
      textStartsWith: "Le colis n'est pas arrivé.",
      client: 'created',
    },
  );
  add(
    'raw-cp1252-headers-no-charset',
    eml(
      [
        'From: Fran\xe7oise No\xebl <francoise.noel@orange.fr>',
        'To: contact@lokario-test.fr',
        'Subject: Devis 1 200 \x80 \x93urgent\x94',
        'Date: Thu, 22 Jan 2026 09:00:00 +0100',
        'Message-ID: <raw-cp1252.3@orange.fr>',
        '',
        'Merci de confirmer.',
      ],
      'latin1',
    ),
    {
      externalId: 'raw-cp1252.3@orange.fr',
      subject: 'Devis 1 200 € “urgent”',
      fromName: 'Françoise Noël',
      textStartsWith: 'Merci de confirmer.',
    },
  );
  add(
    'raw-8bit-attachment-name',
    eml(
      [
        'From: Yves Caron <yves.caron@free.fr>',
        'To: contact@lokario-test.fr',
        'Subject: =?ISO-8859-1?Q?R=E9capitulatif?=',
        'Date: Fri, 23 Jan 2026 09:00:00 +0100',
        'Message-ID: <raw-name.4@free.fr>',
        'MIME-Version: 1.0',
        'Content-Type: multipart/mixed; boundary="b1"',
        '',
        '--b1',
        'Content-Type: text/plain; charset=ISO-8859-1',
        'Content-Transfer-Encoding: 8bit',
        '',
        'Ci-joint le r\xe9capitulatif.',
        '--b1',
        'Content-Type: application/pdf; name="r\xe9capitulatif ao\xfbt.pdf"',
        'Content-Disposition: attachment; filename="r\xe9capitulatif ao\xfbt.pdf"',
        'Content-Transfer-Encoding: base64',
        '',
        b64('%PDF-1.4\n%%EOF\n'),
        '--b1--',
      ],
      'latin1',
    ),
    {
      externalId: 'raw-name.4@free.fr',
      subject: 'Récapitulatif',
      textStartsWith: 'Ci-joint le récapitulatif.',
      attachments: [{ name: 'récapitulatif août.pdf', mimeType: 'application/pdf' }],
    },
  );

  // --- 4. UTF-7 (old Outlook, some mobile clients)
  add(
    'outlook-utf7-plain',
    eml([
      'From: =?utf-7?Q?Ren+AOk-_Garnier?= <rene.garnier@hotmail.fr>',
      'To: <contact@lokario-test.fr>',
      'Subject: =?utf-7?Q?Fr+AOk-d+AOk-ric_a_re+AOc-u_le_devis?=',
      'Date: Sat, 24 Jan 2026 12:00:00 +0100',
      'Message-ID: <000001d2a1b2$c3d4e5f6$a7b8c9d0@garnier>',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset="utf-7"',
      'Content-Transfer-Encoding: 7bit',
      'X-Mailer: Microsoft Office Outlook 12.0',
      '',
      'Bonjour, le devis est accept+AOk-, merci pour la r+AOk-activit+AOk- +ACE-',
    ]),
    {
      externalId: '000001d2a1b2$c3d4e5f6$a7b8c9d0@garnier',
      subject: 'Frédéric a reçu le devis',
      fromName: 'René Garnier',
      textStartsWith: 'Bonjour, le devis est accepté, merci pour la réactivité !',
      textExcludes: ['+AOk-'],
    },
  );
  add(
    'utf7-alternative',
    eml([
      'From: Nathalie Roy <nathalie.roy@exemple.fr>',
      'To: contact@lokario-test.fr',
      'Subject: =?utf-7?B?' + Buffer.from('Pr+AOk-sentation').toString('base64') + '?=',
      'Date: Sun, 25 Jan 2026 12:00:00 +0100',
      'Message-ID: <utf7-alt.2@exemple.fr>',
      'MIME-Version: 1.0',
      'Content-Type: multipart/alternative; boundary="utf7alt"',
      '',
      '--utf7alt',
      'Content-Type: text/plain; charset=UTF-7',
      '',
      'Rendez-vous pr+AOk-vu mardi.',
      '--utf7alt',
      'Content-Type: text/html; charset=UTF-7',
      '',
      '+ADw-p+AD4-Rendez-vous pr+AOk-vu mardi.+ADw-/p+AD4-',
      '--utf7alt--',
    ]),
    {
      externalId: 'utf7-alt.2@exemple.fr',
      subject: 'Présentation',
      textStartsWith: 'Rendez-vous prévu mardi.',
      textExcludes: ['+AOk-', '<p>'],
    },
  );
  add(
    'utf7-html-only',
    eml([
      'From: Paul Meyer <paul.meyer@exemple.fr>',
      'To: contact@lokario-test.fr',
      'Subject: Facture',
      'Date: Mon, 26 Jan 2026 12:00:00 +0100',
      'Message-ID: <utf7-html.3@exemple.fr>',
      'MIME-Version: 1.0',
      'Content-Type: text/html; charset=utf-7',
      '',
      '+ADw-html+AD4APA-body+AD4APA-p+AD4-Le montant est de 450 +IKw-.+ADw-/p+AD4APA-script+AD4-alert(1)+ADw-/script+AD4APA-/body+AD4APA-/html+AD4-',
    ]),
    { externalId: 'utf7-html.3@exemple.fr', textStartsWith: 'Le montant est de 450 €.', textExcludes: ['alert', '<p>'] },
  );

  // --- 5. machine mail: bounces (DSN), reports (MDN, ARF, delay DSN), auto-replies, lists, no-reply senders
  const original = [
    'From: contact@lokario-test.fr',
    'To: client.inconnu@exemple.fr',
    'Subject: Votre devis',
    'Message-ID: <sent-1@lokario-test.fr>',
  ];
  add(
    'dsn-postfix',
    eml([
      'From: MAILER-DAEMON@mx1.lokario-test.fr (Mail Delivery System)',
      'To: contact@lokario-test.fr',
      'Subject: Undelivered Mail Returned to Sender',
      'Auto-Submitted: auto-replied',
      'Date: Tue, 27 Jan 2026 10:00:05 +0100 (CET)',
      'Message-Id: <20260127090005.A1B2C3@mx1.lokario-test.fr>',
      'MIME-Version: 1.0',
      'Content-Type: multipart/report; report-type=delivery-status; boundary="A1B2C3.1769504405/mx1.lokario-test.fr"',
      '',
      '--A1B2C3.1769504405/mx1.lokario-test.fr',
      'Content-Description: Notification',
      'Content-Type: text/plain; charset=us-ascii',
      '',
      'This is the mail system at host mx1.lokario-test.fr.',
      '',
      "I'm sorry to have to inform you that your message could not",
      'be delivered to one or more recipients.',
      '',
      '<client.inconnu@exemple.fr>: host mx.exemple.fr[192.0.2.10] said: 550 5.1.1 User unknown',
      '',
      '--A1B2C3.1769504405/mx1.lokario-test.fr',
      'Content-Description: Delivery report',
      'Content-Type: message/delivery-status',
      '',
      'Reporting-MTA: dns; mx1.lokario-test.fr',
      'Arrival-Date: Tue, 27 Jan 2026 10:00:01 +0100 (CET)',
      '',
      'Final-Recipient: rfc822; client.inconnu@exemple.fr',
      'Action: failed',
      'Status: 5.1.1',
      'Diagnostic-Code: smtp; 550 5.1.1 User unknown',
      '',
      '--A1B2C3.1769504405/mx1.lokario-test.fr',
      'Content-Description: Undelivered Message Headers',
      'Content-Type: text/rfc822-headers',
      '',
      ...original,
      '',
      '--A1B2C3.1769504405/mx1.lokario-test.fr--',
    ]),
    {
      externalId: '20260127090005.A1B2C3@mx1.lokario-test.fr',
      kind: 'bounce',
      client: 'none',
      subject: 'Undelivered Mail Returned to Sender',
      textStartsWith: 'This is the mail system at host mx1.lokario-test.fr.',
    },
  );
  add(
    'dsn-exim-plain',
    eml([
      'Return-path: <>',
      'From: Mail Delivery System <Mailer-Daemon@srv1.hebergeur.fr>',
      'To: contact@lokario-test.fr',
      'Subject: Mail delivery failed: returning message to sender',
      'Message-Id: <E1vAbCd-0001xY-Zz@srv1.hebergeur.fr>',
      'Date: Wed, 28 Jan 2026 10:00:00 +0100',
      'X-Failed-Recipients: ancien.client@exemple.fr',
      'Auto-Submitted: auto-replied',
      '',
      'This message was created automatically by mail delivery software.',
      '',
      'A message that you sent could not be delivered to one or more of its',
      'recipients. This is a permanent error. The following address(es) failed:',
      '',
      '  ancien.client@exemple.fr',
      '    mailbox is full',
    ]),
    {
      externalId: 'E1vAbCd-0001xY-Zz@srv1.hebergeur.fr',
      kind: 'bounce',
      client: 'none',
      textStartsWith: 'This message was created automatically by mail delivery software.',
    },
  );
  add(
    'dsn-exchange-ordinary-address',
    eml([
      'From: Service informatique <it-admin@cabinet-durand.fr>',
      'To: contact@lokario-test.fr',
      'Subject: Non remis : Votre devis',
      'Date: Thu, 29 Jan 2026 10:00:00 +0000',
      'Message-ID: <a1b2c3d4-ndr@PR3PR02MB6010.eurprd02.prod.outlook.com>',
      'Content-Language: fr-FR',
      'MIME-Version: 1.0',
      'Content-Type: multipart/report; report-type=delivery-status; boundary="_000_ndr_"',
      '',
      '--_000_ndr_',
      'Content-Type: multipart/alternative; boundary="_001_ndr_"',
      '',
      '--_001_ndr_',
      'Content-Type: text/html; charset="utf-8"',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      qp(
        '<html><body><p><b>Impossible de remettre votre message à marc@cabinet-durand.fr.</b></p><p>La boîte aux lettres est introuvable.</p></body></html>',
      ),
      '--_001_ndr_--',
      '--_000_ndr_',
      'Content-Type: message/delivery-status',
      '',
      'Reporting-MTA: dns;PR3PR02MB6010.eurprd02.prod.outlook.com',
      '',
      'Final-Recipient: rfc822;marc@cabinet-durand.fr',
      'Action: failed',
      'Status: 5.1.10',
      '',
      '--_000_ndr_',
      'Content-Type: text/rfc822-headers',
      '',
      ...original,
      '',
      '--_000_ndr_--',
    ]),
    {
      externalId: 'a1b2c3d4-ndr@PR3PR02MB6010.eurprd02.prod.outlook.com',
      kind: 'bounce',
      client: 'none',
      textIncludes: ['Impossible de remettre votre message'],
    },
  );
  add(
    'dsn-gmail',
    eml(
      [
        'From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>',
        'To: contact@lokario-test.fr',
        'Auto-Submitted: auto-replied',
        'Subject: Delivery Status Notification (Failure)',
        'Message-ID: <65a1b2c3.050a0220.abcd.1234.GMR@mx.google.com>',
        'Date: Fri, 30 Jan 2026 01:02:03 -0800 (PST)',
        'MIME-Version: 1.0',
        'Content-Type: multipart/report; boundary="000000000000dsn"; report-type=delivery-status',
        '',
        '--000000000000dsn',
        'Content-Type: multipart/related; boundary="000000000000rel"',
        '',
        '--000000000000rel',
        'Content-Type: multipart/alternative; boundary="000000000000alt"',
        '',
        '--000000000000alt',
        'Content-Type: text/plain; charset="UTF-8"',
        '',
        '** Adresse introuvable **',
        '',
        "Votre message n'a pas été distribué à personne@exemple-inexistant.fr.",
        '',
        '--000000000000alt',
        'Content-Type: text/html; charset="UTF-8"',
        '',
        '<p>Adresse introuvable</p>',
        '--000000000000alt--',
        '--000000000000rel--',
        '--000000000000dsn',
        'Content-Type: message/delivery-status',
        '',
        'Reporting-MTA: dns; googlemail.com',
        '',
        'Final-Recipient: rfc822; personne@exemple-inexistant.fr',
        'Action: failed',
        'Status: 5.1.1',
        '',
        '--000000000000dsn--',
      ],
      'utf8',
    ),
    {
      externalId: '65a1b2c3.050a0220.abcd.1234.GMR@mx.google.com',
      kind: 'bounce',
      client: 'none',
      textStartsWith: '** Adresse introuvable **',
    },
  );

  add(
    'mdn-thunderbird',
    eml([
      'From: Marie Curie <marie.curie@exemple.fr>',
      'To: contact@lokario-test.fr',
      'Subject: Accusé de réception (affiché) - Votre devis',
      'Date: Sat, 31 Jan 2026 09:00:00 +0100',
      'Message-ID: <mdn-1@exemple.fr>',
      'MIME-Version: 1.0',
      'Content-Type: multipart/report; report-type=disposition-notification; boundary="mdn1"',
      '',
      '--mdn1',
      'Content-Type: text/plain; charset=UTF-8',
      'Content-Transfer-Encoding: 8bit',
      '',
      'Ceci est un accusé de réception pour le courrier électronique envoyé à marie.curie@exemple.fr.',
      '',
      '--mdn1',
      'Content-Type: message/disposition-notification; name="MDNPart2.txt"',
      'Content-Disposition: inline',
      '',
      'Reporting-UA: exemple.fr; Thunderbird 115.6.0',
      'Final-Recipient: rfc822;marie.curie@exemple.fr',
      'Original-Message-ID: <sent-1@lokario-test.fr>',
      'Disposition: manual-action/MDN-sent-manually; displayed',
      '',
      '--mdn1--',
    ]),
    { externalId: 'mdn-1@exemple.fr', kind: 'report', client: 'none', textStartsWith: 'Ceci est un accusé de réception' },
  );
  add(
    'mdn-outlook',
    eml([
      'From: "Bruno Petit" <bruno.petit@exemple.fr>',
      'To: contact@lokario-test.fr',
      'Subject: Lu : Votre devis',
      'Date: Sun, 1 Feb 2026 09:00:00 +0000',
      'Message-ID: <mdn-2@EXCH01.exemple.fr>',
      'MIME-Version: 1.0',
      'Content-Type: multipart/report; report-type="disposition-notification"; boundary="_mdn2_"',
      '',
      '--_mdn2_',
      'Content-Type: text/plain; charset="iso-8859-1"',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      'Votre message a =E9t=E9 lu le dimanche 1 f=E9vrier 2026.',
      '',
      '--_mdn2_',
      'Content-Type: message/disposition-notification',
      '',
      'Final-Recipient: RFC822; bruno.petit@exemple.fr',
      'Disposition: automatic-action/MDN-sent-automatically; displayed',
      '',
      '--_mdn2_--',
    ]),
    {
      externalId: 'mdn-2@EXCH01.exemple.fr',
      kind: 'report',
      client: 'none',
      textStartsWith: 'Votre message a été lu le dimanche 1 février 2026.',
    },
  );
  add(
    'arf-feedback',
    eml([
      'From: Service anti-abus <staff@fbl.messagerie-exemple.net>',
      'To: contact@lokario-test.fr',
      'Subject: FW: Votre devis',
      'Date: Mon, 2 Feb 2026 09:00:00 +0000',
      'Message-ID: <arf-1@fbl.messagerie-exemple.net>',
      'MIME-Version: 1.0',
      'Content-Type: multipart/report; report-type=feedback-report; boundary="arf"',
      '',
      '--arf',
      'Content-Type: text/plain; charset="US-ASCII"',
      '',
      'This is an email abuse report for an email message received from IP 192.0.2.1.',
      '',
      '--arf',
      'Content-Type: message/feedback-report',
      '',
      'Feedback-Type: abuse',
      'User-Agent: FBL/1.0',
      'Version: 1',
      'Source-IP: 192.0.2.1',
      '',
      '--arf',
      'Content-Type: message/rfc822',
      'Content-Disposition: inline',
      '',
      ...original,
      '',
      'Bonjour',
      '',
      '--arf--',
    ]),
    { externalId: 'arf-1@fbl.messagerie-exemple.net', kind: 'report', client: 'none', textStartsWith: 'This is an email abuse report' },
  );
  add(
    'dsn-delayed',
    eml([
      'From: Mail Delivery System <relay@smtp.fournisseur.fr>',
      'To: contact@lokario-test.fr',
      'Subject: Delayed Mail (still being retried)',
      'Date: Tue, 3 Feb 2026 09:00:00 +0100',
      'Message-ID: <delay-1@smtp.fournisseur.fr>',
      'MIME-Version: 1.0',
      'Content-Type: multipart/report; report-type=delivery-status; boundary="dly"',
      '',
      '--dly',
      'Content-Type: text/plain',
      '',
      'Your message is delayed; no action is required on your part.',
      '',
      '--dly',
      'Content-Type: message/delivery-status',
      '',
      'Reporting-MTA: dns; smtp.fournisseur.fr',
      '',
      'Final-Recipient: rfc822; lent@exemple.fr',
      'Action: delayed',
      'Status: 4.4.1',
      '',
      '--dly--',
    ]),
    { externalId: 'delay-1@smtp.fournisseur.fr', kind: 'report', client: 'none', textStartsWith: 'Your message is delayed' },
  );

  add(
    'gmail-vacation',
    eml([
      'From: Thomas Girard <thomas.girard@gmail.com>',
      'To: contact@lokario-test.fr',
      'Subject: Re: Votre devis',
      'Date: Wed, 4 Feb 2026 09:00:00 +0100',
      'Message-ID: <CAvac123@mail.gmail.com>',
      'In-Reply-To: <sent-1@lokario-test.fr>',
      'Auto-Submitted: auto-replied',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset="UTF-8"',
      '',
      "Je suis en congés jusqu'au 15 février.",
    ]),
    { externalId: 'CAvac123@mail.gmail.com', kind: 'auto_reply', client: 'none', textStartsWith: "Je suis en congés jusqu'au 15 février." },
  );
  add(
    'exchange-out-of-office',
    eml([
      'From: Julie Lambert <julie.lambert@agence-lambert.fr>',
      'To: contact@lokario-test.fr',
      'Subject: =?utf-8?Q?R=C3=A9ponse_automatique=C2=A0:_Votre_devis?=',
      'Date: Thu, 5 Feb 2026 09:00:00 +0000',
      'Message-ID: <oof-1@AM0PR02MB.eurprd02.prod.outlook.com>',
      'Auto-Submitted: auto-generated',
      'X-Auto-Response-Suppress: All',
      'X-MS-Exchange-Inbox-Rules-Loop: julie.lambert@agence-lambert.fr',
      'MIME-Version: 1.0',
      'Content-Type: text/html; charset="utf-8"',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      qp('<html><body><p>Bonjour, je suis absente du bureau jusqu’au lundi 9 février.</p></body></html>'),
    ]),
    {
      externalId: 'oof-1@AM0PR02MB.eurprd02.prod.outlook.com',
      kind: 'auto_reply',
      client: 'none',
      textStartsWith: 'Bonjour, je suis absente du bureau',
    },
  );
  add(
    'x-autoreply-cpanel',
    eml([
      'From: Accueil Garage Blanc <accueil@garage-blanc.fr>',
      'To: contact@lokario-test.fr',
      'Subject: Merci pour votre message',
      'Date: Fri, 6 Feb 2026 09:00:00 +0100',
      'Message-ID: <autoresp-1@garage-blanc.fr>',
      'X-Autorespond: Merci pour votre message',
      'Precedence: auto_reply',
      'X-Autoreply: yes',
      'Content-Type: text/plain; charset=utf-8',
      '',
      'Nous avons bien reçu votre message et vous répondrons sous 48 h.',
    ]),
    { externalId: 'autoresp-1@garage-blanc.fr', kind: 'auto_reply', client: 'none', textStartsWith: 'Nous avons bien reçu votre message' },
  );

  add(
    'google-groups-list',
    eml([
      'From: Pierre Vidal <pierre.vidal@exemple.fr>',
      'To: artisans-du-quartier@googlegroups.com',
      'Subject: [artisans] Réunion du mois',
      'Date: Sat, 7 Feb 2026 09:00:00 +0100',
      'Message-ID: <list-gg-1@exemple.fr>',
      'Mailing-list: list artisans-du-quartier@googlegroups.com; contact artisans-du-quartier+owners@googlegroups.com',
      'List-ID: <artisans-du-quartier.googlegroups.com>',
      'List-Unsubscribe: <mailto:artisans-du-quartier+unsubscribe@googlegroups.com>',
      'Precedence: list',
      'Content-Type: text/plain; charset=utf-8',
      '',
      'La réunion aura lieu jeudi.',
    ]),
    { externalId: 'list-gg-1@exemple.fr', kind: 'list', client: 'none', textStartsWith: 'La réunion aura lieu jeudi.' },
  );
  add(
    'newsletter-unsubscribe-only',
    eml([
      'From: Bricomarché Pro <infos@bricopro-exemple.fr>',
      'To: contact@lokario-test.fr',
      'Subject: -20 % sur l’outillage',
      'Date: Sun, 8 Feb 2026 09:00:00 +0100',
      'Message-ID: <nl-2026-02@bricopro-exemple.fr>',
      'List-Unsubscribe: <https://bricopro-exemple.fr/unsub?u=1>',
      'List-Unsubscribe-Post: List-Unsubscribe=One-Click',
      'MIME-Version: 1.0',
      'Content-Type: text/html; charset=utf-8',
      '',
      '<p>Profitez de -20 % cette semaine.</p>',
    ]),
    { externalId: 'nl-2026-02@bricopro-exemple.fr', kind: 'list', client: 'none', textStartsWith: 'Profitez de -20 % cette semaine.' },
  );

  for (const [name, from] of [
    ['gmail-noreply', 'Google <gmail-noreply@google.com>'],
    ['linkedin-noreply', 'LinkedIn <notifications-noreply@linkedin.com>'],
    ['ne-pas-repondre', 'EDF <factures.ne-pas-repondre@edf-exemple.fr>'],
  ] as const) {
    add(
      name,
      eml([
        `From: ${from}`,
        'To: contact@lokario-test.fr',
        'Subject: Information',
        'Date: Mon, 9 Feb 2026 09:00:00 +0100',
        `Message-ID: <${name}@corpus.test>`,
        'Content-Type: text/plain; charset=utf-8',
        '',
        'Message automatique.',
      ]),
      { externalId: `${name}@corpus.test`, kind: 'automated', client: 'none', textStartsWith: 'Message automatique.' },
    );
  }
  return out;
}
