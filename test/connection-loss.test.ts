import { randomUUID } from 'node:crypto';
import { type ServiceError, status } from '@grpc/grpc-js';
import type { EntityManager } from '@mikro-orm/postgresql';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { addDays } from '../src/domain/calendar';
import { AutoResolveOutcome, RiskLevel } from '../src/generated/swap/v1/conflict';
import { type BlackholeProxy, startBlackholeProxy } from './support/blackhole-proxy';
import { failure, retryDelayMsOf } from './support/grpc-outcomes';
import { ScheduleFixture } from './support/schedule-fixture';
import { connect, truncateAll, waitFor } from './support/sql-fixtures';
import { fmitSwapPair } from './support/swap-pair';
import { createTestDatabase, type TestDatabase } from './support/test-database';
import { errorDetails, startTestService, type TestService } from './support/test-service';

/**
 * Issue 11, defect 3: a database connection lost anywhere in a call, including
 * the idempotency lookup and COMMIT, is UNAVAILABLE with RetryInfo, never
 * INTERNAL; a COMMIT whose outcome is unknown says so, and the retry with the
 * same request id reports the truth. The service reaches PostgreSQL through a
 * TCP proxy the tests cut, and the tests terminate its backends themselves.
 */

let db: TestDatabase;
let proxy: BlackholeProxy;
let ts: TestService;
let fx: ScheduleFixture;
/** Run once, right before the next COMMIT of a mutation (its last commit hook). */
let atCommit: ((em: EntityManager) => Promise<void>) | undefined;

beforeAll(async () => {
  db = await createTestDatabase();
  const url = new URL(db.url);
  proxy = await startBlackholeProxy(Number(url.port || 5432));
  url.host = `127.0.0.1:${proxy.port}`;
  ts = await startTestService(
    { DATABASE_URL: url.toString(), IDEMPOTENCY_SWEEP_INTERVAL_MS: '3600000' },
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
});
afterAll(async () => {
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

async function swapIds(): Promise<string[]> {
  const { rows } = await fx.db.query<{ id: string }>('select id from swap_record order by id');
  return rows.map((r) => r.id);
}

/** The service's backends waiting for a lock, optionally only those running `like`. */
async function lockWaiters(like = '%'): Promise<number[]> {
  const { rows } = await fx.db.query<{ pid: number }>(
    `select pid from pg_stat_activity
     where datname = current_database() and wait_event_type = 'Lock' and query like $1`,
    [like],
  );
  return rows.map((r) => r.pid);
}

/** Terminates the backend of `em`'s connection, and waits until it has gone. */
async function terminateOwnBackend(em: EntityManager): Promise<void> {
  const [row] = await em.execute<{ pid: number }[]>('select pg_backend_pid() as pid');
  await fx.db.query('select pg_terminate_backend($1)', [row!.pid]);
  await waitFor('the backend to end', async () => {
    const { rows } = await fx.db.query('select 1 from pg_stat_activity where pid = $1', [row!.pid]);
    return rows.length === 0;
  });
}

function expectRetryableUnavailable(error: ServiceError, reason: string): void {
  expect([status[error.code], errorDetails(error).reason]).toEqual(['UNAVAILABLE', reason]);
  expect(retryDelayMsOf(error)).toBeGreaterThan(0);
}

it('answers UNAVAILABLE when the idempotency claim loses its connection, and the retry runs', async () => {
  const pair = await fmitSwapPair(fx, { sourceWeek: W, targetWeek: addDays(W, 14), reason: 'x' });
  const request = pair.request();
  // The claim, the transaction's first statement, waits behind this lock; its
  // backend is then terminated (57P01).
  const holder = await connect(db.url);
  await holder.query('begin; lock table idempotency_record in access exclusive mode');
  try {
    const call = failure(ts.api.executeSwap(request));
    await waitFor('the claim to wait', async () => {
      const pids = await lockWaiters('%into idempotency_record%');
      for (const pid of pids) await fx.db.query('select pg_terminate_backend($1)', [pid]);
      return pids.length > 0;
    });
    expectRetryableUnavailable(await call, 'DATABASE_UNAVAILABLE');
  } finally {
    await holder.query('rollback');
    await holder.end();
  }
  expect(await swapIds()).toEqual([]);

  const { swap } = await ts.api.executeSwap(request);
  expect(await swapIds()).toEqual([swap!.id]);
});

it('answers UNAVAILABLE when the connection drops mid-transaction (no SQLSTATE), and commits nothing', async () => {
  const pair = await fmitSwapPair(fx, { sourceWeek: W, targetWeek: addDays(W, 14), reason: 'x' });
  const request = pair.request();
  // The swap's insert waits behind this lock, inside its transaction, when the proxy is cut.
  const holder = await connect(db.url);
  await holder.query('begin; lock table swap_record in access exclusive mode');
  try {
    const call = failure(ts.api.executeSwap(request));
    await waitFor('the swap to wait in its transaction', async () => {
      const waiting = (await lockWaiters()).length > 0;
      if (waiting) proxy.cut();
      return waiting;
    });
    const error = await call;
    expectRetryableUnavailable(error, 'DATABASE_UNAVAILABLE');
    expect(error.details).toMatch(/nothing was committed/);
  } finally {
    await holder.query('rollback');
    await holder.end();
  }
  expect(await swapIds()).toEqual([]);

  const { swap } = await ts.api.executeSwap(request);
  expect(await swapIds()).toEqual([swap!.id]);
});

it('says COMMIT_OUTCOME_UNKNOWN when the reply to COMMIT is lost, and the retry replays what committed', async () => {
  const pair = await fmitSwapPair(fx, { sourceWeek: W, targetWeek: addDays(W, 14), reason: 'x' });
  const request = pair.request();
  // From here on PostgreSQL's replies are swallowed: COMMIT reaches it and
  // commits, and the service never hears so; then the connection is cut.
  atCommit = () => Promise.resolve(void proxy.arm());
  const call = failure(ts.api.executeSwap(request));
  await waitFor('the swap to commit', async () => (await swapIds()).length === 1);
  proxy.cut();
  proxy.disarm();
  const error = await call;
  expectRetryableUnavailable(error, 'COMMIT_OUTCOME_UNKNOWN');
  expect(error.details).toMatch(/retry with the same request_id/);
  const committed = await swapIds();

  const { swap } = await ts.api.executeSwap(request);
  expect([swap!.id]).toEqual(committed);
  expect(await swapIds()).toEqual(committed);
});

it('says COMMIT_OUTCOME_UNKNOWN when the backend dies at COMMIT, and the retry runs what did not commit', async () => {
  const pair = await fmitSwapPair(fx, { sourceWeek: W, targetWeek: addDays(W, 14), reason: 'x' });
  const request = pair.request();
  atCommit = terminateOwnBackend;
  expectRetryableUnavailable(await failure(ts.api.executeSwap(request)), 'COMMIT_OUTCOME_UNKNOWN');
  expect(await swapIds()).toEqual([]);

  const { swap } = await ts.api.executeSwap(request);
  expect(await swapIds()).toEqual([swap!.id]);
});

it('fails an AutoResolve whose resolution lost its COMMIT as UNAVAILABLE, not a FAILED item, and the retry resolves it', async () => {
  const faculty = await fx.faculty();
  await fx.faculty();
  await fx.assignWeek(faculty, W);
  await fx.absence(faculty, addDays(W, 1), addDays(W, 2), 'tdy');
  const { created } = await ts.conflicts.detectConflicts({ weekFrom: W, weekTo: W });
  const request = {
    conflictIds: created.map((c) => c.id),
    maxRisk: RiskLevel.RISK_LEVEL_LOW,
    requestId: randomUUID(),
  };
  atCommit = terminateOwnBackend;
  expectRetryableUnavailable(
    await failure(ts.conflicts.autoResolve(request)),
    'COMMIT_OUTCOME_UNKNOWN',
  );
  expect(await swapIds()).toEqual([]);

  const { results } = await ts.conflicts.autoResolve(request);
  expect(results.map((r) => r.outcome)).toEqual([AutoResolveOutcome.AUTO_RESOLVE_OUTCOME_RESOLVED]);
  expect(await swapIds()).toEqual([results[0]!.swapId]);
});
