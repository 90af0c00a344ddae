import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { describePg } from '../helpers/services.js';
import { databaseOnDriver, type DriverDatabase } from '../helpers/drivers.js';
import { openPgliteSnapshot } from '../helpers/pglite.js';
import { preparedRows, queryRows, type DbHandle } from '../../db/client.js';

// the hot statements of a run (claims, records, hand-overs) go through preparedRows: a named
// statement, parsed and planned once per connection (docs/sending.md, "Cost of a statement")
const byValue = (v: number) => sql`select ${v}::int * 2 as doubled, 'a'::text as tag`;
const other = (v: number) => sql`select ${v}::int * 3 as tripled`;

for (const driver of ['pg', 'neon'] as const) {
  describePg(`preparedRows over the ${driver} driver`, () => {
    let d: DriverDatabase;
    beforeAll(async () => {
      d = await databaseOnDriver(driver, `prep${driver}`, 1);
    });
    afterAll(async () => {
      await d?.close();
    });

    it('the same text runs under one name on a connection, whatever the values; another text has another name', async () => {
      const db = d.handle.db;
      for (let v = 1; v <= 4; v++) expect(await preparedRows(db, byValue(v))).toEqual([{ doubled: 2 * v, tag: 'a' }]);
      expect(await preparedRows(db, other(5))).toEqual([{ tripled: 15 }]);
      // one connection (pool of 1): its prepared statements are those two, each once
      const names = await queryRows<{ name: string; statement: string }>(
        db,
        sql`select name, statement from pg_prepared_statements order by statement`,
      );
      const ours = names.filter((n) => n.name.startsWith('lk_'));
      expect(ours).toHaveLength(2);
      expect(new Set(ours.map((n) => n.name)).size).toBe(2);
      expect(ours.map((n) => n.statement.replace(/\s+/g, ' ').trim())).toEqual([
        "select $1::int * 2 as doubled, 'a'::text as tag",
        'select $1::int * 3 as tripled',
      ]);
    });

    it("inside a transaction, and its errors are the database's (a rollback undoes it)", async () => {
      const db = d.handle.db;
      await db.execute(sql`create table if not exists prep_t (id int primary key)`);
      await expect(
        db.transaction(async (tx) => {
          await preparedRows(tx, sql`insert into prep_t (id) values (${1}) returning id`);
          await preparedRows(tx, sql`insert into prep_t (id) values (${1}) returning id`); // duplicate key
        }),
      ).rejects.toSatisfy((e: unknown) =>
        /duplicate key|prep_t_pkey|23505/.test(`${(e as Error).message} ${String((e as { cause?: { code?: string } }).cause?.code)}`),
      );
      expect(await queryRows(db, sql`select id from prep_t`)).toEqual([]);
    });
  });
}

describe('preparedRows on the embedded database (PGlite)', () => {
  let h: DbHandle;
  beforeAll(async () => {
    h = await openPgliteSnapshot();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('runs the statement (unnamed there) with its parameters', async () => {
    expect(await preparedRows(h.db, byValue(21))).toEqual([{ doubled: 42, tag: 'a' }]);
    expect(await preparedRows(h.db, byValue(4))).toEqual([{ doubled: 8, tag: 'a' }]);
  });
});
