import type { MikroORM } from '@mikro-orm/postgresql';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createOrm } from '../src/db/orm';
import { poolStats } from '../src/db/pool-stats';
import { budgetOf } from '../src/domain/call-budget';
import { ServiceUnavailableError } from '../src/domain/errors';
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
  expect(poolStats(orm)).toMatchObject({ inUse: 0, waiting: 0 });
});
