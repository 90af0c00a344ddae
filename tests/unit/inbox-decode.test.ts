import { describe, expect, it } from 'vitest';
import { decoderCharset, repairHeaderField, repairSource } from '../../lib/mime/decode.js';
import { htmlToReadableText, parseMessage } from '../../lib/mime/parse.js';

const latin1 = (s: string) => Buffer.from(s, 'latin1');
const parse = (raw: string) => parseMessage(1, latin1(raw), { maxAttachmentBytes: 1_000_000 });

describe('header decoding', () => {
  it('encoded words with stray 8-bit bytes are decoded in their own charset', () => {
    const f = repairHeaderField('Subject: =?iso-8859-1?Q?Fr\xf6sche?=', 'windows-1252');
    expect(f).toMatch(/^Subject: =\?UTF-8\?B\?/);
    expect(Buffer.from(/B\?([^?]*)\?=/.exec(f)![1], 'base64').toString('utf8')).toBe('Frösche');
  });
  it('raw 8-bit: UTF-8 when valid, else the declared charset, else Windows-1252', async () => {
    expect((await parse('From: a@x.fr\r\nSubject: Caf\xc3\xa9\r\nContent-Type: text/plain; charset=iso-8859-15\r\n\r\nx')).subject).toBe(
      'Café',
    );
    expect((await parse('From: a@x.fr\r\nSubject: Prix \xa4 10\r\nContent-Type: text/plain; charset=iso-8859-15\r\n\r\nx')).subject).toBe(
      'Prix € 10',
    );
    expect((await parse('From: a@x.fr\r\nSubject: Prix \x80 \x93ok\x94\r\n\r\nx')).subject).toBe('Prix € “ok”');
    expect((await parse('From: a@x.fr\r\nSubject: Probl\xe8me\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nx')).subject).toBe(
      'Problème',
    );
  });
  it('UTF-7 in headers and bodies', async () => {
    const m = await parse(
      'From: =?utf-7?Q?Ren+AOk-?= <r@x.fr>\r\nSubject: =?UTF-7?Q?Fr+APY-sche?=\r\nContent-Type: text/plain; charset=utf-7\r\n\r\nBr+APY-tchen +ACE-\r\n',
    );
    expect(m).toMatchObject({ subject: 'Frösche', fromName: 'René', text: 'Brötchen !' });
  });
  it('never a U+FFFD where a decoding exists', async () => {
    const m = await parse(
      'From: G\xe9rard <g@x.fr>\r\nSubject: =?iso-8859-1?Q?=E9t=E9_\xe0?= et \xe7a\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\nd\xe9j\xe0',
    );
    expect(m.subject).toBe('été à et ça');
    expect(`${m.subject}${m.fromName}${m.text}`).not.toContain('\ufffd');
  });
  it('ISO-8859-1 and US-ASCII labels are read as Windows-1252; unknown charsets are null', () => {
    expect(decoderCharset('ISO-8859-1')).toBe('windows-1252');
    expect(decoderCharset('"us-ascii"')).toBe('windows-1252');
    expect(decoderCharset('unicode-1-1-utf-7')).toBe('utf-7');
    expect(decoderCharset('x-unknown-charset')).toBeNull();
  });
  it('a clean message is passed through untouched (no rewrite)', () => {
    expect(repairSource(Buffer.from('From: a@x.fr\r\nSubject: =?UTF-8?Q?Caf=C3=A9?=\r\n\r\nhello\r\n'))).toBeNull();
    expect(
      repairSource(Buffer.from('From: a@x.fr\r\nSubject: Café\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhéllo\r\n')),
    ).toBeNull();
  });
  it('a UTF-7 part inside a multipart is decoded, the other parts are left as they were', () => {
    const raw =
      'From: a@x.fr\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-7\r\n\r\nCaf+AOk-\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=a.bin\r\n\r\n+AOk-\r\n--b--\r\n';
    const out = repairSource(latin1(raw))!.toString('utf8');
    expect(out).toContain('Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nCafé\r\n--b\r\n');
    expect(out).toContain('filename=a.bin\r\n\r\n+AOk-\r\n--b--');
  });
});

describe('text of HTML mail', () => {
  it('links readable, no images, no style or script', () => {
    const t = htmlToReadableText(
      '<html><head><style>p{color:red}</style><script>alert(1)</script></head><body><p>Voir <a href="https://x.fr/devis">le devis</a> ou <a href="https://x.fr">https://x.fr</a></p><img src="cid:logo" alt="Logo"><table><tr><td>Total</td><td>120 €</td></tr></table></body></html>',
    );
    expect(t).toContain('Voir le devis [https://x.fr/devis] ou https://x.fr');
    expect(t).not.toMatch(/color|alert|Logo|cid:|\[https:\/\/x\.fr\]/);
    expect(t).toMatch(/Total\s+120 €/);
  });
  it('HTML inside alternative, related or mixed, without text/plain', async () => {
    for (const ct of ['multipart/alternative', 'multipart/related', 'multipart/mixed']) {
      const m = await parse(
        `From: a@x.fr\r\nContent-Type: ${ct}; boundary="b"\r\n\r\n--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Bonjour <b>Lokario</b></p>\r\n--b--\r\n`,
      );
      expect(m.text, ct).toBe('Bonjour Lokario');
    }
  });
  it('text/plain parts win over HTML; several inline text parts are joined in order', async () => {
    const m = await parse(
      'From: a@x.fr\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\npremier\r\n--b\r\nContent-Type: text/plain\r\n\r\nsecond\r\n--b--\r\n',
    );
    expect(m.text).toBe('premier\nsecond');
  });
});
