/**
 * A realistic French demo tenant (docs/newcomer.md), relative to a chosen instant so that the demo always
 * has something due: used by `npm run demo` and the end-to-end test.
 */
import { DateTime } from 'luxon';
import type { Db } from '../db/client.js';
import {
  appointments,
  appointmentTypes,
  clients,
  companies,
  companySettings,
  conversations,
  inboxIntegrations,
  inboxMessages,
  invoicePayments,
  invoiceLines,
  invoices,
  quotes,
  subscriptions,
  tasks,
  users,
} from '../db/schema/index.js';
import { encryptSecret } from '../lib/crypto/fernet.js';

const DAY = 86_400_000;
const HOUR = 3_600_000;

export type DemoIds = {
  companyId: number;
  trialCompanyId: number;
  ownerId: number;
  deletionDueUserId: number;
  deletionSoonUserId: number;
  quoteThreadConversationId: number;
};

/** Message-ID of the email that sent quote DEV-2026-042 (seeded): the demo mailbox's reply threads into it. */
export const QUOTE_042_MESSAGE_ID = 'dev-2026-042.envoi@atelier-dupont.fr';
const QUOTE_042_SUBJECT = 'Devis DEV-2026-042 – Aménagement du placard';

export async function seedDemo(db: Db, now: Date): Promise<DemoIds> {
  const at = (days: number, hours = 0) => new Date(now.getTime() + days * DAY + hours * HOUR);
  return db.transaction(async (tx) => {
    const [company] = await tx
      .insert(companies)
      .values({ code: '100001', name: 'Atelier Dupont Menuiserie', slug: 'atelier-dupont' })
      .returning({ id: companies.id });
    const [trial] = await tx
      .insert(companies)
      .values({ code: '100002', name: 'Boulangerie Martin', slug: 'boulangerie-martin' })
      .returning({ id: companies.id });
    const companyId = company.id;

    await tx.insert(companySettings).values([
      {
        companyId,
        settings: {
          company_info: {
            email: 'contact@atelier-dupont.fr',
            phone: '04 78 12 34 56',
            address: '12 rue des Artisans',
            city: 'Lyon',
            postal_code: '69003',
            country: 'France',
            siret: '81234567800019',
            timezone: 'Europe/Paris',
          },
          billing: { auto_followups: { quotes_enabled: true, invoices_enabled: true } },
          followups: { max_relances: 3, relance_delays: [7, 14, 21] },
          appointments: {
            auto_reminder_enabled: true,
            reminder_relances: [
              {
                relance_number: 1,
                hours_before: 24,
                content: 'Bonjour {client_name}, nous vous rappelons votre rendez-vous du {date} à {time} avec {company_name}.',
              },
            ],
          },
          clients: { blocked_client_domains: ['newsletter.example.fr'] },
        },
      },
      { companyId: trial.id, settings: { company_info: { email: 'bonjour@boulangerie-martin.fr', timezone: 'Europe/Paris' } } },
    ]);
    await tx.insert(subscriptions).values([
      { companyId, plan: 'PROFESSIONAL', status: 'ACTIVE', stripeSubscriptionId: 'sub_demo_dupont', amount: '49.00' },
      { companyId: trial.id, plan: 'STARTER', status: 'TRIALING', trialEnd: at(-2) },
    ]);

    const [owner, employee, leaving] = await tx
      .insert(users)
      .values([
        { email: 'pierre.dupont@atelier-dupont.fr', fullName: 'Pierre Dupont', role: 'owner', companyId, createdAt: at(-400) },
        { email: 'sophie.lefebvre@atelier-dupont.fr', fullName: 'Sophie Lefebvre', role: 'user', companyId, createdAt: at(-200) },
        // asked to leave 25 days ago: deleted in 5 days, reminded now (J-7)
        {
          email: 'lucas.moreau@atelier-dupont.fr',
          fullName: 'Lucas Moreau',
          role: 'user',
          companyId,
          createdAt: at(-100),
          deletionRequestedAt: at(-25),
          deletionScheduledAt: at(5),
        },
      ])
      .returning({ id: users.id });
    // the only user of the trial company asked 31 days ago: the whole company goes
    const [due] = await tx
      .insert(users)
      .values({
        email: 'claire.martin@boulangerie-martin.fr',
        fullName: 'Claire Martin',
        role: 'owner',
        companyId: trial.id,
        createdAt: at(-60),
        deletionRequestedAt: at(-31),
        deletionScheduledAt: at(-1),
      })
      .returning({ id: users.id });

    const cl = await tx
      .insert(clients)
      .values([
        { companyId, name: 'Mme Camille Bernard', email: 'camille.bernard@example.fr', phone: '06 11 22 33 44' },
        { companyId, name: 'M. Julien Petit', email: 'julien.petit@example.fr' },
        { companyId, name: 'SARL Rénov’Habitat', email: 'compta@renov-habitat.example.fr' },
        { companyId, name: 'M. Antoine Girard', email: 'antoine.girard@example.fr' },
        { companyId, name: 'Mme Élodie Roux', email: null, phone: '06 98 76 54 32' },
      ])
      .returning({ id: clients.id });
    const [camille, julien, renov, antoine, elodie] = cl.map((c) => c.id);
    await tx.insert(clients).values({ companyId: trial.id, name: 'Café des Halles', email: 'cafe.halles@example.fr' });

    await tx.insert(quotes).values([
      {
        companyId,
        clientId: julien,
        number: 'DEV-2026-041',
        status: 'ENVOYE',
        sentAt: at(-8),
        validUntil: at(60),
        totalTtc: '3480.00',
        publicToken: 'demo-quote-041',
      },
      {
        companyId,
        clientId: antoine,
        number: 'DEV-2026-042',
        status: 'VU',
        sentAt: at(-3),
        validUntil: at(30),
        totalTtc: '1250.00',
        publicToken: 'demo-quote-042',
      },
      {
        companyId,
        clientId: camille,
        number: 'DEV-2026-039',
        status: 'ACCEPTE',
        sentAt: at(-20),
        acceptedAt: at(-15),
        totalTtc: '5600.00',
        clientSignaturePath: 'signatures/dev-039.png',
      },
    ]);

    const inv = await tx
      .insert(invoices)
      .values([
        // overdue for 20 days, partly paid: an overdue notification and a follow-up on the balance
        {
          companyId,
          clientId: camille,
          number: 'FAC-2026-0101',
          status: 'ENVOYEE',
          issueDate: at(-50),
          sentAt: at(-50),
          dueDate: at(-20),
          totalTtc: '2400.00',
          clientName: 'Mme Camille Bernard',
          sellerName: 'Atelier Dupont Menuiserie',
        },
        // overdue for 3 days
        {
          companyId,
          clientId: renov,
          number: 'FAC-2026-0105',
          status: 'IMPAYEE',
          issueDate: at(-33),
          sentAt: at(-33),
          dueDate: at(-3),
          totalTtc: '980.40',
          clientName: 'SARL Rénov’Habitat',
          sellerName: 'Atelier Dupont Menuiserie',
        },
        // due in 10 days: nothing yet
        {
          companyId,
          clientId: antoine,
          number: 'FAC-2026-0110',
          status: 'ENVOYEE',
          issueDate: at(-20),
          sentAt: at(-20),
          dueDate: at(10),
          totalTtc: '1500.00',
          clientName: 'M. Antoine Girard',
          sellerName: 'Atelier Dupont Menuiserie',
        },
        // paid
        {
          companyId,
          clientId: julien,
          number: 'FAC-2026-0098',
          status: 'PAYEE',
          issueDate: at(-70),
          sentAt: at(-70),
          dueDate: at(-40),
          paidAt: at(-41),
          totalTtc: '720.00',
          clientName: 'M. Julien Petit',
          sellerName: 'Atelier Dupont Menuiserie',
        },
      ])
      .returning({ id: invoices.id, total: invoices.totalTtc });
    await tx
      .insert(invoiceLines)
      .values(
        inv.map((i) => ({ invoiceId: i.id, description: 'Fourniture et pose', quantity: '1', unitPrice: i.total, totalTtc: i.total })),
      );
    await tx.insert(invoicePayments).values([
      { invoiceId: inv[0].id, amount: '1200.00', paymentDate: at(-10) },
      { invoiceId: inv[3].id, amount: '720.00', paymentDate: at(-41) },
    ]);

    await tx.insert(tasks).values([
      {
        companyId,
        title: 'Relancer le fournisseur de chêne massif',
        assignedToId: employee.id,
        status: 'A_FAIRE',
        priority: 'normal',
        dueDate: at(-2),
      },
      {
        companyId,
        title: 'Finir la cuisine de Mme Bernard',
        assignedToId: owner.id,
        status: 'EN_COURS',
        priority: 'critical',
        dueDate: at(1),
      },
      { companyId, title: 'Commander les charnières', status: 'TERMINE', priority: 'high', dueDate: at(-5), completedAt: at(-6) },
    ]);

    const [visit] = await tx
      .insert(appointmentTypes)
      .values({ companyId, name: 'Visite technique', durationMinutes: 60 })
      .returning({ id: appointmentTypes.id });
    await tx.insert(appointments).values([
      // tomorrow at 09:00 (the demo runs at 10:00), within 24 h: the reminder goes out now
      {
        companyId,
        clientId: camille,
        typeId: visit.id,
        employeeId: owner.id,
        startDateTime: at(0, 23),
        endDateTime: at(0, 24),
        status: 'CONFIRMED',
      },
      // in three days: not yet
      {
        companyId,
        clientId: antoine,
        typeId: visit.id,
        employeeId: employee.id,
        startDateTime: at(3),
        endDateTime: at(3, 1),
        status: 'SCHEDULED',
      },
      // the client has no email address: counted, not sent
      {
        companyId,
        clientId: elodie,
        typeId: visit.id,
        employeeId: employee.id,
        startDateTime: at(0, 10),
        endDateTime: at(0, 11),
        status: 'SCHEDULED',
      },
      { companyId, clientId: julien, typeId: visit.id, employeeId: owner.id, startDateTime: at(0, 5), status: 'CANCELLED' },
    ]);

    // the email that sent quote DEV-2026-042 three days ago: a client reply in the mailbox threads into it
    const [thread] = await tx
      .insert(conversations)
      .values({
        companyId,
        clientId: antoine,
        subject: QUOTE_042_SUBJECT,
        status: 'En attente',
        source: 'email',
        unreadCount: 0,
        lastMessageAt: at(-3),
      })
      .returning({ id: conversations.id });
    await tx.insert(inboxMessages).values({
      conversationId: thread.id,
      companyId,
      fromName: 'Atelier Dupont Menuiserie',
      fromEmail: 'contact@atelier-dupont.fr',
      content:
        'Bonjour Monsieur Girard,\n\nVeuillez trouver ci-joint notre devis DEV-2026-042 pour l’aménagement de votre placard.\n\nCordialement,\nPierre Dupont',
      source: 'email',
      isFromClient: false,
      read: true,
      externalId: QUOTE_042_MESSAGE_ID,
      sentAt: at(-3),
      createdAt: at(-3),
      externalMetadata: { subject: QUOTE_042_SUBJECT },
    });

    return {
      companyId,
      trialCompanyId: trial.id,
      ownerId: owner.id,
      deletionDueUserId: due.id,
      deletionSoonUserId: leaving.id,
      quoteThreadConversationId: thread.id,
    };
  });
}

/** What the demo mailbox holds, and what inbox-sync must make of it. */
export type DemoMail = { raw: string; messageId: string; from: string; expect: 'new-client' | 'thread-reply' | 'no-client' };

/** An RFC 5322 date in Paris time (`Thu, 26 Nov 2026 09:14:00 +0100`), as French mail clients write it. */
const rfc5322Paris = (d: Date) => DateTime.fromJSDate(d, { zone: 'Europe/Paris' }).toRFC2822()!;

/** Encodes a header value with non-ASCII characters as an RFC 2047 encoded word (UTF-8, base64). */
function encodedWord(v: string): string {
  return /^[\x20-\x7e]*$/.test(v) ? v : `=?UTF-8?B?${Buffer.from(v, 'utf8').toString('base64')}?=`;
}

function rawMail(headers: Record<string, string>, body: string): string {
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${k === 'Subject' || k === 'From' ? encodedWord(v) : v}`);
  lines.push('MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: 8bit');
  return `${lines.join('\r\n')}\r\n\r\n${body.replace(/\r?\n/g, '\r\n')}\r\n`;
}

/**
 * A few realistic French messages for the demo company's mailbox, dated shortly before `now`:
 * a prospect asking for a quote (becomes a client), a client replying to the seeded quote email
 * (threads into that conversation), and a supplier newsletter (imported, creates no client).
 */
export function demoMailbox(now: Date, mailbox = 'contact@atelier-dupont.fr'): DemoMail[] {
  const at = (hours: number) => new Date(now.getTime() + hours * HOUR);
  const quoteRequest = 'demande-escalier.20261126@mail.example.fr';
  const reply = 'reponse-dev-042.antoine@example.fr';
  const newsletter = 'promo-novembre.4471@newsletter.example.fr';
  return [
    {
      messageId: quoteRequest,
      from: 'nathalie.fabre@example.fr',
      expect: 'new-client',
      raw: rawMail(
        {
          From: 'Nathalie Fabre <nathalie.fabre@example.fr>',
          To: mailbox,
          Subject: 'Demande de devis : escalier en chêne',
          Date: rfc5322Paris(at(-20)),
          'Message-ID': `<${quoteRequest}>`,
        },
        `Bonjour,

Nous rénovons une maison à Villeurbanne et cherchons un menuisier pour un escalier quart tournant en chêne massif (hauteur sous plafond 2,60 m).
Pourriez-vous passer pour un métré et nous faire un devis ? Nous sommes disponibles en semaine après 17 h.

Bien cordialement,
Nathalie Fabre
06 45 12 78 90`,
      ),
    },
    {
      messageId: reply,
      from: 'antoine.girard@example.fr',
      expect: 'thread-reply',
      raw: rawMail(
        {
          From: 'Antoine Girard <antoine.girard@example.fr>',
          To: mailbox,
          Subject: `RE: ${QUOTE_042_SUBJECT}`,
          Date: rfc5322Paris(at(-5)),
          'Message-ID': `<${reply}>`,
          'In-Reply-To': `<${QUOTE_042_MESSAGE_ID}>`,
          References: `<${QUOTE_042_MESSAGE_ID}>`,
        },
        `Bonjour Monsieur Dupont,

Merci pour le devis. Est-il possible de remplacer les portes coulissantes par des portes battantes, et de commencer les travaux avant les vacances de Noël ?

Cordialement,
Antoine Girard

> Veuillez trouver ci-joint notre devis DEV-2026-042 pour l’aménagement de votre placard.`,
      ),
    },
    {
      messageId: newsletter,
      from: 'infos@newsletter.example.fr',
      expect: 'no-client',
      raw: rawMail(
        {
          From: 'Bois & Outils Pro <infos@newsletter.example.fr>',
          To: mailbox,
          Subject: 'Les promos de novembre : -20 % sur l’outillage',
          Date: rfc5322Paris(at(-30)),
          'Message-ID': `<${newsletter}>`,
          'List-Id': 'Promotions Bois & Outils Pro <promos.newsletter.example.fr>',
          'List-Unsubscribe': '<https://newsletter.example.fr/desinscription?u=4471>',
          Precedence: 'bulk',
        },
        `Cette semaine seulement : -20 % sur les scies plongeantes, les défonceuses et les serre-joints.
Livraison offerte dès 150 € d’achat.

Se désinscrire : https://newsletter.example.fr/desinscription?u=4471`,
      ),
    },
  ];
}

/**
 * The demo company's IMAP mailbox, pointing at a local server. The password is stored the way
 * Lokario stores it: Fernet-encrypted with the ENCRYPTION_MASTER_KEY (lib/crypto/fernet.ts).
 */
export async function createDemoIntegration(
  db: Db,
  companyId: number,
  mailbox: { host: string; port: number; user: string; password: string; masterKey: string },
): Promise<number> {
  const [row] = await db
    .insert(inboxIntegrations)
    .values({
      companyId,
      integrationType: 'imap',
      name: 'Boîte contact@',
      imapServer: mailbox.host,
      imapPort: mailbox.port,
      emailAddress: mailbox.user,
      emailPassword: encryptSecret(mailbox.password, mailbox.masterKey),
      useSsl: false,
      isActive: true,
      isPrimary: false,
    })
    .returning({ id: inboxIntegrations.id });
  return row.id;
}
