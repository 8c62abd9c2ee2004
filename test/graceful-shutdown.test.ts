import { randomUUID } from 'node:crypto';
import { type Client, credentials, type ServiceError, status } from '@grpc/grpc-js';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addDays, toIsoDate, mondayOf } from '../src/domain/calendar';
import { SwapServiceClient, SwapStatus, SwapType } from '../src/generated/swap/v1/swap';
import {
  checkHealth,
  freshHealthClient,
  type HealthClient,
  type HealthStatus,
} from './support/health-client';
import { ScheduleFixture } from './support/schedule-fixture';
import { type ServiceProcess, startServiceProcess } from './support/service-process';
import { backendPid, connect, sessionsOn, waitFor } from './support/sql-fixtures';
import { createTestDatabase, type TestDatabase } from './support/test-database';
import { swapApi } from './support/test-service';

/**
 * Runs the service the way it runs in production, as a process of its own
 * with the telemetry bootstrap preloaded (support/service-process.ts), and stops it with SIGTERM while a swap is stuck
 * behind a row lock: the swap must still commit and be answered, new calls
 * must be turned away, and the process must exit 0 having released everything.
 */

const SHUTDOWN_GRACE_MS = 20_000;

/** Collects the statuses a Health.Watch stream reports, and lets a test wait for one. */
function watchHealth(client: HealthClient, service: string) {
  const stream = client.watch({ service });
  const seen: HealthStatus[] = [];
  const waiters: { status: HealthStatus; resolve: () => void }[] = [];
  stream.on('data', (message: { status: HealthStatus }) => {
    seen.push(message.status);
    for (const w of waiters.filter((x) => x.status === message.status)) w.resolve();
  });
  // The stream ends CANCELLED when the test cancels it; nothing else is expected.
  stream.on('error', () => undefined);
  return {
    seen,
    reported: (wanted: HealthStatus) =>
      seen.includes(wanted)
        ? Promise.resolve()
        : new Promise<void>((resolve) => waiters.push({ status: wanted, resolve })),
    cancel: () => stream.cancel(),
  };
}

let db: TestDatabase;
let service: ServiceProcess | undefined;
let fx: ScheduleFixture | undefined;
let observer: pg.Client | undefined;
let blocker: pg.Client | undefined;
const clients: Client[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  for (const client of clients) client.close();
  // Only if an assertion failed midway: never leave the child behind.
  service?.kill('SIGKILL');
  await service?.exited;
  await blocker?.end().catch(() => undefined);
  await observer?.end().catch(() => undefined);
  await fx?.close().catch(() => undefined);
  await db?.drop();
});

describe('SIGTERM while a swap is in flight', () => {
  it(
    'finishes and commits the in-flight ExecuteSwap, refuses new calls and exits 0',
    { timeout: 120_000 },
    async () => {
      service = await startServiceProcess({
        DATABASE_URL: db.url,
        SHUTDOWN_GRACE_MS: String(SHUTDOWN_GRACE_MS),
      });
      const address = `127.0.0.1:${service.port}`;
      const health = freshHealthClient(address);
      clients.push(health);
      for (const name of ['swap.v1.SwapService', 'swap.v1.ConflictService', 'swap.v1.AuditService'])
        expect(await checkHealth(health, name), name).toBe('SERVING');

      // The child runs on the real clock, so the swapped weeks lie ahead of the real date.
      const firstWeek = addDays(mondayOf(toIsoDate(new Date())), 8 * 7);
      const secondWeek = addDays(firstWeek, 14);
      fx = await ScheduleFixture.connect(db.url);
      const a = await fx.faculty('core');
      const b = await fx.faculty('core');
      const weekOfA = await fx.assignWeek(a, firstWeek);
      const weekOfB = await fx.assignWeek(b, secondWeek);
      await fx.call(a, addDays(firstWeek, 4));

      // Hold one of the rows the swap must lock, so it stops mid-transaction.
      blocker = await connect(db.url);
      observer = await connect(db.url);
      const blockerPid = await backendPid(blocker);
      await blocker.query('begin');
      await blocker.query('select id from assignment where id = $1 for update', [weekOfA[0]]);

      const swapClient = new SwapServiceClient(address, credentials.createInsecure());
      clients.push(swapClient);
      const inFlight = swapApi(swapClient)
        .executeSwap(
          {
            sourceFacultyId: a,
            sourceWeek: firstWeek,
            targetFacultyId: b,
            targetWeek: secondWeek,
            swapType: SwapType.SWAP_TYPE_ONE_TO_ONE,
            reason: 'in flight at shutdown',
            requestId: randomUUID(),
          },
          { deadline: new Date(Date.now() + 60_000) },
        )
        .then(
          (response) => ({ ok: true as const, response }),
          (error: ServiceError) => ({ ok: false as const, error }),
        );
      await waitFor('the swap to wait on the blocker’s row lock', async () => {
        const { rows } = await observer!.query(
          `select pid from pg_stat_activity
          where datname = $1 and wait_event_type = 'Lock' and $2 = any(pg_blocking_pids(pid))`,
          [db.name, blockerPid],
        );
        return rows.length === 1;
      });

      const watch = watchHealth(health, 'swap.v1.SwapService');
      await watch.reported('SERVING');
      service.kill('SIGTERM');
      await service.logged('shutting down');

      // Out of rotation at once: watchers hear NOT_SERVING, and a new connection is refused.
      await watch.reported('NOT_SERVING');
      watch.cancel();
      const latecomer = freshHealthClient(address);
      clients.push(latecomer);
      const refused = (await checkHealth(latecomer, '').catch((e: unknown) => e)) as ServiceError;
      expect(refused.code).toBe(status.UNAVAILABLE);
      const lateSwapClient = new SwapServiceClient(address, credentials.createInsecure(), {
        'grpc.use_local_subchannel_pool': 1,
      });
      clients.push(lateSwapClient);
      const lateSwap = (await swapApi(lateSwapClient)
        .getSwap({ swapId: randomUUID() })
        .catch((e: unknown) => e)) as ServiceError;
      expect(lateSwap.code).toBe(status.UNAVAILABLE);
      // The in-flight call is still being drained, so the process has not exited.
      expect(service.running()).toBe(true);

      await blocker.query('rollback');
      const outcome = await inFlight;
      expect(outcome.ok ? 'OK' : `${status[outcome.error.code]}: ${outcome.error.details}`).toBe(
        'OK',
      );
      const swap = outcome.ok ? outcome.response.swap : undefined;
      expect(swap?.status).toBe(SwapStatus.SWAP_STATUS_EXECUTED);
      expect(swap?.movedAssignments).toHaveLength(28);

      const exit = await service.exited;
      expect(exit, service.stderr()).toEqual({ code: 0, signal: null });
      const messages = service.logs.map((l) => l.msg);
      expect(messages).toContain('stopped');
      expect(messages).not.toContain('grace period over; cancelling the calls still running');
      expect(service.logs.filter((l) => l.level === 'error')).toEqual([]);
      const executeLine = service.logs.find((l) => l.msg === 'call' && l.method === 'ExecuteSwap');
      expect(executeLine?.status).toBe('OK');

      // Committed: the record exists and each week changed hands.
      const record = await observer.query(`select id, status from swap_record`);
      expect(record.rows).toEqual([{ id: swap!.id, status: 'EXECUTED' }]);
      const holders = await observer.query<{ person_id: string; n: number }>(
        `select person_id, count(*)::int as n from assignment where id = any($1::uuid[]) group by 1`,
        [weekOfA],
      );
      expect(holders.rows).toEqual([{ person_id: b, n: 14 }]);
      const backToA = await observer.query<{ n: number }>(
        `select count(*)::int as n from assignment where id = any($1::uuid[]) and person_id = $2`,
        [weekOfB, a],
      );
      expect(backToA.rows[0]!.n).toBe(14);

      // Nothing left behind: the process is gone and so are its database sessions.
      expect(() => process.kill(service!.pid, 0)).toThrow(
        expect.objectContaining({ code: 'ESRCH' }),
      );
      await fx.close();
      fx = undefined;
      // A backend leaves pg_stat_activity a moment after its client hangs up, hence the wait.
      await waitFor('the service’s database sessions to end', async () =>
        (await sessionsOn(observer!, db.name)).every((s) => s.pid === blockerPid),
      );
    },
  );
});
