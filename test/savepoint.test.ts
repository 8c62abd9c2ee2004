import { randomUUID } from 'node:crypto';
import type { MikroORM } from '@mikro-orm/postgresql';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createOrm } from '../src/db/orm';
import { type TransactionRunner } from '../src/db/transaction-runner';
import { budgetOf } from '../src/domain/call-budget';
import { Person } from '../src/schedule/person.entity';
import { testTransactionRunner } from './support/test-transactions';
import { createTestDatabase, type TestDatabase } from './support/test-database';

let db: TestDatabase;
let orm: MikroORM;
let runner: TransactionRunner;
beforeAll(async () => {
  db = await createTestDatabase();
  orm = await createOrm({ clientUrl: db.url, poolMax: 2 });
  runner = testTransactionRunner(orm);
});
afterAll(async () => {
  await orm?.close();
  await db?.drop();
});

async function newFaculty(name: string): Promise<string> {
  const id = randomUUID();
  await orm.em
    .fork()
    .execute(`insert into person (id, name, kind, faculty_role) values (?, ?, 'faculty', 'core')`, [
      id,
      name,
    ]);
  return id;
}

async function nameOf(id: string): Promise<{ name: string; version: number }> {
  const [row] = await orm.em
    .fork()
    .execute<{ name: string; version: number }[]>('select name, version from person where id = ?', [
      id,
    ]);
  return row!;
}

it('discards a failed savepoint’s change to an entity the outer work had loaded', async () => {
  const id = await newFaculty('Before');
  await runner.transactionally(budgetOf(5_000), async (em) => {
    await em.findOneOrFail(Person, id);
    await runner
      .savepoint(em, async (inner) => {
        (await inner.findOneOrFail(Person, id)).name = 'Inner, discarded';
        throw new Error('inner work fails before it flushes');
      })
      .catch(() => undefined);
  });
  expect(await nameOf(id)).toEqual({ name: 'Before', version: 1 });
});

it('lets the outer work change a row after a savepoint that wrote it was rolled back', async () => {
  const id = await newFaculty('Before');
  await runner.transactionally(budgetOf(5_000), async (em) => {
    const outer = await em.findOneOrFail(Person, id);
    await runner
      .savepoint(em, async (inner) => {
        (await inner.findOneOrFail(Person, id)).name = 'Inner, rolled back';
        await inner.flush();
        throw new Error('inner work fails after it flushed');
      })
      .catch(() => undefined);
    outer.name = 'Outer';
  });
  expect(await nameOf(id)).toEqual({ name: 'Outer', version: 2 });
  expect(runner.stats().exhausted).toBe(0);
});
