import { describe, expect, it } from 'vitest';
import { getTableName, is } from 'drizzle-orm';
import { PgTable, getTableConfig } from 'drizzle-orm/pg-core';
import * as schema from '../../db/schema/index.js';
import { DELETION_ORDER, GLOBAL_TABLES } from '../../db/schema/deletion-order.js';

// Pure checks of the deletion order against the drizzle schema's metadata (no database).
const schemaTables = (Object.values(schema) as unknown[]).filter((v): v is PgTable => is(v, PgTable));
const orderNames = DELETION_ORDER.map((s) => getTableName(s.table));
const indexOf = (name: string) => orderNames.indexOf(name);

function foreignKeys(table: PgTable) {
  return getTableConfig(table).foreignKeys.map((fk) => {
    const r = fk.reference();
    return {
      from: getTableName(table),
      columns: r.columns,
      to: getTableName(r.foreignTable),
      toColumns: r.foreignColumns.map((c) => c.name),
    };
  });
}

describe('deletion order (db/schema/deletion-order.ts) against the schema', () => {
  it('lists every company- or user-scoped table of the schema exactly once; only the global tables are exempt', () => {
    const missing = schemaTables.map(getTableName).filter((n) => !orderNames.includes(n) && !GLOBAL_TABLES.includes(n));
    expect(missing, `tables in the schema but missing from DELETION_ORDER (db/schema/deletion-order.ts): ${missing.join(', ')}`).toEqual(
      [],
    );
    expect(new Set(orderNames).size, 'a table appears twice in DELETION_ORDER').toBe(orderNames.length);
    const unknown = orderNames.filter((n) => !schemaTables.some((t) => getTableName(t) === n));
    expect(unknown).toEqual([]);
    for (const g of GLOBAL_TABLES) expect(orderNames, `${g} is global and must not be deleted per account`).not.toContain(g);
  });

  it('deletes children before parents: every foreign key points to a table later in the order', () => {
    const wrong: string[] = [];
    for (const t of schemaTables) {
      for (const fk of foreignKeys(t)) {
        if (fk.from === fk.to || indexOf(fk.from) < 0 || indexOf(fk.to) < 0) continue;
        if (indexOf(fk.from) > indexOf(fk.to)) wrong.push(`${fk.from} → ${fk.to}`);
      }
    }
    expect(wrong, `child tables ordered after their parent: ${wrong.join(', ')}`).toEqual([]);
  });

  it("finds a company's rows through the table's own company_id when it has one, else through a real foreign key to its parent", () => {
    for (const step of DELETION_ORDER) {
      const name = getTableName(step.table);
      const fks = foreignKeys(step.table);
      const toCompanies = fks.filter((fk) => fk.to === 'companies');
      const c = step.company;
      if (c.by === 'company') {
        expect(
          toCompanies.map((fk) => fk.columns[0].name),
          name,
        ).toContain(c.column.name);
      } else if (c.by === 'parent') {
        expect(toCompanies, `${name} has a company_id: find its rows by it`).toEqual([]);
        const parentName = getTableName(c.parent);
        expect(
          fks.some((fk) => fk.to === parentName && fk.columns[0] === c.column),
          `${name}.${c.column.name} must reference ${parentName}`,
        ).toBe(true);
        expect(indexOf(parentName), `${name}'s parent ${parentName} must be in the order`).toBeGreaterThan(indexOf(name));
      } else {
        expect(name).toBe('companies');
      }
    }
  });

  it('handles every column that refers to a user in a single-user deletion (delete or null it)', () => {
    const uncovered: string[] = [];
    for (const step of DELETION_ORDER) {
      const u = step.user;
      const covered = u.action === 'delete' || u.action === 'self' ? [u.column] : u.action === 'nullify' ? u.columns : [];
      for (const fk of foreignKeys(step.table)) {
        if (fk.to !== 'users') continue;
        if (!covered.includes(fk.columns[0])) uncovered.push(`${fk.from}.${fk.columns[0].name}`);
      }
    }
    expect(uncovered, `columns referring to users with no single-user action: ${uncovered.join(', ')}`).toEqual([]);
    // nulling needs a nullable column
    for (const step of DELETION_ORDER) {
      if (step.user.action === 'nullify')
        for (const c of step.user.columns) expect(c.notNull, `${c.name} is NOT NULL and cannot be nulled`).toBe(false);
    }
  });

  it('retained rows are cut loose from every row that is deleted (their foreign keys to deleted tables are cleared)', () => {
    for (const step of DELETION_ORDER) {
      if (!step.retain) continue;
      for (const fk of foreignKeys(step.table)) {
        if (indexOf(fk.to) < 0) continue;
        expect(step.retain.clear, `${fk.from}.${fk.columns[0].name} → ${fk.to}`).toContain(fk.columns[0]);
        expect(fk.columns[0].notNull).toBe(false);
      }
    }
  });

  it('every foreign key into a table deleted in bulk, and every company column, leads an index (no table scan per deleted row)', () => {
    const leading = (table: PgTable): Set<string> => {
      const cfg = getTableConfig(table);
      const out = new Set<string>();
      for (const ix of cfg.indexes) {
        const first = ix.config.columns[0] as { name?: string };
        if (first?.name) out.add(first.name);
      }
      for (const u of cfg.uniqueConstraints) out.add(u.columns[0].name);
      for (const c of cfg.columns) if (c.primary || c.isUnique) out.add(c.name);
      for (const pk of cfg.primaryKeys) out.add(pk.columns[0].name);
      return out;
    };
    const missing: string[] = [];
    for (const t of schemaTables) {
      const have = leading(t);
      for (const fk of foreignKeys(t)) {
        if (indexOf(fk.to) < 0) continue;
        if (!have.has(fk.columns[0].name)) missing.push(`${fk.from}.${fk.columns[0].name} → ${fk.to}`);
      }
    }
    for (const step of DELETION_ORDER) {
      const have = leading(step.table);
      const c = step.company;
      if (!have.has(c.column.name)) missing.push(`${getTableName(step.table)}.${c.column.name} (company rows)`);
      if (step.user.action === 'nullify')
        for (const col of step.user.columns) if (!have.has(col.name)) missing.push(`${getTableName(step.table)}.${col.name} (user rows)`);
    }
    expect(missing, `columns with no index starting with them: ${missing.join(', ')}`).toEqual([]);
  });
});
