import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import type pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { addDays } from '../src/domain/calendar';
import { type ExecuteSwapRequest, SwapStatus, SwapType } from '../src/generated/swap/v1/swap';
import {
  errorOf,
  executeSwapAnswer,
  okResponse,
  rollbackSwapAnswer,
} from './support/replay-aware-calls';
import type { JwtIssuer } from './support/jwt-issuer';
import { TEST_REDIS_URL } from './support/redis-url';
import { ScheduleFixture } from './support/schedule-fixture';
import { ProcessHarness } from './support/process-harness';
import { backendPid, connect, waitFor } from './support/sql-fixtures';
import { createTestDatabase, type TestDatabase } from './support/test-database';
import {
  errorDetails,
  startTestService,
  type TestService,
  useTokenAuthenticatedService,
} from './support/test-service';

/**
 * Every mutating call is idempotent by its request_id, within the caller and
 * method that sent it. These tests replay keys the ways a client really does:
 * all at once, after a restart, after the server died between commit and reply,
 * with another body, from another caller, and after the key has expired; and
 * they check the sweeper that removes expired keys.
 */

// The file's service authenticates callers by bearer token: its keys are scoped by who they prove to be.
let issuer: JwtIssuer;
let ts: TestService;
let fx: ScheduleFixture;
useTokenAuthenticatedService((started) => ({ ts, fx, issuer } = started));

// ---------------------------------------------------------------------------
// Schedules and what the database holds.

/** A swaps `week` (FMIT, all 14 half-days, a Friday call) with B's `otherWeek`. */
async function crossWeekSwap(
  f: ScheduleFixture,
  week: string,
  otherWeek: string,
): Promise<{ a: string; b: string; request: Partial<ExecuteSwapRequest> }> {
  const a = await f.faculty('core');
  const b = await f.faculty('core');
  await f.assignWeek(a, week);
  await f.assignWeek(b, otherWeek);
  await f.call(a, addDays(week, 4));
  return {
    a,
    b,
    request: {
      sourceFacultyId: a,
      sourceWeek: week,
      targetFacultyId: b,
      targetWeek: otherWeek,
      swapType: SwapType.SWAP_TYPE_ONE_TO_ONE,
      reason: 'idempotency',
      requestId: randomUUID(),
    },
  };
}

/**
 * A holds the mornings of `week` and B its afternoons; the request swaps the
 * week one-to-one. Run twice, it swaps back: a body that is valid again after
 * it has run, so a second execution is visible as such instead of failing.
 */
async function sharedWeekSwap(
  f: ScheduleFixture,
  week: string,
): Promise<{ a: string; b: string; request: Partial<ExecuteSwapRequest> }> {
  const a = await f.faculty('core');
  const b = await f.faculty('core');
  await f.assignWeek(a, week, { halves: ['AM'] });
  await f.assignWeek(b, week, { halves: ['PM'] });
  return {
    a,
    b,
    request: {
      sourceFacultyId: a,
      sourceWeek: week,
      targetFacultyId: b,
      targetWeek: week,
      swapType: SwapType.SWAP_TYPE_ONE_TO_ONE,
      reason: 'swap halves',
      requestId: randomUUID(),
    },
  };
}

async function count(db: pg.Pool | pg.Client, sql: string, params: unknown[] = []) {
  const { rows } = await db.query<{ n: number }>(
    `select count(*)::int as n from (${sql}) x`,
    params,
  );
  return rows[0]!.n;
}

/** Swap records in which `personId` is source or target. */
function swapsOf(db: pg.Pool | pg.Client, personId: string): Promise<number> {
  return count(db, `select 1 from swap_record where $1 in (source_faculty_id, target_faculty_id)`, [
    personId,
  ]);
}

/** The half-days `personId` holds, as sorted "date half" strings. */
async function holdings(db: pg.Pool | pg.Client, personId: string): Promise<string[]> {
  const { rows } = await db.query<{ slot: string }>(
    `select to_char(b.date, 'YYYY-MM-DD') || ' ' || b.half as slot
       from assignment a join block b on b.id = a.block_id
      where a.person_id = $1 order by 1`,
    [personId],
  );
  return rows.map((r) => r.slot);
}

async function idempotencyRows(db: pg.Pool | pg.Client, requestId: string) {
  const { rows } = await db.query<{
    scope: string;
    fingerprint: string;
    response: Buffer | null;
    created_at: Date;
    expires_at: Date;
  }>(
    `select scope, fingerprint, response, created_at, expires_at
       from idempotency_record where request_id = $1 order by scope`,
    [requestId],
  );
  return rows;
}

// ---------------------------------------------------------------------------

describe('ExecuteSwap with one request_id', () => {
  it('runs once for 20 concurrent identical calls; the other 19 are replays of the same answer', async () => {
    const { a, b, request } = await crossWeekSwap(fx, '2030-02-04', '2030-02-18');
    const weekOfA = await holdings(fx.db, a);
    const weekOfB = await holdings(fx.db, b);
    const token = await issuer.token('racer');
    const answers = await Promise.all(
      Array.from({ length: 20 }, () =>
        executeSwapAnswer(ts.client, request, { token, deadlineMs: 60_000 }),
      ),
    );

    const responses = answers.map(okResponse);
    for (const response of responses) expect(response).toEqual(responses[0]);
    expect(responses[0]!.swap?.status).toBe(SwapStatus.SWAP_STATUS_EXECUTED);
    expect(answers.filter((x) => x.replayed)).toHaveLength(19);

    const { rows } = await fx.db.query<{ id: string }>(
      `select id from swap_record where source_faculty_id = $1`,
      [a],
    );
    expect(rows).toEqual([{ id: responses[0]!.swap!.id }]);
    // Moved once: each holds exactly the other's former week.
    expect(await holdings(fx.db, a)).toEqual(weekOfB);
    expect(await holdings(fx.db, b)).toEqual(weekOfA);
    expect(await idempotencyRows(fx.db, request.requestId!)).toEqual([
      expect.objectContaining({ scope: '["racer",null,"ExecuteSwap"]' }),
    ]);
  });

  it('replays the committed answer after the service restarts', async () => {
    const first = await startTestService();
    let second: TestService | undefined;
    const f = await ScheduleFixture.connect(first.db.url);
    try {
      const { a, request } = await crossWeekSwap(f, '2030-03-04', '2030-03-18');
      const original = await executeSwapAnswer(first.client, request);
      expect(original.replayed).toBe(false);
      const response = okResponse(original);
      await first.service.stop();

      // Another key prefix, so no Redis entry of the first service can answer:
      // the replay must come from what PostgreSQL committed.
      second = await startTestService({}, { database: first.db });
      const replay = await executeSwapAnswer(second.client, request);
      expect(okResponse(replay)).toEqual(response);
      expect(replay.replayed).toBe(true);
      expect(await swapsOf(f.db, a)).toBe(1);
    } finally {
      await f.close();
      await second?.close();
      await first.close();
    }
  });

  it('answers a request refused FAILED_PRECONDITION with the same refusal when it comes again, though the schedule now allows it', async () => {
    const a = await fx.faculty('core');
    const b = await fx.faculty('core');
    await fx.assignWeek(b, '2030-05-20');
    const request: Partial<ExecuteSwapRequest> = {
      sourceFacultyId: a,
      sourceWeek: '2030-05-06',
      targetFacultyId: b,
      targetWeek: '2030-05-20',
      swapType: SwapType.SWAP_TYPE_ONE_TO_ONE,
      reason: 'refused, then delivered again',
      requestId: randomUUID(),
    };
    const token = await issuer.token('alice');
    const first = errorOf(await executeSwapAnswer(ts.client, request, { token }));
    expect([first.code, errorDetails(first).reason]).toEqual([
      status.FAILED_PRECONDITION,
      'NO_ASSIGNMENTS',
    ]);
    // The schedule moves on: the same swap, under a new id, would now run.
    await fx.assignWeek(a, '2030-05-06');
    const before = await fx.snapshot();

    // A duplicate of the refused call (a client that lost the answer) is refused
    // the same way: no change is ever committed under an id already refused.
    const again = await executeSwapAnswer(ts.client, request, { token });
    const error = errorOf(again);
    expect([error.code, errorDetails(error).reason, error.details]).toEqual([
      status.FAILED_PRECONDITION,
      'NO_ASSIGNMENTS',
      first.details,
    ]);
    expect(await fx.snapshot()).toEqual(before);
    expect(await swapsOf(fx.db, a)).toBe(0);
  });

  it('rejects the same request_id with another body as IDEMPOTENCY_KEY_REUSED, writing nothing', async () => {
    const { a, request } = await crossWeekSwap(fx, '2030-04-01', '2030-04-15');
    const other = await crossWeekSwap(fx, '2030-04-01', '2030-04-15');
    const alice = await issuer.token('alice');
    okResponse(await executeSwapAnswer(ts.client, request, { token: alice }));
    const before = await fx.snapshot();
    const keyBefore = await idempotencyRows(fx.db, request.requestId!);

    for (const changed of [
      { ...request, reason: 'another reason' },
      { ...other.request, requestId: request.requestId },
    ]) {
      const answer = await executeSwapAnswer(ts.client, changed, { token: alice });
      const error = errorOf(answer);
      expect(error.code).toBe(status.INVALID_ARGUMENT);
      expect(errorDetails(error).reason).toBe('IDEMPOTENCY_KEY_REUSED');
      expect(answer.replayed).toBe(false);
    }

    expect(await fx.snapshot()).toEqual(before);
    expect(await swapsOf(fx.db, a)).toBe(1);
    expect(await swapsOf(fx.db, other.a)).toBe(0);
    expect(await idempotencyRows(fx.db, request.requestId!)).toEqual(keyBefore);
  });

  it('keeps keys of different principals apart: the same request_id and body from another principal runs again', async () => {
    const { a, b, request } = await sharedWeekSwap(fx, '2030-04-29');
    const mornings = await holdings(fx.db, a);
    const alice = await issuer.token('alice');
    const bob = await issuer.token('bob');

    const byAlice = await executeSwapAnswer(ts.client, request, { token: alice });
    expect(byAlice.replayed).toBe(false);
    const aliceSwap = okResponse(byAlice).swap!;
    expect(await holdings(fx.db, b)).toEqual(mornings);

    // Bob's key is his own: his call executes (and so swaps the halves back)
    // rather than replaying Alice's answer or being refused as a reused key.
    const byBob = await executeSwapAnswer(ts.client, request, { token: bob });
    expect(byBob.replayed).toBe(false);
    const bobSwap = okResponse(byBob).swap!;
    expect(bobSwap.id).not.toBe(aliceSwap.id);
    expect(bobSwap.requestedBy).toBe('bob');
    expect(await holdings(fx.db, a)).toEqual(mornings);
    expect(await swapsOf(fx.db, a)).toBe(2);

    // Each principal's retry replays that principal's own answer.
    const aliceAgain = await executeSwapAnswer(ts.client, request, { token: alice });
    expect(aliceAgain.replayed).toBe(true);
    expect(okResponse(aliceAgain).swap).toEqual(aliceSwap);
    const bobAgain = await executeSwapAnswer(ts.client, request, { token: bob });
    expect(bobAgain.replayed).toBe(true);
    expect(okResponse(bobAgain).swap).toEqual(bobSwap);
    expect(await swapsOf(fx.db, a)).toBe(2);
    expect((await idempotencyRows(fx.db, request.requestId!)).map((r) => r.scope)).toEqual([
      '["alice",null,"ExecuteSwap"]',
      '["bob",null,"ExecuteSwap"]',
    ]);
  });
});

describe('RollbackSwap with one request_id', () => {
  it('rolls back once; the second call replays the answer', async () => {
    const { request } = await crossWeekSwap(fx, '2030-05-06', '2030-05-20');
    const schedule = await fx.snapshot();
    const token = await issuer.token('carol');
    const { swap } = okResponse(await executeSwapAnswer(ts.client, request, { token }));
    expect(await fx.snapshot()).not.toEqual(schedule);

    // The execute call's request_id, reused on another method: another key, so it runs.
    const rollback = { swapId: swap!.id, reason: 'changed plans', requestId: request.requestId };
    const first = await rollbackSwapAnswer(ts.client, rollback, { token });
    expect(first.replayed).toBe(false);
    const rolledBack = okResponse(first);
    expect(rolledBack.swap?.status).toBe(SwapStatus.SWAP_STATUS_ROLLED_BACK);
    const after = await fx.snapshot();
    expect(after).toEqual(schedule);

    // A second rollback would fail (the swap is no longer EXECUTED); the replay answers OK.
    const second = await rollbackSwapAnswer(ts.client, rollback, { token });
    expect(second.replayed).toBe(true);
    expect(okResponse(second)).toEqual(rolledBack);
    expect(await fx.snapshot()).toEqual(after);
    const { rows } = await fx.db.query<{ status: string; rolled_back_at: Date }>(
      `select status, rolled_back_at from swap_record where id = $1`,
      [swap!.id],
    );
    expect(rows).toEqual([{ status: 'ROLLED_BACK', rolled_back_at: expect.any(Date) as Date }]);
    expect((await idempotencyRows(fx.db, request.requestId!)).map((r) => r.scope)).toEqual([
      '["carol",null,"ExecuteSwap"]',
      '["carol",null,"RollbackSwap"]',
    ]);
  });
});

describe('an expired idempotency key', () => {
  // 0.0003 hours: keys live for about a second.
  const SHORT_RETENTION = { IDEMPOTENCY_RETENTION_HOURS: '0.0003' };
  const RETENTION_MS = 0.0003 * 3_600_000;

  it('is a new key: the same request_id and body execute again', async () => {
    // No Redis: this is PostgreSQL's verdict alone (the cache is the next test).
    const short = await startTestService({ ...SHORT_RETENTION, REDIS_URL: '' });
    const f = await ScheduleFixture.connect(short.db.url);
    try {
      const { a, request } = await sharedWeekSwap(f, '2030-06-03');
      const mornings = await holdings(f.db, a);
      const first = await executeSwapAnswer(short.client, request);
      const firstSwap = okResponse(first).swap!;
      const [key] = await idempotencyRows(f.db, request.requestId!);

      await waitFor('the key to expire', async () => {
        const { rows } = await f.db.query<{ expired: boolean }>(
          `select expires_at <= now() as expired from idempotency_record where request_id = $1`,
          [request.requestId],
        );
        return rows[0]?.expired ?? true;
      });
      const again = await executeSwapAnswer(short.client, request);
      expect(again.replayed).toBe(false);
      const againSwap = okResponse(again).swap!;
      expect(againSwap.id).not.toBe(firstSwap.id);
      // It ran: the halves are swapped back, and there are two swap records.
      expect(await holdings(f.db, a)).toEqual(mornings);
      expect(await swapsOf(f.db, a)).toBe(2);
      const [renewed] = await idempotencyRows(f.db, request.requestId!);
      expect(renewed!.expires_at.getTime()).toBeGreaterThan(key!.expires_at.getTime());
    } finally {
      await f.close();
      await short.close();
    }
  });

  it('is a new key with the Redis replay cache too, even when the call took longer than the retention', async () => {
    const short = await startTestService({ ...SHORT_RETENTION, REDIS_URL: TEST_REDIS_URL });
    const f = await ScheduleFixture.connect(short.db.url);
    const blocker = await connect(short.db.url);
    const observer = await connect(short.db.url);
    try {
      const { a, request } = await sharedWeekSwap(f, '2030-06-10');
      const mornings = await holdings(f.db, a);
      const { rows: heldRows } = await f.db.query<{ id: string }>(
        `select id from assignment where person_id = $1 order by id limit 1`,
        [a],
      );
      // Hold a row the swap needs until its key, claimed at the start of its
      // transaction, has outlived the retention: it commits already expired.
      await blocker.query('begin');
      await blocker.query('select id from assignment where id = $1 for update', [heldRows[0]!.id]);
      const blockerPid = await backendPid(blocker);
      const first = executeSwapAnswer(short.client, request);
      await waitFor('the swap to wait past its key’s retention', async () => {
        const { rows } = await observer.query(
          `select pid from pg_stat_activity
              where datname = $1 and $2 = any(pg_blocking_pids(pid))
                and now() > xact_start + $3::interval`,
          [short.db.name, blockerPid, `${RETENTION_MS} milliseconds`],
        );
        return rows.length === 1;
      });
      await blocker.query('rollback');
      const firstSwap = okResponse(await first).swap!;
      const { rows: keyRows } = await observer.query<{ expired: boolean }>(
        `select expires_at <= now() as expired from idempotency_record where request_id = $1`,
        [request.requestId],
      );
      expect(keyRows).toEqual([{ expired: true }]);

      // PostgreSQL holds the key as expired, so the retry is new; a cache entry
      // that outlives the row must not turn it into a replay.
      const again = await executeSwapAnswer(short.client, request);
      expect(again.replayed).toBe(false);
      expect(okResponse(again).swap!.id).not.toBe(firstSwap.id);
      expect(await holdings(f.db, a)).toEqual(mornings);
    } finally {
      await blocker.query('rollback').catch(() => undefined);
      await blocker.end();
      await observer.end();
      await f.close();
      await short.close();
    }
  });
});

describe('the idempotency sweeper', () => {
  const HOUR = 3_600_000;

  /** Inserts `n` keys of `scope` that expire `inMs` from now (negative: already expired). */
  async function insertKeys(scope: string, n: number, inMs: number): Promise<void> {
    await fx.db.query(
      `insert into idempotency_record (scope, request_id, fingerprint, response, created_at, expires_at)
       select $1, gen_random_uuid(), 'f', '\\x00', now() - interval '2 days', now() + $3::interval
         from generate_series(1, $2)`,
      [scope, n, `${inMs} milliseconds`],
    );
  }

  function keysLeft(scope: string) {
    return fx.db
      .query<{ expired: boolean; n: number }>(
        `select expires_at <= now() as expired, count(*)::int as n
           from idempotency_record where scope = $1 group by 1 order by 1`,
        [scope],
      )
      .then((r) => r.rows);
  }

  it('deletes the expired keys and only those', async () => {
    const scope = `sweep-${randomUUID()}:ExecuteSwap`;
    await insertKeys(scope, 30, -HOUR);
    await insertKeys(scope, 1, -1);
    await insertKeys(scope, 20, HOUR);
    const otherKeys = await count(fx.db, `select 1 from idempotency_record where scope <> $1`, [
      scope,
    ]);

    expect(await ts.service.sweeper.sweep()).toBe(31);
    expect(await keysLeft(scope)).toEqual([{ expired: false, n: 20 }]);
    expect(await count(fx.db, `select 1 from idempotency_record where scope <> $1`, [scope])).toBe(
      otherKeys,
    );
    expect(await ts.service.sweeper.sweep()).toBe(0);
  });

  it('deletes nothing while another replica holds the sweep', async () => {
    const scope = `sweep-${randomUUID()}:ExecuteSwap`;
    await insertKeys(scope, 5, -HOUR);
    const rival = await connect(ts.db.url);
    try {
      // The sweeper's advisory lock key, taken the way a sweep on another replica holds it.
      await rival.query('begin');
      await rival.query('select pg_advisory_xact_lock(728145001)');
      expect(await ts.service.sweeper.sweep()).toBe(0);
      await rival.query('commit');
      expect(await keysLeft(scope)).toEqual([{ expired: true, n: 5 }]);
      expect(await ts.service.sweeper.sweep()).toBe(5);
    } finally {
      await rival.end();
    }
  });

  it('two services sweeping at once delete each expired key once and never a live one', async () => {
    const scope = `sweep-${randomUUID()}:ExecuteSwap`;
    // More than one batch of 1000, so the sweeps interleave batch by batch.
    await insertKeys(scope, 2_500, -HOUR);
    await insertKeys(scope, 100, HOUR);
    const other = await startTestService({ REDIS_URL: '' }, { database: ts.db });
    try {
      const deleted = await Promise.all([
        ts.service.sweeper.sweep(),
        other.service.sweeper.sweep(),
        ts.service.sweeper.sweep(),
        other.service.sweeper.sweep(),
      ]);
      expect(deleted.reduce((x, y) => x + y, 0)).toBe(2_500);
      expect(await keysLeft(scope)).toEqual([{ expired: false, n: 100 }]);
    } finally {
      await other.close();
    }
  });

  it('does not delete a key that a call took over after it expired', async () => {
    const requestId = randomUUID();
    const scope = `sweep-${randomUUID()}:ExecuteSwap`;
    await fx.db.query(
      `insert into idempotency_record (scope, request_id, fingerprint, response, expires_at)
       values ($1, $2, 'old', '\\x00', now() - interval '1 hour')`,
      [scope, requestId],
    );
    const caller = await connect(ts.db.url);
    try {
      // What a new call does with an expired key: take it over in its transaction, then commit.
      await caller.query('begin');
      await caller.query(
        `update idempotency_record
            set fingerprint = 'new', response = null, created_at = now(), expires_at = now() + interval '1 hour'
          where scope = $1 and request_id = $2`,
        [scope, requestId],
      );
      const callerPid = await backendPid(caller);
      const sweep = ts.service.sweeper.sweep();
      await waitFor('the sweep to wait on the taken-over key', async () => {
        const { rows } = await fx.db.query(
          `select pid from pg_stat_activity where datname = $1 and $2 = any(pg_blocking_pids(pid))`,
          [ts.db.name, callerPid],
        );
        return rows.length === 1;
      });
      await caller.query(
        `update idempotency_record set response = '\\x01' where scope = $1 and request_id = $2`,
        [scope, requestId],
      );
      await caller.query('commit');
      await sweep;
      expect(await idempotencyRows(fx.db, requestId)).toEqual([
        expect.objectContaining({ fingerprint: 'new', response: Buffer.from([1]) }),
      ]);
    } finally {
      await caller.query('rollback').catch(() => undefined);
      await caller.end();
    }
  });
});

// ---------------------------------------------------------------------------
// The service as its own process, killed between commit and reply.

describe('a crash between commit and reply', () => {
  let db: TestDatabase | undefined;
  let f: ScheduleFixture | undefined;
  const processes = new ProcessHarness(() => db!.url);
  afterAll(async () => {
    await processes.close();
    await f?.close();
    await db?.drop();
  });

  it(
    'replays the committed swap to the retry after the server was SIGKILLed before replying',
    { timeout: 120_000 },
    async () => {
      db = await createTestDatabase();
      f = await ScheduleFixture.connect(db.url);
      // The children run on the real clock: weeks far ahead of it.
      const { a, b, request } = await crossWeekSwap(f, '2031-03-03', '2031-03-17');
      const weekOfA = await holdings(f.db, a);
      const weekOfB = await holdings(f.db, b);

      const first = await processes.serve();
      const { exit, answer } = await processes.crashBeforeReply(
        first,
        (client) => executeSwapAnswer(client, request, { deadlineMs: 60_000 }),
        async () => (await swapsOf(f!.db, a)) === 1,
      );
      expect(exit).toEqual({ code: null, signal: 'SIGKILL' });
      expect(answer.ok).toBe(false);

      // A fresh process on the same database, and another Redis key prefix, so
      // nothing but what PostgreSQL committed can answer the retry.
      const second = await processes.serve();
      const retry = await executeSwapAnswer(processes.clientOf(second.port), request);
      expect(retry.replayed).toBe(true);
      const { swap } = okResponse(retry);

      const { rows } = await f.db.query<{ id: string }>(
        `select id from swap_record where source_faculty_id = $1`,
        [a],
      );
      expect(rows).toEqual([{ id: swap!.id }]);
      expect(swap?.status).toBe(SwapStatus.SWAP_STATUS_EXECUTED);
      // Moved once: each holds exactly the other's former week.
      expect(await holdings(f.db, a)).toEqual(weekOfB);
      expect(await holdings(f.db, b)).toEqual(weekOfA);
      expect(await count(f.db, `select 1 from call_assignment where person_id = $1`, [b])).toBe(1);
    },
  );
});
