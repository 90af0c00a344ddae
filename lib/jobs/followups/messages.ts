/**
 * Every French text of the follow-ups job: the messages (the company's template for the type,
 * else the built-in default; the variables of docs/followups.md; amounts as French money), the
 * notification of a step that could not be sent, and the links to the source. Pure.
 */
import { links } from '../../links.js';
import { fillTemplate } from '../../text/template.js';

export type AutoFollowupType = 'FACTURE_IMPAYEE' | 'DEVIS_NON_REPONDU';

/** `sent_by_name` of an automatic step in the history (what the web app shows as the sender). */
export const AUTOMATIC_SENDER_NAME = 'Système automatique';

/** The French labels the settings screen stores in `followups.messages[].type` (the original's settings screen). */
export const FRENCH_LABEL: Record<AutoFollowupType, string> = {
  FACTURE_IMPAYEE: 'Facture impayée',
  DEVIS_NON_REPONDU: 'Devis non répondu',
};

export type TemplateSetting = { type: string; content: string; method: string; subject?: string };

export type ChosenTemplate = { subject: string; body: string; method: string; source: 'company' | 'default' };

const DEFAULT_SUBJECT: Record<AutoFollowupType, string> = {
  FACTURE_IMPAYEE: 'Rappel de paiement : {source_label}',
  DEVIS_NON_REPONDU: 'Suite à notre proposition : {source_label}',
};

const DEFAULT_BODY: Record<AutoFollowupType, string> = {
  FACTURE_IMPAYEE: [
    'Bonjour {client_name},',
    '',
    "Sauf erreur de notre part, nous n'avons pas encore reçu le règlement de la pièce suivante : {source_label}.",
    "Le solde restant dû s'élève à {amount}.",
    '',
    'Pourriez-vous procéder au paiement dans les meilleurs délais ? Si votre règlement nous est parvenu entre-temps, merci de ne pas tenir compte de ce message.',
    '',
    'Nous restons à votre disposition pour toute question.',
    '',
    'Cordialement,',
    '{company_name}',
    '{company_email}',
  ].join('\n'),
  DEVIS_NON_REPONDU: [
    'Bonjour {client_name},',
    '',
    "Nous revenons vers vous au sujet de notre proposition ({source_label}), d'un montant de {amount}, restée sans réponse à ce jour.",
    '',
    "Avez-vous eu l'occasion de la consulter ? Nous serions ravis de répondre à vos questions ou de l'ajuster à vos besoins.",
    '{signature_sentence}',
    'Cordialement,',
    '{company_name}',
    '{company_email}',
  ].join('\n'),
};

/** Compares labels without caring about case, accents or surrounding space ("facture impayee"). */
function labelKey(s: string): string {
  return s
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .trim()
    .toLowerCase();
}

/**
 * The company's template for the type: matched on the French label (what the settings screen
 * stores) or on the enum name (the original backend compared `str(enum)` and never matched).
 */
export function chooseTemplate(type: AutoFollowupType, messages: readonly TemplateSetting[]): ChosenTemplate {
  const wanted = new Set([labelKey(FRENCH_LABEL[type]), labelKey(type)]);
  const own = messages.find((m) => wanted.has(labelKey(m.type)) && m.content.trim() !== '');
  if (own) {
    return {
      subject: own.subject?.trim() || DEFAULT_SUBJECT[type],
      body: own.content,
      method: (own.method || 'email').trim().toLowerCase(),
      source: 'company',
    };
  }
  return { subject: DEFAULT_SUBJECT[type], body: DEFAULT_BODY[type], method: 'email', source: 'default' };
}

/**
 * French money: `1 200,00 €`. Intl puts U+202F (narrow no-break space) between thousands and
 * U+00A0 before the sign; both become U+00A0, which every mail font has and which never breaks
 * the amount across two lines.
 */
// built once: constructing an Intl.NumberFormat costs far more than formatting with it
const EUROS = new Intl.NumberFormat('fr-FR', { style: 'currency', currency: 'EUR' });

export function formatEuros(cents: number): string {
  return EUROS.format(cents / 100).replace(/[\u202f\u00a0\s]/g, '\u00a0');
}

export type TemplateVariables = {
  client_name: string;
  source_label: string;
  company_name: string;
  company_email: string;
  company_phone: string;
  amount: string;
  due_date: string;
  signature_link: string;
  company_address: string;
  company_city: string;
  company_postal_code: string;
  company_country: string;
  company_siren: string;
  company_siret: string;
  company_vat_number: string;
};

/** Tidies what empty variables leave behind: trailing spaces, runs of blank lines. */
function tidy(text: string): string {
  return (
    text
      .replace(/[ \t]+$/gm, '')
      .replace(/\n{3,}/g, '\n\n')
      .trim() + '\n'
  );
}

export type RenderedMessage = { subject: string; body: string; unknownVariables: string[]; template: 'company' | 'default' };

export function renderMessage(template: ChosenTemplate, vars: TemplateVariables): RenderedMessage {
  const all: Record<string, string> = { ...vars };
  // only the built-in quote text uses it: a sentence that disappears when there is no link
  if (template.source === 'default') {
    all.signature_sentence = vars.signature_link ? `\nVous pouvez la consulter et la signer en ligne : ${vars.signature_link}\n` : '';
  }
  const subject = fillTemplate(template.subject, all);
  const body = fillTemplate(template.body, all);
  return {
    // a subject is one line whatever the template says
    subject: subject.text.replace(/\s+/g, ' ').trim(),
    body: tidy(body.text),
    unknownVariables: [...new Set([...subject.unknown, ...body.unknown])],
    template: template.source,
  };
}

/** The link from a notification to the follow-up's source document. */
export function sourceLink(source: { sourceType: string; sourceId: number | null }, frontendUrl: string): { url: string; text: string } {
  return source.sourceType === 'quote'
    ? { url: links.quote(frontendUrl, source.sourceId ?? ''), text: 'Voir le devis' }
    : { url: links.invoice(frontendUrl, source.sourceId ?? ''), text: 'Voir la facture' };
}

/** The company's notification once a step failed for good and the follow-up is suspended. */
export function failedStepNotification(p: {
  step: number;
  sourceLabel: string;
  clientName: string | null;
  attempts: number;
  error: string;
}) {
  return {
    title: 'Relance automatique non envoyée',
    message: `La relance n°${p.step} (${p.sourceLabel}) destinée à ${p.clientName ?? 'le client'} n'a pas pu être envoyée après ${p.attempts} tentatives : ${p.error}. Les relances automatiques de ce dossier sont suspendues.`,
  };
}

/** The job's name in the console, and the `message` of its route's success body (the original backend's sentence). */
export const JOB_TEXTS = {
  label: 'Relances automatiques',
  message: 'Traitement des relances automatiques terminé avec succès',
};
