/**
 * A realistic French demo tenant (SPEC §6), relative to a chosen instant so that the demo always
 * has something due: used by `npm run demo` and the end-to-end test.
 */
import type { Db } from '../db/client.js';
import {
  appointments, appointmentTypes, clients, companies, companySettings, invoicePayments, invoiceLines, invoices,
  quotes, subscriptions, tasks, users,
} from '../db/schema/index.js';

const DAY = 86_400_000;
const HOUR = 3_600_000;

export type DemoIds = { companyId: number; trialCompanyId: number; ownerId: number; deletionDueUserId: number; deletionSoonUserId: number };

export async function seedDemo(db: Db, now: Date): Promise<DemoIds> {
  const at = (days: number, hours = 0) => new Date(now.getTime() + days * DAY + hours * HOUR);
  return db.transaction(async (tx) => {
    const [company] = await tx.insert(companies).values({ code: '100001', name: 'Atelier Dupont Menuiserie', slug: 'atelier-dupont' }).returning({ id: companies.id });
    const [trial] = await tx.insert(companies).values({ code: '100002', name: 'Boulangerie Martin', slug: 'boulangerie-martin' }).returning({ id: companies.id });
    const companyId = company.id;

    await tx.insert(companySettings).values([
      {
        companyId,
        settings: {
          company_info: {
            email: 'contact@atelier-dupont.fr', phone: '04 78 12 34 56', address: '12 rue des Artisans', city: 'Lyon',
            postal_code: '69003', country: 'France', siret: '81234567800019', timezone: 'Europe/Paris',
          },
          billing: { auto_followups: { quotes_enabled: true, invoices_enabled: true } },
          followups: { max_relances: 3, relance_delays: [7, 14, 21] },
          appointments: {
            auto_reminder_enabled: true,
            reminder_relances: [{ relance_number: 1, hours_before: 24, content: 'Bonjour {client_name}, nous vous rappelons votre rendez-vous du {date} à {time} avec {company_name}.' }],
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

    const [owner, employee, leaving] = await tx.insert(users).values([
      { email: 'pierre.dupont@atelier-dupont.fr', fullName: 'Pierre Dupont', role: 'owner', companyId, createdAt: at(-400) },
      { email: 'sophie.lefebvre@atelier-dupont.fr', fullName: 'Sophie Lefebvre', role: 'user', companyId, createdAt: at(-200) },
      // asked to leave 25 days ago: deleted in 5 days, reminded now (J-7)
      { email: 'lucas.moreau@atelier-dupont.fr', fullName: 'Lucas Moreau', role: 'user', companyId, createdAt: at(-100), deletionRequestedAt: at(-25), deletionScheduledAt: at(5) },
    ]).returning({ id: users.id });
    // the only user of the trial company asked 31 days ago: the whole company goes
    const [due] = await tx.insert(users).values({
      email: 'claire.martin@boulangerie-martin.fr', fullName: 'Claire Martin', role: 'owner', companyId: trial.id,
      createdAt: at(-60), deletionRequestedAt: at(-31), deletionScheduledAt: at(-1),
    }).returning({ id: users.id });

    const cl = await tx.insert(clients).values([
      { companyId, name: 'Mme Camille Bernard', email: 'camille.bernard@example.fr', phone: '06 11 22 33 44' },
      { companyId, name: 'M. Julien Petit', email: 'julien.petit@example.fr' },
      { companyId, name: 'SARL Rénov’Habitat', email: 'compta@renov-habitat.example.fr' },
      { companyId, name: 'M. Antoine Girard', email: 'antoine.girard@example.fr' },
      { companyId, name: 'Mme Élodie Roux', email: null, phone: '06 98 76 54 32' },
    ]).returning({ id: clients.id });
    const [camille, julien, renov, antoine, elodie] = cl.map((c) => c.id);
    await tx.insert(clients).values({ companyId: trial.id, name: 'Café des Halles', email: 'cafe.halles@example.fr' });

    await tx.insert(quotes).values([
      { companyId, clientId: julien, number: 'DEV-2026-041', status: 'ENVOYE', sentAt: at(-8), validUntil: at(60), totalTtc: '3480.00', publicToken: 'demo-quote-041' },
      { companyId, clientId: antoine, number: 'DEV-2026-042', status: 'VU', sentAt: at(-3), validUntil: at(30), totalTtc: '1250.00', publicToken: 'demo-quote-042' },
      { companyId, clientId: camille, number: 'DEV-2026-039', status: 'ACCEPTE', sentAt: at(-20), acceptedAt: at(-15), totalTtc: '5600.00', clientSignaturePath: 'signatures/dev-039.png' },
    ]);

    const inv = await tx.insert(invoices).values([
      // overdue for 20 days, partly paid: an overdue notification and a follow-up on the balance
      { companyId, clientId: camille, number: 'FAC-2026-0101', status: 'ENVOYEE', issueDate: at(-50), sentAt: at(-50), dueDate: at(-20), totalTtc: '2400.00', clientName: 'Mme Camille Bernard', sellerName: 'Atelier Dupont Menuiserie' },
      // overdue for 3 days
      { companyId, clientId: renov, number: 'FAC-2026-0105', status: 'IMPAYEE', issueDate: at(-33), sentAt: at(-33), dueDate: at(-3), totalTtc: '980.40', clientName: 'SARL Rénov’Habitat', sellerName: 'Atelier Dupont Menuiserie' },
      // due in 10 days: nothing yet
      { companyId, clientId: antoine, number: 'FAC-2026-0110', status: 'ENVOYEE', issueDate: at(-20), sentAt: at(-20), dueDate: at(10), totalTtc: '1500.00', clientName: 'M. Antoine Girard', sellerName: 'Atelier Dupont Menuiserie' },
      // paid
      { companyId, clientId: julien, number: 'FAC-2026-0098', status: 'PAYEE', issueDate: at(-70), sentAt: at(-70), dueDate: at(-40), paidAt: at(-41), totalTtc: '720.00', clientName: 'M. Julien Petit', sellerName: 'Atelier Dupont Menuiserie' },
    ]).returning({ id: invoices.id, total: invoices.totalTtc });
    await tx.insert(invoiceLines).values(inv.map((i) => ({ invoiceId: i.id, description: 'Fourniture et pose', quantity: '1', unitPrice: i.total, totalTtc: i.total })));
    await tx.insert(invoicePayments).values([
      { invoiceId: inv[0].id, amount: '1200.00', paymentDate: at(-10) },
      { invoiceId: inv[3].id, amount: '720.00', paymentDate: at(-41) },
    ]);

    await tx.insert(tasks).values([
      { companyId, title: 'Relancer le fournisseur de chêne massif', assignedToId: employee.id, status: 'A_FAIRE', priority: 'normal', dueDate: at(-2) },
      { companyId, title: 'Finir la cuisine de Mme Bernard', assignedToId: owner.id, status: 'EN_COURS', priority: 'critical', dueDate: at(1) },
      { companyId, title: 'Commander les charnières', status: 'TERMINE', priority: 'high', dueDate: at(-5), completedAt: at(-6) },
    ]);

    const [visit] = await tx.insert(appointmentTypes).values({ companyId, name: 'Visite technique', durationMinutes: 60 }).returning({ id: appointmentTypes.id });
    await tx.insert(appointments).values([
      // tomorrow, within 24 h: the reminder goes out now
      { companyId, clientId: camille, typeId: visit.id, employeeId: owner.id, startDateTime: at(0, 20), endDateTime: at(0, 21), status: 'CONFIRMED' },
      // in three days: not yet
      { companyId, clientId: antoine, typeId: visit.id, employeeId: employee.id, startDateTime: at(3), endDateTime: at(3, 1), status: 'SCHEDULED' },
      // the client has no email address: counted, not sent
      { companyId, clientId: elodie, typeId: visit.id, employeeId: employee.id, startDateTime: at(0, 10), endDateTime: at(0, 11), status: 'SCHEDULED' },
      { companyId, clientId: julien, typeId: visit.id, employeeId: owner.id, startDateTime: at(0, 5), status: 'CANCELLED' },
    ]);

    return { companyId, trialCompanyId: trial.id, ownerId: owner.id, deletionDueUserId: due.id, deletionSoonUserId: leaving.id };
  });
}
