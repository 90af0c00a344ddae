/**
 * VERP (variable envelope return path) for platform emails: the envelope sender carries the
 * send's Message-ID, so a bounce names its send even when it returns none of the original's
 * headers. `bounces@lokario.fr` + `<lokario.followup.12.1@lokario.fr>` →
 * `bounces+lokario.followup.12.1=lokario.fr@lokario.fr` (the `@` of the id becomes `=`, the usual
 * VERP encoding; deterministic Message-IDs hold only letters, digits, `.`, `_`, `-`).
 */
import { normaliseMessageId } from './message-id.js';

/** The envelope sender of one email: BOUNCE_ADDRESS, extended with its Message-ID when VERP is on. */
export function envelopeSender(bounceAddress: string, messageId: string, verp: boolean): string {
  if (!verp) return bounceAddress;
  const id = normaliseMessageId(messageId);
  const at = bounceAddress.lastIndexOf('@');
  if (!id || at <= 0 || !/^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+$/.test(id)) return bounceAddress;
  return `${bounceAddress.slice(0, at)}+${id.replace('@', '=')}${bounceAddress.slice(at)}`;
}

/** The Message-ID a VERP address names (`local+id=domain@…`), or null when it is not one. */
export function messageIdFromVerp(address: string): string | null {
  const m = /^[^+@\s<>]+\+([A-Za-z0-9._-]+)=([A-Za-z0-9.-]+)@[A-Za-z0-9.-]+$/.exec(address.trim().replace(/^<|>$/g, ''));
  return m ? `${m[1]}@${m[2]}` : null;
}

/** The first VERP address among a bounce's delivery headers (To, Delivered-To, X-Original-To, Envelope-To). */
export function verpMessageId(addresses: readonly string[]): string | null {
  for (const raw of addresses) {
    for (const a of raw.match(/[^\s<>,;"]+@[A-Za-z0-9.-]+/g) ?? []) {
      const id = messageIdFromVerp(a);
      if (id) return id;
    }
  }
  return null;
}
