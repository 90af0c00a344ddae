/**
 * Writes one segment of a mailbox (a few dozen messages in UID order) and the cursor that follows
 * it, in one transaction: either the messages and the cursor move together, or neither does.
 * Every lookup is one set-based query for the whole segment (never a query per message).
 */
import { sql } from 'drizzle-orm';
import { queryRows, type Db, type Tx } from '../../../db/client.js';
import { conversations, inboxMessages, messageAttachments } from '../../../db/schema/index.js';
import type { ParsedMessage } from '../../mime/parse.js';
import { emptySeg } from './plan.js';
import {
  clampToNow,
  clientCreationBlocker,
  clientSubjectKey,
  normaliseSubject,
  subjectKey,
  threadFor,
  SUBJECT_MATCH_DAYS,
} from './threading.js';

export type SegmentInput = {
  companyId: number;
  integrationId: number;
  blockedDomains: readonly string[];
  now: Date;
  /** Parsed messages in ascending UID order. */
  messages: ParsedMessage[];
  poison: { uid: number; error: string }[];
  /** The cursor after this segment (all UIDs up to lastUid handled). */
  cursor: { uidValidity: number; lastUid: number };
};

export type SegmentResult = {
  imported: number;
  duplicates: number;
  poison: number;
  clientsCreated: number;
  conversationsCreated: number;
  clientsNotCreated: Record<string, number>;
  bytes: number;
};

/** One statement carries at most this much attachment content (Postgres takes 1 GB; memory does not). */
const ATTACHMENT_INSERT_BYTES = 16 * 1024 * 1024;

const arr = (values: readonly unknown[]) => sql.param(values);

const lz4ByDb = new WeakMap<Db, Promise<boolean>>();
/** Whether the server can compress TOAST values with lz4 (built with it; PGlite is not). Asked once per database handle. */
function serverHasLz4(db: Db): Promise<boolean> {
  let known = lz4ByDb.get(db);
  if (!known) {
    known = queryRows<{ ok: boolean }>(
      db,
      sql`
      select exists(select 1 from pg_settings where name = 'default_toast_compression' and 'lz4' = any(enumvals)) as ok`,
    ).then(
      (r) => r[0]?.ok === true,
      () => false,
    );
    lz4ByDb.set(db, known);
  }
  return known;
}

async function lockCompany(tx: Tx, companyId: number, lz4: boolean) {
  // Serialises the imports of one company (several mailboxes may sync at once): the client and
  // thread lookups below then see each other's rows. Transaction-scoped, so safe behind a pooler.
  // Same round trip: message texts and attachments of this transaction are TOAST-compressed with
  // lz4 instead of pglz, several times cheaper for the server (the biggest cost of a first sync's
  // store); reading them back is transparent. SET LOCAL semantics: nothing leaks to the pool.
  await tx.execute(
    lz4
      ? sql`select pg_advisory_xact_lock(hashtext('inbox-sync:company'), ${companyId}), set_config('default_toast_compression', 'lz4', true)`
      : sql`select pg_advisory_xact_lock(hashtext('inbox-sync:company'), ${companyId})`,
  );
}

export async function storeSegment(db: Db, input: SegmentInput): Promise<SegmentResult> {
  const result = emptySeg();
  const lz4 = input.messages.length > 0 && (await serverHasLz4(db));
  await db.transaction(async (tx) => {
    const step: SegmentStep = { tx, input, result };
    if (input.messages.length) await lockCompany(tx, input.companyId, lz4);
    const fresh = await setAsideDuplicates(step);
    if (fresh.length) await storeNewMessages(step, fresh);
    await recordPoison(step);
    await moveCursor(step);
  });
  return result;
}

/** What every step of a segment works with: its transaction, the segment, and the counts it adds up. */
type SegmentStep = { tx: Tx; input: SegmentInput; result: SegmentResult };

/** The stored conversations threading looks messages up in (threading.ts's ThreadIndex), as read for the segment. */
type ThreadLookups = { byExternalId: Map<string, number>; byClientSubject: Map<string, number> };
/** A message of the segment with the conversation it goes to. */
type Assigned = { m: ParsedMessage; conversationId: number };
/** A message whose row was inserted (not lost to a concurrent writer), with its id. */
type Stored = Assigned & { id: number };

/** The segment's new messages, with their clients, conversations and attachments. */
async function storeNewMessages(step: SegmentStep, fresh: ParsedMessage[]) {
  const clientByEmail = await findOrCreateClients(step, fresh);
  const lookups = await threadingLookups(step, fresh, clientByEmail);
  const { assigned, newConversationIds } = await createConversations(step, fresh, clientByEmail, lookups);
  const stored = await insertMessages(step, assigned);
  await insertAttachments(step, stored);
  await touchConversations(step, stored);
  // a message lost to a concurrent writer leaves its new conversation empty: drop it
  if (newConversationIds.length && stored.length < assigned.length) await dropEmptyConversations(step, newConversationIds);
}

/**
 * Dedupe: one query for the segment, plus duplicates inside the segment itself. A message without
 * a Message-ID may have been stored by an older version under its legacy key: the first such
 * message takes that row over (its key is rewritten to the new one), so it is not imported twice,
 * and a different message that shared the legacy key is imported now. Returns the new messages.
 */
async function setAsideDuplicates({ tx, input, result }: SegmentStep): Promise<ParsedMessage[]> {
  const { companyId } = input;
  const keys = [...new Set(input.messages.flatMap((m) => (m.legacyKey ? [m.externalId, m.legacyKey] : [m.externalId])))];
  const storedKeys = keys.length
    ? new Set(
        (
          await queryRows<{ external_id: string }>(
            tx,
            sql`
        select external_id from inbox_messages
        where company_id = ${companyId} and external_id = any(${arr(keys)}::text[])`,
          )
        ).map((r) => r.external_id),
      )
    : new Set<string>();
  const { fresh, takeovers, duplicates } = splitDuplicates(input.messages, storedKeys);
  result.duplicates += duplicates;
  if (takeovers.length) {
    await tx.execute(sql`
      update inbox_messages im set external_id = u.new_key, kind = u.kind,
        external_metadata = coalesce(im.external_metadata, '{}'::jsonb) || jsonb_build_object('legacy_key', u.old_key)
      from unnest(${arr(takeovers.map((u) => u.from))}::text[], ${arr(takeovers.map((u) => u.to))}::text[], ${arr(takeovers.map((u) => u.kind))}::text[]) as u(old_key, new_key, kind)
      where im.company_id = ${companyId} and im.external_id = u.old_key`);
  }
  return fresh;
}

/** The segment's new messages, in UID order, and the legacy rows some of them take over (setAsideDuplicates). */
function splitDuplicates(messages: readonly ParsedMessage[], storedKeys: ReadonlySet<string>) {
  const seen = new Set(storedKeys);
  const fresh: ParsedMessage[] = [];
  const takeovers: { from: string; to: string; kind: string }[] = [];
  let duplicates = 0;
  for (const m of messages) {
    if (seen.has(m.externalId)) {
      duplicates++;
      continue;
    }
    seen.add(m.externalId);
    if (m.legacyKey && seen.has(m.legacyKey)) {
      seen.delete(m.legacyKey); // taken over: the next message with this legacy key is a different one
      takeovers.push({ from: m.legacyKey, to: m.externalId, kind: m.kind });
      duplicates++;
      continue;
    }
    fresh.push(m);
  }
  return { fresh, takeovers, duplicates };
}

/** Clients: found case-insensitively, created only for real people (docs/inbox-sync.md, "Clients"). */
async function findOrCreateClients({ tx, input, result }: SegmentStep, fresh: ParsedMessage[]): Promise<Map<string, number>> {
  const { companyId } = input;
  const emails = [...new Set(fresh.map((m) => m.fromEmail).filter((e): e is string => !!e))];
  const clientByEmail = new Map<string, number>();
  if (emails.length) {
    for (const r of await queryRows<{ id: number; email: string }>(
      tx,
      sql`
      select distinct on (lower(email)) id, lower(email) as email from clients
      where company_id = ${companyId} and lower(email) = any(${arr(emails)}::text[])
      order by lower(email), id`,
    ))
      clientByEmail.set(r.email, r.id);
  }
  const { toCreate, notCreated } = clientsToCreate(fresh, clientByEmail, input.blockedDomains);
  for (const [blocker, n] of Object.entries(notCreated)) result.clientsNotCreated[blocker] = (result.clientsNotCreated[blocker] ?? 0) + n;
  if (toCreate.size) {
    const created = await queryRows<{ id: number; email: string }>(
      tx,
      sql`
      insert into clients (company_id, name, email, type)
      select ${companyId}, n, e, 'Client' from unnest(${arr([...toCreate.values()])}::text[], ${arr([...toCreate.keys()])}::text[]) as t(n, e)
      returning id, lower(email) as email`,
    );
    for (const r of created) clientByEmail.set(r.email, r.id);
    result.clientsCreated += created.length;
  }
  return clientByEmail;
}

/** The senders without a client who become one (email to name), and why the others do not (reason to count). */
function clientsToCreate(fresh: readonly ParsedMessage[], clientByEmail: ReadonlyMap<string, number>, blockedDomains: readonly string[]) {
  const toCreate = new Map<string, string>();
  const notCreated: Record<string, number> = {};
  for (const m of fresh) {
    if (!m.fromEmail || clientByEmail.has(m.fromEmail) || toCreate.has(m.fromEmail)) continue;
    const blocker = clientCreationBlocker(m, blockedDomains);
    if (blocker) {
      notCreated[blocker] = (notCreated[blocker] ?? 0) + 1;
      continue;
    }
    toCreate.set(m.fromEmail, m.fromName && m.fromName !== m.fromEmail ? m.fromName : m.fromEmail.split('@')[0]);
  }
  return { toCreate, notCreated };
}

/** Threading index: the conversations of referenced Message-IDs, and the senders' recent conversations by subject. */
async function threadingLookups(
  { tx, input }: SegmentStep,
  fresh: ParsedMessage[],
  clientByEmail: Map<string, number>,
): Promise<ThreadLookups> {
  const { companyId, now } = input;
  const refs = [...new Set(fresh.flatMap((m) => [...(m.inReplyTo ? [m.inReplyTo] : []), ...m.references]))];
  const byExternalId = new Map<string, number>();
  if (refs.length) {
    for (const r of await queryRows<{ external_id: string; conversation_id: number }>(
      tx,
      sql`
      select external_id, conversation_id from inbox_messages
      where company_id = ${companyId} and external_id = any(${arr(refs)}::text[])`,
    ))
      byExternalId.set(r.external_id, r.conversation_id);
  }
  const clientIds = [
    ...new Set(fresh.map((m) => (m.fromEmail ? clientByEmail.get(m.fromEmail) : undefined)).filter((x): x is number => x !== undefined)),
  ];
  const subjects = [...new Set(fresh.map((m) => subjectKey(m.subject)).filter(Boolean))];
  const byClientSubject = new Map<string, number>();
  if (clientIds.length && subjects.length) {
    const since = new Date(now.getTime() - SUBJECT_MATCH_DAYS * 86_400_000);
    for (const r of await queryRows<{ id: number; client_id: number; s: string }>(
      tx,
      sql`
      select distinct on (client_id, lower(subject)) id, client_id, lower(subject) as s from conversations
      where company_id = ${companyId} and client_id = any(${arr(clientIds)}::int[])
        and lower(subject) = any(${arr(subjects)}::text[])
        and coalesce(last_message_at, created_at) >= ${since}
      order by client_id, lower(subject), coalesce(last_message_at, created_at) desc, id desc`,
    ))
      byClientSubject.set(clientSubjectKey(r.client_id, r.s), r.id);
  }
  return { byExternalId, byClientSubject };
}

/** Ids taken from a table's sequence ahead of the insert, so rows can point at each other in one statement. */
async function allocateIds(tx: Tx, table: 'conversations' | 'inbox_messages', n: number): Promise<number[]> {
  return n === 0
    ? []
    : (
        await queryRows<{ id: number }>(
          tx,
          sql`
    select nextval(pg_get_serial_sequence(${table}, 'id'))::int as id from generate_series(1, ${n})`,
        )
      ).map((r) => r.id);
}

/** Creates the conversations the segment's messages start (assignConversations) and says where each message goes. */
async function createConversations(
  { tx, input, result }: SegmentStep,
  fresh: ParsedMessage[],
  clientByEmail: Map<string, number>,
  lookups: ThreadLookups,
) {
  const convIds = await allocateIds(tx, 'conversations', fresh.length);
  const { assigned, newConversations } = assignConversations(fresh, clientByEmail, lookups, convIds);
  if (newConversations.length) {
    await tx.insert(conversations).values(
      newConversations.map((c) => ({
        id: c.id,
        companyId: input.companyId,
        clientId: c.clientId,
        subject: c.subject,
        status: 'À répondre',
        source: 'email',
        unreadCount: 0,
        lastMessageAt: null,
      })),
    );
    result.conversationsCreated += newConversations.length;
  }
  return { assigned, newConversationIds: newConversations.map((c) => c.id) };
}

/**
 * Each message's conversation, decided in UID order; a new conversation takes the next of the
 * pre-allocated ids, so later messages of the segment can thread into it.
 */
function assignConversations(
  fresh: readonly ParsedMessage[],
  clientByEmail: ReadonlyMap<string, number>,
  lookups: ThreadLookups,
  convIds: readonly number[],
) {
  const byExternalId = new Map(lookups.byExternalId);
  const byClientSubject = new Map(lookups.byClientSubject);
  const newConversations: { id: number; clientId: number | null; subject: string }[] = [];
  const assigned: Assigned[] = [];
  for (const m of fresh) {
    const clientId = m.fromEmail ? (clientByEmail.get(m.fromEmail) ?? null) : null;
    const key = subjectKey(m.subject);
    // a bounce is not part of the client's conversation (docs/bounces.md): it never threads into it
    const bounce = m.kind === 'bounce';
    const d = threadFor(
      { inReplyTo: bounce ? null : m.inReplyTo, references: bounce ? [] : m.references, subjectKey: key, clientId },
      { byExternalId, byClientSubject },
    );
    let conversationId = d.conversationId;
    if (conversationId === null) {
      conversationId = convIds[newConversations.length];
      newConversations.push({ id: conversationId, clientId, subject: normaliseSubject(m.subject) || m.subject || '(sans objet)' });
    }
    byExternalId.set(m.externalId, conversationId);
    if (clientId !== null && key) byClientSubject.set(clientSubjectKey(clientId, key), conversationId);
    assigned.push({ m, conversationId });
  }
  return { assigned, newConversations };
}

/** Messages: the unique (company, external_id) key is the last word on duplicates. Returns the rows inserted. */
async function insertMessages({ tx, input, result }: SegmentStep, assigned: Assigned[]): Promise<Stored[]> {
  const { companyId } = input;
  const msgIds = await allocateIds(tx, 'inbox_messages', assigned.length);
  const inserted = await tx
    .insert(inboxMessages)
    .values(
      assigned.map(({ m, conversationId }, i) => ({
        id: msgIds[i],
        conversationId,
        companyId,
        fromName: m.fromName,
        fromEmail: m.fromEmail,
        content: m.text,
        source: 'email',
        isFromClient: true,
        read: false,
        externalId: m.externalId,
        kind: m.kind,
        externalMetadata: {
          to: m.to,
          subject: m.subject,
          imap_uid: m.uid,
          uid_validity: input.cursor.uidValidity,
          integration_id: input.integrationId,
          ...(m.messageId ? {} : { dedupe: 'content-hash' }),
          ...(m.oversize ? { oversize_bytes: m.bytes } : {}),
          ...m.reports, // a bounce's or an auto-reply's facts (lib/mime/report.ts)
          ...(m.notes.length ? { parse_notes: m.notes } : {}), // parts dropped as unreadable (docs/inbox-sync.md)
        },
        inReplyTo: m.inReplyTo,
        sentAt: m.sentAt,
      })),
    )
    .onConflictDoNothing({
      target: [inboxMessages.companyId, inboxMessages.externalId],
      where: sql`${inboxMessages.externalId} is not null`,
    })
    .returning({ id: inboxMessages.id });
  const insertedIds = new Set(inserted.map((r) => r.id));
  result.imported += insertedIds.size;
  result.duplicates += assigned.length - insertedIds.size;
  const stored: Stored[] = [];
  for (let i = 0; i < assigned.length; i++) if (insertedIds.has(msgIds[i])) stored.push({ ...assigned[i], id: msgIds[i] });
  for (const { m } of stored) result.bytes += m.bytes;
  return stored;
}

/** Attachments of the inserted messages. */
async function insertAttachments({ tx }: SegmentStep, stored: readonly Stored[]) {
  for (const batch of attachmentBatches(stored)) await tx.insert(messageAttachments).values(batch);
}

/** The attachment rows in statements of at most ATTACHMENT_INSERT_BYTES of content (a larger attachment alone). */
function attachmentBatches(stored: readonly Stored[]) {
  const batches: (typeof messageAttachments.$inferInsert)[][] = [];
  let batch: (typeof messageAttachments.$inferInsert)[] = [];
  let batchBytes = 0;
  for (const { m, id } of stored) {
    for (const a of m.attachments) {
      const bytes = a.content?.length ?? 0;
      if (batch.length && batchBytes + bytes > ATTACHMENT_INSERT_BYTES) {
        batches.push(batch);
        batch = [];
        batchBytes = 0;
      }
      batch.push({
        messageId: id,
        name: a.name,
        fileType: a.fileType,
        mimeType: a.mimeType,
        fileSize: a.size,
        content: a.content,
        skippedReason: a.skippedReason,
      });
      batchBytes += bytes;
    }
  }
  if (batch.length) batches.push(batch);
  return batches;
}

/** Conversations of the inserted messages: latest Date (clamped to now, never backwards), unread count, status. */
async function touchConversations({ tx, input }: SegmentStep, stored: readonly Stored[]) {
  const perConv = conversationTouches(stored, input.now);
  if (perConv.size) {
    const ids = [...perConv.keys()];
    await tx.execute(sql`
      update conversations c set
        last_message_at = greatest(c.last_message_at, v.at),
        unread_count = c.unread_count + v.n,
        status = case when c.status in ('Archivé', 'Spam') then c.status else 'À répondre' end,
        updated_at = now()
      from unnest(${arr(ids)}::int[], ${arr(ids.map((id) => perConv.get(id)!.at.toISOString()))}::timestamptz[], ${arr(ids.map((id) => perConv.get(id)!.n))}::int[]) as v(id, at, n)
      where c.id = v.id`);
  }
}

/** Per conversation: its inserted messages' latest Date, clamped to now, and how many there are. */
function conversationTouches(stored: readonly Stored[], now: Date) {
  const perConv = new Map<number, { at: Date; n: number }>();
  for (const { m, conversationId } of stored) {
    const at = clampToNow(m.sentAt, now);
    const cur = perConv.get(conversationId);
    if (cur) {
      cur.n++;
      if (at > cur.at) cur.at = at;
    } else perConv.set(conversationId, { at, n: 1 });
  }
  return perConv;
}

/** Drops the new conversations that were left without a message. */
async function dropEmptyConversations({ tx, result }: SegmentStep, newConversationIds: number[]) {
  const gone = await queryRows(
    tx,
    sql`
    delete from conversations c where c.id = any(${arr(newConversationIds)}::int[])
      and not exists (select 1 from inbox_messages m where m.conversation_id = c.id) returning c.id`,
  );
  result.conversationsCreated -= gone.length;
}

/** Poison messages: recorded once, skipped for good (the cursor moves past them). */
async function recordPoison({ tx, input, result }: SegmentStep) {
  if (!input.poison.length) return;
  await tx.execute(sql`
    insert into inbox_poison_messages (company_id, integration_id, uid_validity, uid, error)
    select ${input.companyId}, ${input.integrationId}, ${input.cursor.uidValidity}, u, e
    from unnest(${arr(input.poison.map((p) => p.uid))}::bigint[], ${arr(input.poison.map((p) => p.error.slice(0, 500)))}::text[]) as t(u, e)
    on conflict (integration_id, uid_validity, uid) do nothing`);
  result.poison += input.poison.length;
}

/** The cursor moves with the rows it covers. */
async function moveCursor({ tx, input }: SegmentStep) {
  await tx.execute(sql`
    update inbox_integrations set uid_validity = ${input.cursor.uidValidity}, last_uid = greatest(
      case when uid_validity = ${input.cursor.uidValidity} then last_uid end, ${input.cursor.lastUid}), updated_at = now()
    where id = ${input.integrationId}`);
}
