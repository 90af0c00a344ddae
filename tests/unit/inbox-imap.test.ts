import { describe, expect, it } from 'vitest';
import { messageIdFromHeaderBlock, toSequenceSet } from '../../lib/imap/commands.js';
import { normaliseMessageId } from '../../lib/mail/message-id.js';

describe('toSequenceSet: UID lists as IMAP ranges', () => {
  it('joins consecutive UIDs into ranges and keeps the others', () => {
    expect(toSequenceSet([1, 2, 3, 4, 50])).toBe('1:4,50');
    expect(toSequenceSet([7])).toBe('7');
    expect(toSequenceSet([5, 3, 4, 10, 11, 13])).toBe('3:5,10:11,13');
    expect(toSequenceSet([2, 2, 3])).toBe('2:3');
  });
  it('covers exactly the same UIDs', () => {
    const uids = [1, 2, 3, 9, 10, 12, 14, 15, 16, 40];
    const expanded = toSequenceSet(uids)
      .split(',')
      .flatMap((p) => {
        const [a, b] = p.split(':').map(Number);
        return Array.from({ length: (b ?? a) - a + 1 }, (_, i) => a + i);
      });
    expect(expanded).toEqual(uids);
  });
});

describe('messageIdFromHeaderBlock: the Message-ID of a HEADER.FIELDS answer', () => {
  const block = (s: string) => Buffer.from(s, 'latin1');
  it('reads the value, whatever the header case', () => {
    expect(messageIdFromHeaderBlock(block('Message-ID: <a@b>\r\n\r\n'))).toBe('<a@b>');
    expect(messageIdFromHeaderBlock(block('message-id:<a@b>\r\n'))).toBe('<a@b>');
    expect(messageIdFromHeaderBlock(block('MESSAGE-ID : <a@b>\n\n'))).toBe('<a@b>');
  });
  it("unfolds a folded value; spaces and brackets are the normaliser's job, as with the envelope", () => {
    expect(normaliseMessageId(messageIdFromHeaderBlock(block('Message-ID:\r\n <long-id@example.fr>\r\n\r\n')))).toBe('long-id@example.fr');
    expect(normaliseMessageId(messageIdFromHeaderBlock(block('Message-ID:  < dup@corpus.test > \r\n')))).toBe('dup@corpus.test');
  });
  it('no header, an empty one, or no block: null', () => {
    expect(messageIdFromHeaderBlock(block('\r\n'))).toBeNull();
    expect(messageIdFromHeaderBlock(block('Message-ID:   \r\n\r\n'))).toBeNull();
    expect(messageIdFromHeaderBlock(undefined)).toBeNull();
  });
  it('does not take another header that merely ends with the name', () => {
    expect(messageIdFromHeaderBlock(block('X-Original-Message-ID: <x@y>\r\n\r\n'))).toBeNull();
  });
});
