import { type ServiceError, status } from '@grpc/grpc-js';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, expect, it, onTestFinished } from 'vitest';
import { createOrm } from '../src/db/orm';
import { connectionPool, poolStats } from '../src/db/pool-stats';
import { budgetOf } from '../src/domain/call-budget';
import { addDays } from '../src/domain/calendar';
import { ServiceUnavailableError } from '../src/domain/errors';
import { type BlackholeProxy, startBlackholeProxy } from './support/blackhole-proxy';
import { failure } from './support/grpc-outcomes';
import { TEST_REDIS_URL } from './support/redis-url';
import { ScheduleFixture } from './support/schedule-fixture';
import { truncateAll, waitFor } from './support/sql-fixtures';
import { fmitSwapPair } from './support/swap-pair';
import { createTestDatabase, type TestDatabase } from './support/test-database';
import { testTransactionRunner } from './support/test-transactions';
import { errorDetails, startTestService, type TestService } from './support/test-service';

/**
 * A database connection whose replies stop arriving (a network partition: the
 * proxy swallows PostgreSQL's bytes, and the socket stays open) must not keep
 * a call alive. statement_timeout is enforced by the server, whose answer is
 * lost too; without a limit of its own the call waited for it forever, while
 * its Redis lease kept extending itself, so every later swap on those weeks
 * failed LOCK_TIMEOUT. Now the call ends by its budget plus a small grace
 * (UNAVAILABLE or DEADLINE_EXCEEDED, never INTERNAL), destroys the hung
 * connection, and releases its locks; once the network heals, the next swap on
 * the same weeks goes through.
 */

let db: TestDatabase;
let proxy: BlackholeProxy;
/** The test database, through the proxy. */
let proxiedUrl: string;
let ts: TestService;
let fx: ScheduleFixture;
let redis: Redis;
/** Run once, in the next mutation's transaction, right before its COMMIT. */
let atCommit: ((em: EntityManager) => Promise<void>) | undefined;

beforeAll(async () => {
  db = await createTestDatabase();
  const url = new URL(db.url);
  proxy = await startBlackholeProxy(Number(url.port || 5432));
  url.host = `127.0.0.1:${proxy.port}`;
  proxiedUrl = url.toString();
  ts = await startTestService(
    {
      DATABASE_URL: proxiedUrl,
      REDIS_URL: TEST_REDIS_URL,
      // Calls without a gRPC deadline get this budget; the server's answer is what is checked.
      DEFAULT_DEADLINE_MS: '3000',
      TX_TIMEOUT_CEILING_MS: '2000',
      IDEMPOTENCY_SWEEP_INTERVAL_MS: '3600000',
    },
    {
      database: db,
      writeHooks: {
        committed: [
          async (em) => {
            const hook = atCommit;
            atCommit = undefined;
            await hook?.(em);
          },
        ],
      },
    },
  );
  fx = await ScheduleFixture.connect(db.url);
  redis = new Redis(TEST_REDIS_URL);
});
afterAll(async () => {
  redis?.disconnect();
  await fx?.close();
  await ts?.close();
  await proxy?.close();
  await db?.drop();
});
beforeEach(async () => {
  atCommit = undefined;
  proxy.disarm();
  await truncateAll(fx.db);
});

const W = '2030-03-04';

async function lockKeys(): Promise<string[]> {
  return redis.keys(`{${ts.lockKeyPrefix}}:lock:*`);
}

async function swapIds(): Promise<string[]> {
  const { rows } = await fx.db.query<{ id: string }>('select id from swap_record order by id');
  return rows.map((r) => r.id);
}

/** The call's answer is one a client retries, never INTERNAL. */
function expectRetryable(error: ServiceError, reasons: readonly string[]): void {
  expect(['UNAVAILABLE', 'DEADLINE_EXCEEDED']).toContain(status[error.code]);
  if (status[error.code] === 'UNAVAILABLE') expect(reasons).toContain(errorDetails(error).reason);
}

/** After a hang: no lock left in Redis and no connection checked out of the pool. */
async function expectNothingHeld(): Promise<void> {
  await waitFor('the locks to be released', async () => (await lockKeys()).length === 0);
  const pool = await connectionPool(ts.service.orm);
  await waitFor('the pool to have no connection in use', () => poolStats(pool).inUse === 0);
}

it('ends a call whose connection stops answering mid-transaction, and frees its locks and connection', async () => {
  const pair = await fmitSwapPair(fx, { sourceWeek: W, targetWeek: addDays(W, 14), reason: 'x' });
  // Inside the swap's transaction, under its locks: from here PostgreSQL's replies are lost.
  atCommit = async (em) => {
    proxy.arm();
    await em.execute('select 1');
  };
  const call = failure(ts.api.executeSwap(pair.request()));
  await waitFor('the locks to be taken', async () => (await lockKeys()).length > 0);
  expectRetryable(await call, ['DATABASE_UNAVAILABLE']);
  await expectNothingHeld();

  proxy.disarm();
  expect(await swapIds()).toEqual([]);
  // The same weeks: refused LOCK_TIMEOUT while the stuck call held them.
  const { swap } = await ts.api.executeSwap(pair.request());
  expect(await swapIds()).toEqual([swap!.id]);
  await expectNothingHeld();
});

it('says COMMIT_OUTCOME_UNKNOWN when the reply to COMMIT never comes, and the retry reports the truth', async () => {
  const pair = await fmitSwapPair(fx, { sourceWeek: W, targetWeek: addDays(W, 14), reason: 'x' });
  const request = pair.request();
  // COMMIT reaches PostgreSQL and commits; its reply is lost, and the socket stays open.
  atCommit = () => Promise.resolve(void proxy.arm());
  const error = await failure(ts.api.executeSwap(request));
  expect([status[error.code], errorDetails(error).reason]).toEqual([
    'UNAVAILABLE',
    'COMMIT_OUTCOME_UNKNOWN',
  ]);
  await expectNothingHeld();

  proxy.disarm();
  const committed = await swapIds();
  const { swap } = await ts.api.executeSwap(request);
  expect([swap!.id]).toEqual(committed);
});

it('ends a call that finds every connection stuck before it starts, and recovers once healed', async () => {
  const pair = await fmitSwapPair(fx, { sourceWeek: W, targetWeek: addDays(W, 14), reason: 'x' });
  proxy.arm();
  expectRetryable(await failure(ts.api.executeSwap(pair.request())), ['DATABASE_UNAVAILABLE']);
  await expectNothingHeld();

  proxy.disarm();
  const { swap } = await ts.api.executeSwap(pair.request());
  expect(await swapIds()).toEqual([swap!.id]);
  await expectNothingHeld();
});

it('destroys the hung connection of its own attempt, with no reply watchdog to fall back on', async () => {
  // No replyTimeoutMs: only the runner, which must find the attempt's pg
  // client under MikroORM's transaction, can end this connection.
  const orm = await createOrm({ clientUrl: proxiedUrl, poolMax: 1 });
  onTestFinished(async () => {
    // Should the runner have left the connection hung, the pool could never close.
    proxy.disarm();
    proxy.cut();
    await orm.close();
  });
  const pool = await connectionPool(orm);
  const runner = testTransactionRunner(orm, { maxAttempts: 1, timeoutCeilingMs: 500 });
  const hung = runner.transactionally(budgetOf(60_000), async (em) => {
    proxy.arm();
    await em.execute('select 1');
  });
  await expect(hung).rejects.toThrow(ServiceUnavailableError);
  // The destroyed connection went back to be discarded: the one-slot pool is free.
  await waitFor('the pool to have no connection in use', () => poolStats(pool).inUse === 0);

  proxy.disarm();
  const [row] = await runner.transactionally(budgetOf(60_000), (em) =>
    em.execute<{ one: number }[]>('select 1 as one'),
  );
  expect(row).toEqual({ one: 1 });
});

it('destroys the hung connection of a read outside a transaction, with no reply watchdog to fall back on', async () => {
  // The session's own timeouts are the ceiling, so the read sends no BEGIN:
  // the runner must still know which connection it waits on.
  const orm = await createOrm({ clientUrl: proxiedUrl, poolMax: 1, sessionTimeoutMs: 500 });
  onTestFinished(async () => {
    proxy.disarm();
    proxy.cut();
    await orm.close();
  });
  const pool = await connectionPool(orm);
  const runner = testTransactionRunner(orm, {
    maxAttempts: 1,
    timeoutCeilingMs: 500,
    sessionTimeoutMs: 500,
  });
  const hung = runner.outsideTransaction(budgetOf(60_000), async (em) => {
    proxy.arm();
    return em.execute('select 1');
  });
  await expect(hung).rejects.toThrow(ServiceUnavailableError);
  await waitFor('the pool to have no connection in use', () => poolStats(pool).inUse === 0);

  proxy.disarm();
  const [row] = await runner.outsideTransaction(budgetOf(60_000), (em) =>
    em.execute<{ one: number }[]>('select 1 as one'),
  );
  expect(row).toEqual({ one: 1 });
});

it('answers UNAVAILABLE when a read outside a transaction loses its connection', async () => {
  const orm = await createOrm({ clientUrl: proxiedUrl, poolMax: 1, sessionTimeoutMs: 5000 });
  onTestFinished(() => orm.close());
  const runner = testTransactionRunner(orm, { timeoutCeilingMs: 5000, sessionTimeoutMs: 5000 });
  const lost = runner.outsideTransaction(budgetOf(60_000), async (em) => {
    proxy.cut();
    return em.execute('select 1');
  });
  await expect(lost).rejects.toThrow(ServiceUnavailableError);
  const [row] = await runner.outsideTransaction(budgetOf(60_000), (em) =>
    em.execute<{ one: number }[]>('select 1 as one'),
  );
  expect(row).toEqual({ one: 1 });
});
