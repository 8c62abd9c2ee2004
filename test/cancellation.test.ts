import { randomUUID } from 'node:crypto';
import { credentials, Metadata, status } from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { addDays, mondayOf, toIsoDate } from '../src/domain/calendar';
import { SwapServiceClient, SwapType } from '../src/generated/swap/v1/swap';
import { TEST_REDIS_URL } from './support/redis-url';
import { ScheduleFixture } from './support/schedule-fixture';
import { type ServiceProcess, startServiceProcess } from './support/service-process';
import { connect, waitFor } from './support/sql-fixtures';
import { createTestDatabase, type TestDatabase } from './support/test-database';

/**
 * A caller that gives up is not a concurrency conflict: the service, run as
 * production runs it, reports the call as CANCELLED and commits nothing.
 */

let db: TestDatabase;
let fx: ScheduleFixture;
let service: ServiceProcess;
beforeAll(async () => {
  db = await createTestDatabase();
  fx = await ScheduleFixture.connect(db.url);
  // Without Redis the locks are advisory locks, which the test can hold itself.
  service = await startServiceProcess({ DATABASE_URL: db.url });
});
afterAll(async () => {
  await service?.stop();
  await fx?.close();
  await db?.drop();
});

it('logs a call its caller cancelled as CANCELLED, not ABORTED, and commits nothing', async () => {
  const week = addDays(mondayOf(toIsoDate(new Date())), 8 * 7);
  const [a, b] = [await fx.faculty('core'), await fx.faculty('core')];
  await fx.assignWeek(a, week);
  await fx.assignWeek(b, addDays(week, 14));

  // Hold the advisory lock the swap needs, so it waits in the database.
  const holder = await connect(db.url);
  await holder.query(`select pg_advisory_lock(hashtextextended($1, 0))`, [`fw:${a}:${week}`]);
  const client = new SwapServiceClient(`127.0.0.1:${service.port}`, credentials.createInsecure());
  try {
    const answered = new Promise<number>((resolve) => {
      const call = client.executeSwap(
        {
          sourceFacultyId: a,
          sourceWeek: week,
          targetFacultyId: b,
          targetWeek: addDays(week, 14),
          swapType: SwapType.SWAP_TYPE_ONE_TO_ONE,
          reason: 'cancelled before it could commit',
          requestId: randomUUID(),
        },
        new Metadata(),
        { deadline: new Date(Date.now() + 30_000) },
        (error) => resolve(error?.code ?? status.OK),
      );
      void waitFor('the swap to wait for its lock', async () => {
        const { rows } = await holder.query<{ n: number }>(
          `select count(*)::int as n from pg_locks where locktype = 'advisory' and not granted`,
        );
        return rows[0]!.n > 0;
      }).then(() => call.cancel());
    });
    expect(await answered).toBe(status.CANCELLED);
  } finally {
    await holder.query(`select pg_advisory_unlock_all()`);
    await holder.end();
    client.close();
  }

  const callLine = () => service.logs.find((l) => l.msg === 'call' && l.method === 'ExecuteSwap');
  await waitFor('the call to be logged', () => callLine() !== undefined);
  expect(callLine()?.status).toBe('CANCELLED');
  const swaps = await fx.db.query<{ n: number }>(`select count(*)::int as n from swap_record`);
  expect(swaps.rows[0]!.n).toBe(0);
});

// Issue 11, defect 7: with Redis, the cancel cut the lock wait short and the
// call was logged as ABORTED LOCK_TIMEOUT, as if another writer had won.
it('logs a call cancelled while its Redis lock is held elsewhere as CANCELLED, not ABORTED', async () => {
  const prefix = `c${randomUUID().slice(0, 8)}`;
  const withRedis = await startServiceProcess({
    DATABASE_URL: db.url,
    REDIS_URL: TEST_REDIS_URL,
    LOCK_KEY_PREFIX: prefix,
  });
  const redis = new Redis(TEST_REDIS_URL);
  const client = new SwapServiceClient(`127.0.0.1:${withRedis.port}`, credentials.createInsecure());
  try {
    const week = addDays(mondayOf(toIsoDate(new Date())), 20 * 7);
    const [a, b] = [await fx.faculty('core'), await fx.faculty('core')];
    await fx.assignWeek(a, week);
    await fx.assignWeek(b, addDays(week, 14));
    // Another owner holds the lock of a's week in Redis for the whole test.
    await redis.set(`{${prefix}}:lock:fw:${a}:${week}`, 'someone else', 'PX', 60_000);
    // Redis reports every command it runs; the call's first try for the held
    // lock tells the test that it is waiting for it.
    const lockKey = `{${prefix}}:lock:fw:${a}:${week}`;
    const monitor = await redis.monitor();
    const tried = new Promise<void>((resolve) =>
      monitor.on('monitor', (_time: string, args: string[]) => {
        if (args.includes(lockKey) && args[0]?.toLowerCase() !== 'set') resolve();
      }),
    );
    const answered = new Promise<number>((resolve) => {
      const call = client.executeSwap(
        {
          sourceFacultyId: a,
          sourceWeek: week,
          targetFacultyId: b,
          targetWeek: addDays(week, 14),
          swapType: SwapType.SWAP_TYPE_ONE_TO_ONE,
          reason: 'cancelled while waiting for its lock',
          requestId: randomUUID(),
        },
        new Metadata(),
        { deadline: new Date(Date.now() + 30_000) },
        (error) => resolve(error?.code ?? status.OK),
      );
      void tried.then(() => {
        monitor.disconnect();
        call.cancel();
      });
    });
    expect(await answered).toBe(status.CANCELLED);

    const callLine = () =>
      withRedis.logs.find((l) => l.msg === 'call' && l.method === 'ExecuteSwap');
    await waitFor('the call to be logged', () => callLine() !== undefined);
    expect(callLine()?.status).toBe('CANCELLED');
  } finally {
    client.close();
    redis.disconnect();
    await withRedis.stop();
  }
});
