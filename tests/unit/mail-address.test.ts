import { describe, expect, it } from 'vitest';
import { checkMailbox, checkSingleAddress } from '../../lib/text/address.js';
import { assertSingleRecipients, MailError } from '../../lib/mail/transport.js';
import { parseConfig } from '../../lib/config.js';

/** The three injections seen in production probes, plus the other shapes a list or a header can take. */
export const INJECTED = ['x@t.test\r\nBcc: victim@evil.test', 'a@x.test, b@evil.test', 'a@x.test;Bcc: b@evil.test'];

describe('checkSingleAddress: exactly one RFC 5322 addr-spec', () => {
  it.each([
    ['jeanne@exemple.fr', 'jeanne@exemple.fr'],
    ['  jean.dupont+relance@sous.domaine-fr.example ', 'jean.dupont+relance@sous.domaine-fr.example'],
    ["o'hara@exemple.fr", "o'hara@exemple.fr"],
    ['élodie@café.fr', 'élodie@café.fr'],
  ])('accepts %j', (raw, address) => {
    expect(checkSingleAddress(raw)).toEqual({ ok: true, address });
  });

  it.each([
    ['x@t.test\r\nBcc: victim@evil.test', 'control_characters'],
    ['x@t.test\nBcc: victim@evil.test', 'control_characters'],
    ['x@t.test\u2028Bcc: victim@evil.test', 'control_characters'],
    ['a@x.test, b@evil.test', 'not_one_address'],
    ['a@x, b@evil', 'not_one_address'],
    ['a@x.test;Bcc: b@evil.test', 'not_one_address'],
    ['a@x;Bcc: b@evil', 'not_one_address'],
    ['undisclosed: a@x.test, b@evil.test;', 'not_one_address'],
    ['<a@x.test>', 'not_one_address'],
    ['a @x.test', 'not_one_address'],
    ['"Jeanne" <a@x.test>', 'display_name'],
    ['b@evil.test <a@x.test>', 'display_name'],
    ['a@x.test (b@evil.test)', 'display_name'],
    ['not-an-email', 'syntax'],
    ['a@x', 'syntax'],
    ['"a b"@x.test', 'syntax'],
    ['a..b@x.test', 'syntax'],
    ['a@b@x.test', 'syntax'],
    ['a@[127.0.0.1]', 'syntax'],
    ['', 'empty'],
    ['   ', 'empty'],
    [`${'a'.repeat(65)}@x.test`, 'too_long'],
  ])('refuses %j (%s)', (raw, reason) => {
    expect(checkSingleAddress(raw)).toEqual({ ok: false, reason });
  });

  it('refuses what is not a string', () => {
    for (const v of [null, undefined, 42, ['a@x.test'], { address: 'a@x.test' }]) expect(checkSingleAddress(v).ok).toBe(false);
  });
});

describe('the transport guard and the configuration use the same rule', () => {
  const base = { from: 'Lokario <noreply@lokario.fr>', subject: 's', text: 't', messageId: '<m@lokario.fr>' };
  it('To and Reply-To that are not one address are a permanent invalid_recipient', () => {
    for (const bad of [...INJECTED, 'not-an-email']) {
      for (const mail of [
        { ...base, to: bad },
        { ...base, to: 'ok@exemple.fr', replyTo: bad },
      ]) {
        let thrown: unknown;
        try {
          assertSingleRecipients(mail);
        } catch (err) {
          thrown = err;
        }
        expect(thrown).toBeInstanceOf(MailError);
        expect(thrown).toMatchObject({ code: 'invalid_recipient', permanent: true });
      }
    }
    expect(assertSingleRecipients({ ...base, to: ' ok@exemple.fr ', replyTo: 'r@exemple.fr' })).toMatchObject({
      to: 'ok@exemple.fr',
      replyTo: 'r@exemple.fr',
    });
  });

  it('MAIL_REDIRECT_TO and MAIL_FROM are refused when they are not one mailbox', () => {
    for (const bad of INJECTED) expect(() => parseConfig({ MAIL_REDIRECT_TO: bad })).toThrow(/MAIL_REDIRECT_TO/);
    expect(() => parseConfig({ MAIL_FROM: 'Lokario <noreply@lokario.fr>, evil@evil.test' })).toThrow(/MAIL_FROM/);
    expect(() => parseConfig({ MAIL_FROM: 'Lokario <noreply@lokario.fr>\r\nBcc: evil@evil.test' })).toThrow(/MAIL_FROM/);
    expect(parseConfig({ MAIL_FROM: 'Lokario <noreply@lokario.fr>', MAIL_REDIRECT_TO: 'staging@lokario.test' }).MAIL_REDIRECT_TO).toBe(
      'staging@lokario.test',
    );
    expect(checkMailbox('"Lokario, SAS" <noreply@lokario.fr>')).toMatchObject({ ok: true, address: 'noreply@lokario.fr' });
  });
});
