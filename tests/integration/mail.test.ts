import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSmtpSink } from '../../devtools/smtp.js';
import { parseConfig } from '../../lib/config.js';
import { createMailFactory } from '../../lib/mail/transport.js';
import { deterministicMessageId } from '../../lib/mail/message-id.js';
import { formatFrom } from '../../lib/text/address.js';
import { simpleParser } from 'mailparser';

const mail = (n: number) => ({
  from: 'Lokario <noreply@lokario.fr>',
  to: 'client@example.com',
  subject: `s${n}`,
  text: 'Bonjour',
  messageId: `<m${n}@lokario.fr>`,
});

describe('SMTP transport against a real SMTP server', () => {
  let sink: Awaited<ReturnType<typeof startSmtpSink>>;
  beforeAll(async () => {
    sink = await startSmtpSink({ users: { app: 'pw' } });
  });
  afterAll(async () => {
    await sink.close();
  });

  it('sends with the deterministic Message-ID; 4xx is temporary, 5xx permanent', async () => {
    const f = createMailFactory(parseConfig({ SMTP_URL: `smtp://app:pw@127.0.0.1:${sink.port}` }));
    const t = f.platform();
    await t.send(mail(1));
    expect(sink.received.at(-1)?.messageId).toBe('<m1@lokario.fr>');
    sink.failNext(1, 451);
    await expect(t.send(mail(2))).rejects.toMatchObject({ code: 'smtp_temporary', permanent: false, responseCode: 451 });
    sink.failNext(1, 550);
    await expect(t.send(mail(3))).rejects.toMatchObject({ code: 'smtp_rejected', permanent: true, responseCode: 550 });
    await t.send(mail(4));
    expect(sink.received.map((r) => r.messageId)).toEqual(['<m1@lokario.fr>', '<m4@lokario.fr>']);
    f.closeAll();
  });

  it('a company name with quotes, a comma, accents or a line break arrives as the From name, one mailbox', async () => {
    const f = createMailFactory(parseConfig({ SMTP_URL: `smtp://app:pw@127.0.0.1:${sink.port}` }));
    const t = f.platform();
    const names = ['Dupont, "Fils" & Cie', "Société Générale d'Électricité", 'Atelier\r\nBcc: victim@evil.test', 'a\\b <c@d.e>'];
    for (const [i, name] of names.entries()) {
      await t.send({ ...mail(20 + i), from: formatFrom(name, 'noreply@lokario.fr') });
      const parsed = await simpleParser(sink.received.at(-1)!.raw);
      expect(parsed.from?.value).toEqual([{ name: name.replace(/[\r\n]+/g, ' '), address: 'noreply@lokario.fr' }]);
      expect(parsed.headers.has('bcc')).toBe(false);
    }
    f.closeAll();
  });

  it('wrong credentials: smtp_auth, permanent', async () => {
    const f = createMailFactory(parseConfig({ SMTP_URL: `smtp://app:nope@127.0.0.1:${sink.port}` }));
    await expect(f.platform().send(mail(5))).rejects.toMatchObject({ code: 'smtp_auth', permanent: true });
    f.closeAll();
  });

  it('a mailbox transport without TLS refuses to send the password in clear', async () => {
    const f = createMailFactory(parseConfig({}));
    // the sink offers no STARTTLS: requireTLS makes the send fail before AUTH
    await expect(f.mailbox({ host: '127.0.0.1', port: sink.port, secure: false, user: 'app', pass: 'pw' }).send(mail(6))).rejects.toThrow();
    expect(sink.received.some((r) => r.messageId === '<m6@lokario.fr>')).toBe(false);
    f.closeAll();
  });

  it('connection refused and a server that never greets: temporary errors within the configured timeouts', async () => {
    const silent = net.createServer(() => {
      /* accept and say nothing */
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      const f = createMailFactory(
        parseConfig({ SMTP_URL: `smtp://127.0.0.1:${port}`, SMTP_GREETING_TIMEOUT_MS: '300', SMTP_CONNECT_TIMEOUT_MS: '300' }),
      );
      await expect(f.platform().send(mail(7))).rejects.toMatchObject({ permanent: false });
      f.closeAll();
      const closed = net.createServer();
      await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
      const deadPort = (closed.address() as net.AddressInfo).port;
      await new Promise<void>((r) => closed.close(() => r()));
      const g = createMailFactory(parseConfig({ SMTP_URL: `smtp://127.0.0.1:${deadPort}` }));
      await expect(g.platform().send(mail(8))).rejects.toMatchObject({ code: 'smtp_connection', permanent: false });
      g.closeAll();
    } finally {
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });

  it('deterministic Message-IDs are stable and use the sender domain', () => {
    expect(deterministicMessageId('followup', [12, 2], 'Lokario <noreply@lokario.fr>')).toBe('<lokario.followup.12.2@lokario.fr>');
    expect(deterministicMessageId('followup', [12, 2], 'Lokario <noreply@lokario.fr>')).toBe(
      deterministicMessageId('followup', [12, 2], 'noreply@lokario.fr'),
    );
  });
});
