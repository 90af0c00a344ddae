import fs from 'node:fs/promises';
import path from 'node:path';
import type { Transporter } from 'nodemailer';
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';
import type Mail from 'nodemailer/lib/mailer/index.js';
import type { Config } from '../config.js';
import { checkMailbox, checkSingleAddress, describeAddressProblem } from '../text/address.js';
import { envelopeSender } from './verp.js';
import { WATCH_KEY, deadlineCut, watchPlugin, type SendWatch } from './send-watch.js';

export type OutgoingMail = {
  from: string;
  to: string;
  subject: string;
  text: string;
  html?: string;
  replyTo?: string;
  /** Deterministic Message-ID (`<…@…>`), the idempotency key seen by the receiving side. */
  messageId: string;
  inReplyTo?: string;
  references?: string[];
  headers?: Record<string, string>;
};

export type SendResult = {
  messageId: string;
  /** smtp: handed to an SMTP server; outbox: written as an .eml file (embedded default). */
  via: 'smtp' | 'outbox';
  response?: string;
  /** The .eml file, when written to the outbox. */
  file?: string;
};

/**
 * Where a send stood when it ended: `queued` (no SMTP transaction started: nothing can have been
 * delivered), `envelope` (MAIL FROM / RCPT TO / DATA in progress: nothing delivered yet), `data`
 * (the server accepted DATA and the body is going out or awaiting its answer: an error without a
 * server answer here means the email may have been delivered).
 */
export type SendStage = 'queued' | 'envelope' | 'data';

/** The hooks of one send (lib/mail/claimed-send.ts uses them; docs/sending.md). */
export type SendOptions = {
  /** Epoch ms (real clock): the transaction is abandoned (connection closed) at this instant. */
  deadlineAt?: number;
  /**
   * The hand-over: started when the message's SMTP transaction starts (MAIL FROM, so that it
   * overlaps the envelope's round trip) and awaited once the server accepted DATA, before a byte
   * of the body is sent. A rejection aborts the transaction before the email can be delivered.
   */
  beforeData?(): Promise<void>;
};

export type MailSender = {
  kind: 'smtp' | 'outbox' | 'unconfigured';
  send(mail: OutgoingMail, opts?: SendOptions): Promise<SendResult>;
  close(): void;
};

/** SMTP credentials of a company's primary mailbox: its password (decrypted), or an OAuth 2.0
 *  access token for SASL XOAUTH2 (lib/oauth/smtp.ts keeps it fresh; docs/oauth-mailboxes.md). */
export type MailboxSmtp = { host: string; port: number; secure: boolean; user: string } & ({ pass: string } | { accessToken: string });

export type MailFactory = {
  /** The platform transport: SMTP_URL, else the .eml outbox (not in production). */
  platform(): MailSender;
  /** A company's own mailbox SMTP. */
  mailbox(smtp: MailboxSmtp): MailSender;
  /** Closes every transport opened through this factory (end of a run). */
  closeAll(): void;
};

/**
 * A send that failed, classified: `permanent` (5xx) is not worth retrying soon; 4xx and network
 * errors are. `stage` says whether the email may have been delivered anyway (`data` without a
 * server answer: see SendStage).
 */
export class MailError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly permanent: boolean,
    readonly responseCode?: number,
    readonly stage: SendStage = 'queued',
  ) {
    super(message);
  }
}

const DEADLINE_CUT_TEXT = 'the SMTP transaction did not end before the run deadline';

export function classifySmtpError(err: unknown, stage: SendStage = 'queued'): MailError {
  if (err instanceof MailError) return err;
  const e = err as { code?: string; name?: string; responseCode?: number; message?: string; response?: string };
  const rc = typeof e.responseCode === 'number' ? e.responseCode : undefined;
  const message = (e.response ?? e.message ?? String(err)).slice(0, 300);
  if (rc !== undefined && rc >= 500) return new MailError(e.code === 'EAUTH' ? 'smtp_auth' : 'smtp_rejected', message, true, rc, stage);
  if (rc !== undefined && rc >= 400) return new MailError('smtp_temporary', message, false, rc, stage);
  if (e.code === 'EAUTH') return new MailError('smtp_auth', message, true, rc, stage);
  if (e.name === 'AbortError' || e.code === 'ABORT_ERR') return new MailError('smtp_deadline', DEADLINE_CUT_TEXT, false, undefined, stage);
  if (e.code === 'ETIMEDOUT') return new MailError('smtp_timeout', message, false, undefined, stage);
  return new MailError('smtp_connection', message, false, undefined, stage);
}

/**
 * Connecting and waiting for the greeting never take more than this share of the run's budget,
 * whatever SMTP_*_TIMEOUT_MS says: a server that never greets must fail the send early enough
 * for the run to release its claim and answer in time (5 s of the default 25 s budget).
 */
const CONNECT_SHARE_OF_BUDGET = 0.2;

function timeouts(config: Config, maxConnections: number) {
  const cap = Math.max(500, Math.floor(config.CRON_BUDGET_MS * CONNECT_SHARE_OF_BUDGET));
  return {
    // connections kept open for the whole run instead of one per email
    pool: true as const,
    maxConnections,
    connectionTimeout: Math.min(config.SMTP_CONNECT_TIMEOUT_MS, cap),
    greetingTimeout: Math.min(config.SMTP_GREETING_TIMEOUT_MS, cap),
    // a silent server mid-transaction is cut by the send's own deadline (SendOptions.deadlineAt)
    socketTimeout: config.SMTP_SOCKET_TIMEOUT_MS,
  };
}

/** MAIL_REDIRECT_TO: every email goes to one address; the intended recipient stays visible. */
function applyRedirect(mail: OutgoingMail, redirectTo: string | undefined): OutgoingMail {
  if (!redirectTo) return mail;
  return { ...mail, to: redirectTo, headers: { ...mail.headers, 'X-Original-To': mail.to } };
}

// --- recipient guard (docs/security.md): the last line of defence, whatever a job built ---
/**
 * To and Reply-To must each be exactly one addr-spec (lib/text/address.ts), checked on the
 * intended recipient, before MAIL_REDIRECT_TO and before any connection: a refused address is a
 * permanent `invalid_recipient`, and nothing is sent.
 */
export function assertSingleRecipients(mail: OutgoingMail): OutgoingMail {
  for (const [field, value] of [
    ['To', mail.to],
    ['Reply-To', mail.replyTo],
  ] as const) {
    if (field === 'Reply-To' && value === undefined) continue;
    const c = checkSingleAddress(value);
    if (!c.ok) throw new MailError('invalid_recipient', describeAddressProblem(field, value, c.reason), true);
  }
  const to = mail.to.trim();
  const replyTo = mail.replyTo?.trim();
  return to === mail.to && replyTo === mail.replyTo ? mail : { ...mail, to, ...(replyTo !== undefined ? { replyTo } : {}) };
}
// --- end of the recipient guard ---

/** `Name <addr>` as nodemailer's address object, parsed once per distinct sender (a run has a few). */
const senderMailboxes = new Map<string, Mail.Address | string>();
function senderMailbox(from: string): Mail.Address | string {
  let mailbox = senderMailboxes.get(from);
  if (mailbox === undefined) {
    if (senderMailboxes.size >= 1_000) senderMailboxes.clear();
    const parsed = checkMailbox(from);
    // a From that is not one mailbox goes as written: nodemailer reads it as it always did
    mailbox = parsed.ok ? { name: parsed.name, address: parsed.address } : from;
    senderMailboxes.set(from, mailbox);
  }
  return mailbox;
}

function toNodemailer(mail: OutgoingMail): Mail.Options {
  return {
    // address objects, not strings: nodemailer must never read a recipient as a list (nor parse
    // the same From again for every email)
    from: senderMailbox(mail.from),
    to: { name: '', address: mail.to },
    subject: mail.subject,
    text: mail.text,
    html: mail.html,
    replyTo: mail.replyTo === undefined ? undefined : { name: '', address: mail.replyTo },
    messageId: mail.messageId,
    inReplyTo: mail.inReplyTo,
    references: mail.references,
    headers: mail.headers,
  };
}

/** The platform relay takes a few parallel sends; a customer's own mailbox server gets one connection. */
const PLATFORM_SMTP_CONNECTIONS = 5;
const MAILBOX_SMTP_CONNECTIONS = 1;

// nodemailer is loaded on the first send, not at import: it is ~50 ms of every cold start
const loadNodemailer = async () => (await import('nodemailer')).default;

function smtpSender(
  options: SMTPTransport.Options,
  redirectTo: string | undefined,
  envelopeFrom?: (mail: OutgoingMail) => string,
): MailSender {
  // the promise, not the transport, is memoised: concurrent first sends must share ONE pool
  // (awaiting the import before assigning gave each of them its own pool, its own connections,
  // and close() only closed the last one)
  let transport: Promise<Transporter> | undefined;
  const closeTransport = () => {
    const t = transport;
    transport = undefined;
    void t?.then(
      (x) => (x.close as (o?: { force?: boolean }) => void)({ force: true }),
      () => {},
    );
  };
  // at the deadline the pool is closed: a queued message fails at once, a delivering connection
  // is cut (before DATA → nothing delivered; after → maybe, `unknown`)
  const deadline = deadlineCut(closeTransport);
  return {
    kind: 'smtp',
    async send(mail, opts = {}) {
      const m = applyRedirect(assertSingleRecipients(mail), redirectTo);
      const watch: SendWatch = { stage: 'queued', beforeData: opts.beforeData };
      let generation = deadline.current();
      try {
        if (opts.deadlineAt !== undefined) {
          if (opts.deadlineAt - Date.now() <= 0)
            throw new MailError('smtp_deadline', 'no time left before the run deadline', false, undefined, 'queued');
          generation = deadline.arm(opts.deadlineAt);
        }
        transport ??= loadNodemailer().then((nm) => {
          const t = nm.createTransport(options);
          t.use('stream', watchPlugin as unknown as Parameters<Transporter['use']>[1]);
          return t;
        });
        const pool = transport;
        // the envelope sender (Return-Path) is where bounces go: BOUNCE_ADDRESS, VERP or not (docs/bounces.md)
        const envelope: Mail.Options = envelopeFrom ? { envelope: { from: envelopeFrom(m), to: [m.to] } } : {};
        const info = await (await pool).sendMail({ ...toNodemailer(m), ...envelope, [WATCH_KEY]: watch } as Mail.Options);
        if (info.rejected?.length)
          throw new MailError('smtp_rejected', `rejected: ${info.rejected.length} recipient(s)`, true, undefined, watch.stage);
        return { messageId: m.messageId, via: 'smtp', response: String(info.response ?? '') };
      } catch (err) {
        if (!(err instanceof MailError) && deadline.wasCut(generation))
          throw new MailError('smtp_deadline', DEADLINE_CUT_TEXT, false, undefined, watch.stage);
        throw classifySmtpError(err, watch.stage);
      }
    },
    // force: a connection stuck in a transaction past the deadline must not outlive the run
    close: () => {
      deadline.clear();
      closeTransport();
    },
  };
}

function outboxSender(dir: string, redirectTo: string | undefined): MailSender {
  let transport: Promise<Transporter> | undefined;
  return {
    kind: 'outbox',
    async send(mail, opts = {}) {
      const m = applyRedirect(assertSingleRecipients(mail), redirectTo);
      transport ??= loadNodemailer().then((nm) => nm.createTransport({ streamTransport: true, buffer: true, newline: 'unix' }));
      const info = await (await transport).sendMail(toNodemailer(m));
      // the file is the delivery: it is written only once the hand-over is recorded
      try {
        await opts.beforeData?.();
      } catch (err) {
        throw new MailError('handover_failed', (err as Error).message, false, undefined, 'envelope');
      }
      const day = new Date().toISOString().slice(0, 10);
      const name = m.messageId.replace(/[<>]/g, '').replace(/[^A-Za-z0-9._@-]/g, '_');
      const file = path.join(dir, day, `${name}.eml`);
      await fs.mkdir(path.dirname(file), { recursive: true });
      await fs.writeFile(file, info.message as Buffer);
      return { messageId: m.messageId, via: 'outbox', file };
    },
    close: () => {
      void transport?.then(
        (t) => t.close(),
        () => {},
      );
    },
  };
}

function unconfiguredSender(): MailSender {
  return {
    kind: 'unconfigured',
    async send() {
      throw new MailError('smtp_not_configured', 'SMTP_URL is not set; outgoing mail is disabled in production', true);
    },
    close: () => {},
  };
}

export function createMailFactory(config: Config): MailFactory {
  const opened: MailSender[] = [];
  const track = (s: MailSender) => (opened.push(s), s);
  let platform: MailSender | undefined;
  return {
    platform() {
      if (platform) return platform;
      if (config.SMTP_URL) {
        // the URL carries host, port, TLS and credentials; the timeouts come from the configuration
        const url = new URL(config.SMTP_URL);
        platform = smtpSender(
          {
            host: url.hostname,
            port: url.port ? Number(url.port) : url.protocol === 'smtps:' ? 465 : 587,
            secure: url.protocol === 'smtps:',
            auth: url.username ? { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) } : undefined,
            ...timeouts(config, PLATFORM_SMTP_CONNECTIONS),
          },
          config.MAIL_REDIRECT_TO,
          config.BOUNCE_ADDRESS ? (m) => envelopeSender(config.BOUNCE_ADDRESS!, m.messageId, config.BOUNCE_VERP === 'on') : undefined,
        );
      } else if (config.isProductionLike) {
        platform = unconfiguredSender();
      } else {
        platform = outboxSender(config.OUTBOX_DIR, config.MAIL_REDIRECT_TO);
      }
      return track(platform);
    },
    mailbox(smtp) {
      return track(
        smtpSender(
          {
            host: smtp.host,
            port: smtp.port,
            secure: smtp.secure,
            // never send a mailbox password in clear: STARTTLS is required when not implicit TLS
            requireTLS: !smtp.secure,
            auth:
              'accessToken' in smtp
                ? { type: 'OAuth2', user: smtp.user, accessToken: smtp.accessToken }
                : { user: smtp.user, pass: smtp.pass },
            ...timeouts(config, MAILBOX_SMTP_CONNECTIONS),
          },
          config.MAIL_REDIRECT_TO,
        ),
      );
    },
    closeAll() {
      for (const s of opened.splice(0)) s.close();
      platform = undefined;
    },
  };
}
