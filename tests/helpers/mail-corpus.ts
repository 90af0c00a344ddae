/**
 * A malformed / tricky mail corpus, generated (no binary fixtures), each message with the outcome
 * the import must produce. Order matters: messages are appended in this order, so a reply
 * always comes after the message it answers.
 */
const CRLF = '\r\n';

export type CorpusExpectation = {
  /** A row whose external_id is this (or `hash:` for the content-hash fallback) exists. */
  externalId: string | 'hash';
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
  const head = Object.entries(headers).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}: ${v}`).join(CRLF);
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
    From: from, To: 'contact@lokario-test.fr', Subject: subject, Date: date, 'Message-ID': id, 'MIME-Version': '1.0', ...extra,
  });

  add('plain', msg({ ...base('<plain-1@corpus.test>', 'Jean Dupont <jean.dupont@exemple.fr>', 'Demande de devis'), 'Content-Type': 'text/plain; charset=utf-8' },
    `Bonjour,${CRLF}Pouvez-vous m'envoyer un devis ?${CRLF}Jean${CRLF}`),
    { externalId: 'plain-1@corpus.test', subject: 'Demande de devis', textIncludes: ["m'envoyer un devis"], fromEmail: 'jean.dupont@exemple.fr', fromName: 'Jean Dupont', client: 'created', sentAt: '2026-01-12T09:00:00.000Z' });

  add('no-message-id-a', msg({ ...base(undefined, 'Paul <paul@exemple.fr>', 'Sans identifiant'), 'Content-Type': 'text/plain' }, `Premier message sans Message-ID${CRLF}`),
    { externalId: 'hash', textIncludes: ['Premier message sans Message-ID'], client: 'created' });
  add('no-message-id-b', msg({ ...base(undefined, 'Paul <paul@exemple.fr>', 'Sans identifiant'), 'Content-Type': 'text/plain' }, `Second message sans Message-ID${CRLF}`),
    { externalId: 'hash', textIncludes: ['Second message sans Message-ID'], client: 'existing' });

  add('dup-mid-first', msg({ ...base('<dup@corpus.test>', 'Alice <alice@exemple.fr>', 'Doublon'), 'Content-Type': 'text/plain' }, `version 1${CRLF}`),
    { externalId: 'dup@corpus.test', textIncludes: ['version 1'], client: 'created' });
  add('dup-mid-second', msg({ ...base(' < dup@corpus.test > ', 'Alice <alice@exemple.fr>', 'Doublon'), 'Content-Type': 'text/plain' }, `version 2${CRLF}`),
    { externalId: 'dup@corpus.test', duplicateOf: 'dup-mid-first' });

  add('iso-8859-1-qp', msg({ ...base('<latin1-qp@corpus.test>', 'Zoé <zoe@exemple.fr>', 'Facture'), 'Content-Type': 'text/plain; charset=ISO-8859-1', 'Content-Transfer-Encoding': 'quoted-printable' },
    `Caf=E9 cr=E8me et g=E2teau${CRLF}`), { externalId: 'latin1-qp@corpus.test', textIncludes: ['Café crème et gâteau'] });
  add('iso-8859-1-8bit', msg({ ...base('<latin1-8bit@corpus.test>', 'zoe@exemple.fr', 'Réservation'), 'Content-Type': 'text/plain; charset=iso-8859-1', 'Content-Transfer-Encoding': '8bit' },
    Buffer.from(`Réservation confirmée à Orléans${CRLF}`, 'latin1')), { externalId: 'latin1-8bit@corpus.test', textIncludes: ['Réservation confirmée à Orléans'] });
  add('windows-1252', msg({ ...base('<cp1252@corpus.test>', 'compta@fournisseur.fr', 'Montant'), 'Content-Type': 'text/plain; charset=windows-1252', 'Content-Transfer-Encoding': '8bit' },
    Buffer.concat([Buffer.from('Total : 120 '), Buffer.from([0x80]), Buffer.from(' ', 'latin1'), Buffer.from([0x93]), Buffer.from('merci'), Buffer.from([0x94, 0x0d, 0x0a])])),
    { externalId: 'cp1252@corpus.test', textIncludes: ['Total : 120 € “merci”'] });

  add('rfc2047-q', msg({ ...base('<rfc2047-q@corpus.test>', '=?ISO-8859-1?Q?Ren=E9_Martin?= <rene@exemple.fr>', '=?ISO-8859-1?Q?R=E9union_de_chantier?='), 'Content-Type': 'text/plain' }, `ok${CRLF}`),
    { externalId: 'rfc2047-q@corpus.test', subject: 'Réunion de chantier', fromName: 'René Martin' });
  add('rfc2047-b-emoji', msg({ ...base('<rfc2047-b@corpus.test>', 'emma@exemple.fr', `=?UTF-8?B?${Buffer.from('Merci 🎉 pour le chantier').toString('base64')}?=`), 'Content-Type': 'text/plain' }, `ok${CRLF}`),
    { externalId: 'rfc2047-b@corpus.test', subject: 'Merci 🎉 pour le chantier' });
  add('rfc2047-split', msg({ ...base('<rfc2047-split@corpus.test>', 'emma@exemple.fr', `=?UTF-8?Q?Pr=C3=A9paration?=${CRLF} =?UTF-8?Q?_du_d=C3=A9m=C3=A9nagement?=`), 'Content-Type': 'text/plain' }, `ok${CRLF}`),
    { externalId: 'rfc2047-split@corpus.test', subject: 'Préparation du déménagement' });

  add('html-only', msg({ ...base('<html-only@corpus.test>', 'Marc <marc@exemple.fr>', 'HTML seulement'), 'Content-Type': 'text/html; charset=utf-8' },
    `<html><head><style>p{color:red}</style><script>alert('x')</script></head><body><p>Bonjour <b>Lokario</b></p><p>Deuxi&egrave;me paragraphe</p></body></html>${CRLF}`),
    { externalId: 'html-only@corpus.test', textIncludes: ['Bonjour Lokario', 'Deuxième paragraphe'], textExcludes: ['<b>', 'alert(', 'color:red'] });

  add('alternative', msg({ ...base('<alternative@corpus.test>', 'Marc <marc@exemple.fr>', 'Alternative'), 'Content-Type': 'multipart/alternative; boundary="alt"' },
    ['--alt', 'Content-Type: text/plain; charset=utf-8', '', 'Version texte', '--alt', 'Content-Type: text/html; charset=utf-8', '', '<p>Version HTML</p>', '--alt--', ''].join(CRLF)),
    { externalId: 'alternative@corpus.test', textIncludes: ['Version texte'], textExcludes: ['Version HTML'] });

  const pdf = Buffer.from('%PDF-1.4\n% fake pdf for tests\n');
  const png = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010806000000', 'hex');
  add('nested-multipart', msg({ ...base('<nested@corpus.test>', 'Marc <marc@exemple.fr>', 'Plans'), 'Content-Type': 'multipart/mixed; boundary="outer"' }, [
    '--outer', 'Content-Type: multipart/alternative; boundary="mid"', '',
    '--mid', 'Content-Type: text/plain; charset=utf-8', '', 'Voici les plans', '',
    '--mid', 'Content-Type: multipart/related; boundary="inner"', '',
    '--inner', 'Content-Type: text/html; charset=utf-8', '', '<p>Voici les plans <img src="cid:logo@x"></p>',
    '--inner', 'Content-Type: image/png', 'Content-ID: <logo@x>', 'Content-Disposition: inline', 'Content-Transfer-Encoding: base64', '', png.toString('base64'),
    '--inner--', '', '--mid--', '',
    '--outer', 'Content-Type: application/pdf; name="plans.pdf"', 'Content-Disposition: attachment; filename="plans.pdf"', 'Content-Transfer-Encoding: base64', '', pdf.toString('base64'),
    '--outer--', ''].join(CRLF)),
    { externalId: 'nested@corpus.test', textIncludes: ['Voici les plans'], attachments: [{ name: 'plans.pdf', mimeType: 'application/pdf' }] });

  add('evil-filename', msg({ ...base('<evil-name@corpus.test>', 'Marc <marc@exemple.fr>', 'Fichier'), 'Content-Type': 'multipart/mixed; boundary="b"' }, [
    '--b', 'Content-Type: text/plain', '', 'voir pièce jointe',
    '--b', 'Content-Type: application/octet-stream', 'Content-Disposition: attachment; filename="../../etc/pa\u0001ss\twd\u202e.txt"', '', 'secret',
    '--b--', ''].join(CRLF)),
    { externalId: 'evil-name@corpus.test', attachments: [{ name: 'passwd.txt' }] });
  add('rfc2231-filename', msg({ ...base('<rfc2231@corpus.test>', 'Marc <marc@exemple.fr>', 'CV'), 'Content-Type': 'multipart/mixed; boundary="b"' }, [
    '--b', 'Content-Type: text/plain', '', 'cv joint',
    '--b', 'Content-Type: application/pdf', "Content-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9%20final.pdf", 'Content-Transfer-Encoding: base64', '', pdf.toString('base64'),
    '--b--', ''].join(CRLF)),
    { externalId: 'rfc2231@corpus.test', attachments: [{ name: 'résumé final.pdf', mimeType: 'application/pdf' }] });

  add('huge-attachment', msg({ ...base('<huge@corpus.test>', 'Marc <marc@exemple.fr>', 'Vidéo du chantier'), 'Content-Type': 'multipart/mixed; boundary="b"' }, [
    '--b', 'Content-Type: text/plain', '', 'la vidéo',
    '--b', 'Content-Type: video/mp4', 'Content-Disposition: attachment; filename="chantier.mp4"', 'Content-Transfer-Encoding: base64', '', b64lines(Buffer.alloc(huge, 7)),
    '--b--', ''].join(CRLF)),
    { externalId: 'huge@corpus.test', subject: 'Vidéo du chantier', oversize: true, textIncludes: ['non importé'], attachments: [] });
  add('big-attachment', msg({ ...base('<big-attachment@corpus.test>', 'Marc <marc@exemple.fr>', 'Photos'), 'Content-Type': 'multipart/mixed; boundary="b"' }, [
    '--b', 'Content-Type: text/plain', '', 'les photos',
    '--b', 'Content-Type: image/jpeg', 'Content-Disposition: attachment; filename="photo.jpg"', 'Content-Transfer-Encoding: base64', '', b64lines(Buffer.alloc(big, 1)),
    '--b', 'Content-Type: text/plain', 'Content-Disposition: attachment; filename="notes.txt"', '', 'petit fichier',
    '--b--', ''].join(CRLF)),
    { externalId: 'big-attachment@corpus.test', textIncludes: ['les photos'], attachments: [{ name: 'photo.jpg', mimeType: 'image/jpeg', skipped: true }, { name: 'notes.txt', mimeType: 'text/plain' }] });

  add('broken-boundary', msg({ ...base('<broken-boundary@corpus.test>', 'Luc <luc@exemple.fr>', 'Coupé'), 'Content-Type': 'multipart/mixed; boundary="never-closed"' },
    ['preamble', '--never-closed', 'Content-Type: text/plain', '', 'texte avant la coupure', '--never-closed', 'Content-Type: application/pdf', 'Content-Disposition: attachment; filename="tronque.pdf"', 'Content-Transfer-Encoding: base64', '', 'JVBERi0x'].join(CRLF)),
    { externalId: 'broken-boundary@corpus.test', textIncludes: ['texte avant la coupure'] });
  add('unused-boundary', msg({ ...base('<unused-boundary@corpus.test>', 'Luc <luc@exemple.fr>', 'Pas de parties'), 'Content-Type': 'multipart/mixed; boundary="absent"' },
    `Corps sans aucune partie${CRLF}`), { externalId: 'unused-boundary@corpus.test' });

  add('8bit-utf8-headers', msg({ ...base('<8bit-utf8@corpus.test>', 'Hélène Côté <helene@exemple.fr>', 'Chiffrage à l’étage'), 'Content-Type': 'text/plain; charset=utf-8' }, `ok${CRLF}`),
    { externalId: '8bit-utf8@corpus.test', subject: 'Chiffrage à l’étage', fromName: 'Hélène Côté', fromEmail: 'helene@exemple.fr' });
  add('8bit-latin1-headers', msg({ ...base('<8bit-latin1@corpus.test>', 'Gérard <gerard@exemple.fr>', 'Problème'), 'Content-Type': 'text/plain; charset=iso-8859-1' }, `ok${CRLF}`, 'latin1'),
    { externalId: '8bit-latin1@corpus.test', fromEmail: 'gerard@exemple.fr' });

  add('future-date', msg({ ...base('<future@corpus.test>', 'Luc <luc@exemple.fr>', 'Du futur', { Date: 'Thu, 01 Jan 2099 00:00:00 +0000' }), 'Content-Type': 'text/plain' }, `ok${CRLF}`),
    { externalId: 'future@corpus.test', sentAt: 'future' });
  add('no-date', msg({ ...base('<no-date@corpus.test>', 'Luc <luc@exemple.fr>', 'Sans date', { Date: undefined }), 'Content-Type': 'text/plain' }, `ok${CRLF}`),
    { externalId: 'no-date@corpus.test', sentAt: 'null' });
  add('garbage-date', msg({ ...base('<garbage-date@corpus.test>', 'Luc <luc@exemple.fr>', 'Date illisible', { Date: 'le 32 du mois prochain' }), 'Content-Type': 'text/plain' }, `ok${CRLF}`),
    { externalId: 'garbage-date@corpus.test', sentAt: 'null' });

  add('noreply', msg({ ...base('<noreply@corpus.test>', 'Boutique <no-reply@boutique.fr>', 'Votre commande'), 'Content-Type': 'text/plain' }, `commande${CRLF}`),
    { externalId: 'noreply@corpus.test', client: 'none' });
  add('list-id', msg({ ...base('<list@corpus.test>', 'La Lettre <lettre@media.fr>', 'Lettre hebdo', { 'List-Id': '<hebdo.media.fr>', 'List-Unsubscribe': '<mailto:unsub@media.fr>' }), 'Content-Type': 'text/plain' }, `news${CRLF}`),
    { externalId: 'list@corpus.test', client: 'none' });
  add('precedence-bulk', msg({ ...base('<bulk@corpus.test>', 'Promo <promo@soldes.fr>', 'Soldes', { Precedence: 'bulk' }), 'Content-Type': 'text/plain' }, `soldes${CRLF}`),
    { externalId: 'bulk@corpus.test', client: 'none' });
  add('auto-submitted', msg({ ...base('<auto@corpus.test>', 'Bob <bob@vacances.fr>', 'Absence', { 'Auto-Submitted': 'auto-replied' }), 'Content-Type': 'text/plain' }, `absent${CRLF}`),
    { externalId: 'auto@corpus.test', client: 'none' });
  add('blocked-domain', msg({ ...base('<blocked@corpus.test>', `Partenaire <contact@${blocked}>`, 'Partenariat'), 'Content-Type': 'text/plain' }, `partenariat${CRLF}`),
    { externalId: 'blocked@corpus.test', client: 'none' });
  add('existing-client-mixed-case', msg({ ...base('<existing@corpus.test>', `Client Connu <${existing.toUpperCase()}>`, 'Question'), 'Content-Type': 'text/plain' }, `question${CRLF}`),
    { externalId: 'existing@corpus.test', client: 'existing', fromEmail: existing });

  add('reply-in-reply-to', msg({ ...base('<reply-1@corpus.test>', 'Jean Dupont <jean.dupont@exemple.fr>', 'RE: Demande de devis', { 'In-Reply-To': '<plain-1@corpus.test>' }), 'Content-Type': 'text/plain' }, `précision${CRLF}`),
    { externalId: 'reply-1@corpus.test', threadWith: 'plain' });
  add('reply-references', msg({ ...base('<reply-2@corpus.test>', 'Marie <marie@exemple.fr>', 'Tr: autre sujet', { References: '<unknown-old@elsewhere> <plain-1@corpus.test> <never-seen@elsewhere>' }), 'Content-Type': 'text/plain' }, `transfert${CRLF}`),
    { externalId: 'reply-2@corpus.test', threadWith: 'plain' });
  add('same-subject-other-sender', msg({ ...base('<other-sender@corpus.test>', 'Inconnu <quelquun@ailleurs.fr>', 'Demande de devis'), 'Content-Type': 'text/plain' }, `autre personne${CRLF}`),
    { externalId: 'other-sender@corpus.test', separateFrom: 'plain', client: 'created' });
  add('same-sender-same-subject', msg({ ...base('<same-sender@corpus.test>', 'Jean Dupont <JEAN.DUPONT@exemple.fr>', 'Re: Re: demande de devis'), 'Content-Type': 'text/plain' }, `relance${CRLF}`),
    { externalId: 'same-sender@corpus.test', threadWith: 'plain' });

  add('nul-byte', msg({ ...base('<nul@corpus.test>', 'Luc <luc@exemple.fr>', 'Octet nul'), 'Content-Type': 'text/plain' }, `avant\u0000après${CRLF}`),
    { externalId: 'nul@corpus.test', textIncludes: ['avant', 'après'], textExcludes: ['\u0000'] });
  add('no-from', msg({ To: 'contact@lokario-test.fr', Subject: 'Anonyme', Date: date, 'Message-ID': '<no-from@corpus.test>', 'Content-Type': 'text/plain' }, `qui ?${CRLF}`),
    { externalId: 'no-from@corpus.test', fromEmail: null, fromName: 'Inconnu', client: 'none' });
  add('like-metachar-a', msg({ ...base('<abc-123@corpus.test>', 'Luc <luc@exemple.fr>', 'Id A'), 'Content-Type': 'text/plain' }, `a${CRLF}`),
    { externalId: 'abc-123@corpus.test' });
  add('like-metachar-b', msg({ ...base('<123@corpus.test>', 'Luc <luc@exemple.fr>', 'Id B'), 'Content-Type': 'text/plain' }, `b${CRLF}`),
    { externalId: '123@corpus.test' });
  add('like-metachar-c', msg({ ...base('<50%_off@corpus.test>', 'Luc <luc@exemple.fr>', 'Id C'), 'Content-Type': 'text/plain' }, `c${CRLF}`),
    { externalId: '50%_off@corpus.test' });
  add('empty-body', msg({ ...base('<empty@corpus.test>', 'Luc <luc@exemple.fr>', 'Vide'), 'Content-Type': 'text/plain' }, ''),
    { externalId: 'empty@corpus.test' });
  add('forwarded-rfc822', msg({ ...base('<fwd@corpus.test>', 'Luc <luc@exemple.fr>', 'Fwd: message'), 'Content-Type': 'multipart/mixed; boundary="b"' }, [
    '--b', 'Content-Type: text/plain', '', 'je transfère',
    '--b', 'Content-Type: message/rfc822', 'Content-Disposition: attachment; filename="original.eml"', '', 'From: x@y.fr', 'Subject: original', '', 'corps original',
    '--b--', ''].join(CRLF)),
    { externalId: 'fwd@corpus.test', textIncludes: ['je transfère'], attachments: [{ name: 'original.eml' }] });
  let nested = '';
  for (let i = 0; i < 3000; i++) nested += `Content-Type: multipart/mixed; boundary="n${i}"${CRLF}${CRLF}--n${i}${CRLF}`;
  add('poison-deep-nesting', Buffer.from(`From: Luc <luc@exemple.fr>${CRLF}Subject: Poupées russes${CRLF}Message-ID: <poison@corpus.test>${CRLF}MIME-Version: 1.0${CRLF}${nested}Content-Type: text/plain${CRLF}${CRLF}fond${CRLF}`),
    { externalId: 'poison@corpus.test', poison: true });
  add('after-poison', msg({ ...base('<after-poison@corpus.test>', 'Luc <luc@exemple.fr>', 'Après le poison'), 'Content-Type': 'text/plain' }, `toujours importé${CRLF}`),
    { externalId: 'after-poison@corpus.test', textIncludes: ['toujours importé'] });
  return out;
}
