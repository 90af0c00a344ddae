/**
 * Links into Lokario's front end, absolute from FRONTEND_URL (a path prefix in it is kept), paths
 * as in the original front end. Every email and notification builds its links here.
 */
const base = (frontendUrl: string) => frontendUrl.replace(/\/+$/, '');

export const links = {
  invoice: (frontendUrl: string, id: number | string) => `${base(frontendUrl)}/app/billing/invoices/${id}`,
  /** Followed by the invoice id, concatenated in SQL. */
  invoicePrefix: (frontendUrl: string) => `${base(frontendUrl)}/app/billing/invoices/`,
  quote: (frontendUrl: string, id: number | string) => `${base(frontendUrl)}/app/billing/quotes/${id}`,
  /** The client's public page to read and sign a quote. */
  quoteSignature: (frontendUrl: string, publicToken: string) => `${base(frontendUrl)}/quote/${encodeURIComponent(publicToken)}`,
  client: (frontendUrl: string, id: number | string) => `${base(frontendUrl)}/app/clients/${id}`,
  tasks: (frontendUrl: string) => `${base(frontendUrl)}/app/tasks`,
  appointments: (frontendUrl: string) => `${base(frontendUrl)}/app/appointments`,
  login: (frontendUrl: string) => `${base(frontendUrl)}/login`,
  /** The inbox's mailbox settings (reconnect a mailbox, renew an OAuth grant). */
  mailboxSettings: (frontendUrl: string) => `${base(frontendUrl)}/inbox?settings=integrations`,
};
