import { describe, expect, it } from 'vitest';
import { chooseTemplate, formatEuros, renderMessage, type TemplateVariables } from '../../lib/jobs/followups/messages.js';
import { fillTemplate } from '../../lib/text/template.js';
import { planSender } from '../../lib/jobs/followups/transport.js';
import { addressOf, formatFrom } from '../../lib/text/address.js';

const NBSP = '\u00a0';
const vars: TemplateVariables = {
  client_name: 'Mme Martin',
  source_label: 'Facture FAC-1',
  company_name: 'Atelier Dupont',
  company_email: 'contact@atelier.example',
  company_phone: '01 02 03 04 05',
  amount: formatEuros(120000),
  due_date: '28/02/2026',
  signature_link: '',
  company_address: '',
  company_city: '',
  company_postal_code: '',
  company_country: '',
  company_siren: '',
  company_siret: '',
  company_vat_number: '',
};

describe('French money', () => {
  it.each([
    [120000, `1${NBSP}200,00${NBSP}€`],
    [5, `0,05${NBSP}€`],
    [123456789, `1${NBSP}234${NBSP}567,89${NBSP}€`],
    [-1050, `-10,50${NBSP}€`],
  ])('%i cents → %s (no-break spaces only, no narrow U+202F)', (cents, text) => {
    expect(formatEuros(cents)).toBe(text);
    expect(formatEuros(cents)).not.toMatch(/\u202f| /);
  });
});

describe('templates (defect 19)', () => {
  it('matches the company template on the French label, whatever the case and accents', () => {
    for (const type of ['Facture impayée', 'facture impayee', ' FACTURE IMPAYÉE ', 'FACTURE_IMPAYEE']) {
      expect(chooseTemplate('FACTURE_IMPAYEE', [{ type, content: 'Mon texte', method: 'email' }])).toMatchObject({
        body: 'Mon texte',
        source: 'company',
      });
    }
  });
  it('never matches the Python enum str() the original compared with', () => {
    expect(chooseTemplate('FACTURE_IMPAYEE', [{ type: 'FollowUpType.FACTURE_IMPAYEE', content: 'x', method: 'email' }]).source).toBe(
      'default',
    );
  });
  it("another type's template is not used; an empty one falls back to the default", () => {
    expect(chooseTemplate('DEVIS_NON_REPONDU', [{ type: 'Facture impayée', content: 'x', method: 'email' }]).source).toBe('default');
    expect(chooseTemplate('FACTURE_IMPAYEE', [{ type: 'Facture impayée', content: '  ', method: 'email' }]).source).toBe('default');
  });
  it('keeps the template method (sms → not email)', () => {
    expect(chooseTemplate('FACTURE_IMPAYEE', [{ type: 'Facture impayée', content: 'x', method: 'SMS' }]).method).toBe('sms');
  });
  it('unknown variables stay visible and are reported; known ones are replaced', () => {
    expect(fillTemplate('{client_name} {oops} {amount}', vars as unknown as Record<string, string>)).toEqual({
      text: `Mme Martin {oops} 1${NBSP}200,00${NBSP}€`,
      unknown: ['oops'],
    });
  });
  it('the default invoice text: French, the balance, signed by the company', () => {
    const m = renderMessage(chooseTemplate('FACTURE_IMPAYEE', []), vars);
    expect(m.subject).toBe('Rappel de paiement : Facture FAC-1');
    expect(m.body).toContain('Bonjour Mme Martin,');
    expect(m.body).toContain(`Le solde restant dû s'élève à 1${NBSP}200,00${NBSP}€.`);
    expect(m.body.trim().endsWith('Atelier Dupont\ncontact@atelier.example')).toBe(true);
    expect(m.unknownVariables).toEqual([]);
  });
  it('the default quote text shows the signing link only when there is one', () => {
    const without = renderMessage(chooseTemplate('DEVIS_NON_REPONDU', []), vars);
    expect(without.body).not.toContain('signer en ligne');
    expect(without.body).not.toMatch(/\n{3,}/);
    const withLink = renderMessage(chooseTemplate('DEVIS_NON_REPONDU', []), { ...vars, signature_link: 'https://app.example/quote/t' });
    expect(withLink.body).toContain('Vous pouvez la consulter et la signer en ligne : https://app.example/quote/t');
  });
  it('a subject is always one line', () => {
    const m = renderMessage({ subject: 'Relance\n{source_label}', body: 'x', method: 'email', source: 'company' }, vars);
    expect(m.subject).toBe('Relance Facture FAC-1');
  });
});

describe('sender (defect 25)', () => {
  it('the primary mailbox with SMTP settings sends as itself', () => {
    const plan = planSender(
      {
        id: 3,
        email_address: 'f@atelier.example',
        email_password: 'gAAAAA…',
        smtp_server: 'smtp.atelier.example',
        smtp_port: null,
        smtp_use_ssl: true,
        use_ssl: true,
      },
      'Lokario <noreply@lokario.fr>',
      'contact@atelier.example',
    );
    expect(plan).toMatchObject({
      kind: 'mailbox',
      host: 'smtp.atelier.example',
      port: 465,
      secure: true,
      fromAddress: 'f@atelier.example',
    });
  });
  it('without SMTP settings: the platform address, Reply-To the company', () => {
    expect(planSender(null, 'Lokario <noreply@lokario.fr>', 'contact@atelier.example')).toEqual({
      kind: 'platform',
      fromAddress: 'noreply@lokario.fr',
      replyTo: 'contact@atelier.example',
    });
    expect(
      planSender(
        {
          id: 3,
          email_address: 'f@atelier.example',
          email_password: null,
          smtp_server: null,
          smtp_port: null,
          smtp_use_ssl: null,
          use_ssl: true,
        },
        'noreply@lokario.fr',
        null,
      ),
    ).toEqual({ kind: 'platform', fromAddress: 'noreply@lokario.fr', replyTo: 'f@atelier.example' });
  });
  it('quotes the display name so a comma or quote cannot break the header', () => {
    expect(formatFrom('Durand, "Fils"', 'a@b.fr')).toBe('"Durand, \\"Fils\\"" <a@b.fr>');
    expect(formatFrom('Evil\r\nBcc: x@y', 'a@b.fr')).toBe('"Evil Bcc: x@y" <a@b.fr>');
    expect(addressOf('Lokario <noreply@lokario.fr>')).toBe('noreply@lokario.fr');
  });
});
