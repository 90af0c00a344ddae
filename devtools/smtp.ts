import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

export type Received = {
  from: string;
  to: string[];
  raw: string;
  messageId: string | undefined;
  header(name: string): string | undefined;
  user?: string;
};

/**
 * A real SMTP server (smtp-server) on a free loopback port that records what it accepts. `failNext`
 * makes the next N messages fail with a given SMTP code (4xx temporary, 5xx permanent).
 */
export type SmtpSinkOptions = {
  users?: Record<string, string>;
  /** SASL XOAUTH2: accepts a login when this says the bearer token is valid for the user. */
  xoauth2?: (user: string, accessToken: string) => boolean;
  /** Offer STARTTLS (smtp-server's built-in self-signed certificate). */
  starttls?: boolean;
  /** each answer to DATA waits this long */
  delayMs?: number;
};

export async function startSmtpSink(opts: SmtpSinkOptions = {}) {
  const received: Received[] = [];
  const failures: { code: number; message: string }[] = [];
  const auths = { ok: 0, refused: 0 };
  const server = new SMTPServer({
    secure: false,
    disabledCommands: opts.starttls ? [] : ['STARTTLS'],
    allowInsecureAuth: true,
    authOptional: !opts.users && !opts.xoauth2,
    authMethods: opts.xoauth2 ? ['PLAIN', 'LOGIN', 'XOAUTH2'] : ['PLAIN', 'LOGIN'],
    logger: false,
    onAuth(auth, _session, cb) {
      if (auth.method === 'XOAUTH2') {
        if (opts.xoauth2?.(auth.username ?? '', auth.accessToken ?? '')) {
          auths.ok++;
          cb(null, { user: auth.username });
          return;
        }
        // what Gmail and Office 365 answer to a bad token (the client then gets a 535)
        auths.refused++;
        cb(null, { data: { status: '401', schemes: 'bearer', scope: 'https://outlook.office.com/SMTP.Send' } });
        return;
      }
      if (opts.users && opts.users[auth.username ?? ''] === auth.password) cb(null, { user: auth.username });
      else cb(new Error('Invalid username or password'));
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const fail = failures.shift();
        if (fail) {
          const err = new Error(fail.message) as Error & { responseCode: number };
          err.responseCode = fail.code;
          cb(err);
          return;
        }
        const raw = Buffer.concat(chunks).toString('utf8');
        const headerPart = raw.split(/\r?\n\r?\n/)[0].replace(/\r?\n[ \t]+/g, ' ');
        const header = (name: string) => {
          const m = new RegExp(`^${name}:\\s*(.*)$`, 'im').exec(headerPart);
          return m ? m[1].trim() : undefined;
        };
        received.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw,
          messageId: header('Message-ID'),
          header,
          user: typeof session.user === 'string' ? session.user : undefined,
        });
        if (opts.delayMs) setTimeout(() => cb(), opts.delayMs);
        else cb();
      });
    },
  });
  // a client killed mid-transaction (kill -9 tests) resets its sockets: not a failure of the sink
  server.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'ECONNRESET') throw err;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    url: `smtp://127.0.0.1:${port}`,
    received,
    auths,
    failNext(count: number, code: number, message = code >= 500 ? 'Mailbox unavailable' : 'Try again later') {
      for (let i = 0; i < count; i++) failures.push({ code, message });
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/**
 * A misbehaving SMTP server written with `net`: `no-greeting` accepts connections and never says
 * a word; `hang-after-data` talks SMTP until the server's 354 and swallows the body without ever
 * answering it (the email may or may not have been delivered: the client cannot know).
 * `bodies` counts the message bodies that started arriving.
 */
export async function startBadSmtp(mode: 'no-greeting' | 'hang-after-data') {
  const net = await import('node:net');
  const sockets = new Set<import('node:net').Socket>();
  let bodies = 0;
  let connections = 0;
  const server = net.createServer((s) => {
    connections++;
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    if (mode === 'no-greeting') return;
    s.write('220 bad.test ESMTP\r\n');
    let inData = false;
    let buf = '';
    s.on('data', (chunk: Buffer) => {
      if (inData) return; // swallowed, never answered
      buf += chunk.toString('latin1');
      let i: number;
      while (!inData && (i = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO' || verb === 'HELO') s.write('250 bad.test\r\n');
        else if (verb === 'MAIL' || verb === 'RCPT' || verb === 'RSET' || verb === 'NOOP') s.write('250 OK\r\n');
        else if (verb === 'DATA') {
          s.write('354 go ahead\r\n');
          inData = true;
          bodies++;
        } else if (verb === 'QUIT') {
          s.end('221 bye\r\n');
        } else s.write('502 not implemented\r\n');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `smtp://127.0.0.1:${port}`,
    get bodies() {
      return bodies;
    },
    get connections() {
      return connections;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
