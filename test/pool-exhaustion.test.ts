import type { MikroORM } from '@mikro-orm/postgresql';
import { afterAll, beforeAll, expect, it, onTestFinished } from 'vitest';
import { createOrm } from '../src/db/orm';
import { connectionPool, poolStats } from '../src/db/pool-stats';
import { budgetOf } from '../src/domain/call-budget';
import { ServiceUnavailableError } from '../src/domain/errors';
import { connect } from './support/sql-fixtures';
import { testTransactionRunner } from './support/test-transactions';
import { createTestDatabase, type TestDatabase } from './support/test-database';

let db: TestDatabase;
let orm: MikroORM;
beforeAll(async () => {
  db = await createTestDatabase();
  orm = await createOrm({ clientUrl: db.url, poolMax: 1, acquireTimeoutMs: 300 });
});
afterAll(async () => {
  await orm?.close();
  await db?.drop();
});

it('fails UNAVAILABLE, not INTERNAL, when no pooled connection frees up in time, and recovers', async () => {
  const runner = testTransactionRunner(orm);
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let started!: () => void;
  const holding = new Promise<void>((resolve) => (started = resolve));
  const holder = runner.transactionally(budgetOf(10_000), async () => {
    started();
    await held;
  });
  await holding;

  const starved = await runner
    .transactionally(budgetOf(10_000), (em) => em.execute('select 1'))
    .catch((e: unknown) => e);
  expect(starved).toBeInstanceOf(ServiceUnavailableError);
  expect((starved as ServiceUnavailableError).reason).toBe('DATABASE_UNAVAILABLE');

  release();
  await holder;
  await expect(
    runner.transactionally(budgetOf(5_000), (em) => em.execute('select 1 as ok')),
  ).resolves.toEqual([{ ok: 1 }]);
  expect(poolStats(await connectionPool(orm))).toMatchObject({ inUse: 0, waiting: 0 });
});

it('gets back a connection whose session the server ended mid-transaction', async () => {
  const runner = testTransactionRunner(orm);
  const admin = await connect(db.url);
  onTestFinished(() => admin.end());
  // The pool holds one connection: had the first dead one stayed checked out,
  // the second unit of work (and every one after) would wait for it in vain.
  for (let i = 0; i < 2; i++) {
    const failure = await runner
      .transactionally(budgetOf(10_000), async (em) => {
        const [own] = await em.execute<{ pid: number }[]>('select pg_backend_pid() as pid');
        await admin.query('select pg_terminate_backend($1)', [own!.pid]);
        await em.execute('select 1');
      })
      .catch((e: unknown) => e);
    // Failed on its own dead session, not for want of a connection.
    expect(failure).toBeInstanceOf(Error);
    expect((failure as Error).message).not.toContain('no database connection came free');
  }
  await expect(
    runner.transactionally(budgetOf(5_000), (em) => em.execute('select 1 as ok')),
  ).resolves.toEqual([{ ok: 1 }]);
  expect(poolStats(await connectionPool(orm))).toMatchObject({ inUse: 0, waiting: 0 });
});
