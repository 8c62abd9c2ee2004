import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SwapType } from '../src/generated/swap/v1/swap';
import { type Outcome, outcomeOf } from './support/grpc-outcomes';
import { TEST_REDIS_URL } from './support/redis-url';
import type { ScheduleFixture } from './support/schedule-fixture';
import { connect, sessionsOn, waitFor } from './support/sql-fixtures';
import { type TestService, useTestService } from './support/test-service';

/**
 * A Redis lease lost while its swap is still inside its transaction, through
 * the real service. The swap is stalled on a row lock held from a raw
 * connection; its lock keys are deleted from Redis (what an expiry during a
 * long pause looks like); then the row lock is let go. The stale writer must
 * not commit, and whoever took the lock next must succeed untouched.
 */

const LOCK_TTL_MS = 600;

let ts: TestService;
let fx: ScheduleFixture;
let redis: Redis;
useTestService((started) => ({ ts, fx } = started), {
  REDIS_URL: TEST_REDIS_URL,
  LOCK_TTL_MS: String(LOCK_TTL_MS),
});
beforeAll(() => {
  redis = new Redis(TEST_REDIS_URL);
});
afterAll(() => redis?.disconnect());

/** Mondays well after the service's TODAY (2030-01-07): no PAST_WEEK, no SHORT_NOTICE. */
const W1 = '2030-03-04';
const W2 = '2030-03-18';

function swapRequest(source: string, target: string, requestId: string = randomUUID()) {
  return {
    sourceFacultyId: source,
    sourceWeek: W1,
    targetFacultyId: target,
    targetWeek: W2,
    swapType: SwapType.SWAP_TYPE_ONE_TO_ONE,
    reason: 'lock loss',
    requestId,
  };
}

/** The lock keys of this service that Redis holds now, with their owner tokens. */
async function lockKeys(): Promise<Map<string, string | null>> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(
      cursor,
      'MATCH',
      `{${ts.lockKeyPrefix}}:lock:*`,
      'COUNT',
      1000,
    );
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  const owners = keys.length > 0 ? await redis.mget(...keys) : [];
  return new Map(keys.map((key, i) => [key, owners[i] ?? null]));
}

/** Sessions of this test's database waiting on a heavyweight lock (a row lock). */
async function sessionsWaitingOnLocks(admin: pg.Client): Promise<number> {
  const sessions = await sessionsOn(admin, ts.db.name);
  return sessions.filter((s) => s.waitEventType === 'Lock').length;
}

async function count(sql: string, params: unknown[] = []): Promise<number> {
  const { rows } = await fx.db.query<{ n: number }>(
    `select count(*)::int as n from (${sql}) x`,
    params,
  );
  return rows[0]!.n;
}

async function holderOf(assignmentId: string): Promise<string> {
  const { rows } = await fx.db.query<{ person_id: string }>(
    'select person_id from assignment where id = $1',
    [assignmentId],
  );
  return rows[0]!.person_id;
}

async function doubleBookings(): Promise<number> {
  return (await fx.invariantBreaches()).doubleBooked;
}

describe('a lease lost while its swap waits inside the transaction', () => {
  let a: string;
  let b: string;
  let aWeek: string[];
  let bWeek: string[];
  let stale: Outcome;
  let next: Outcome;
  let staleRequestId: string;
  const stats = {
    before: { lost: 0, releaseNotHeld: 0, redis: 0 },
    after: { lost: 0, releaseNotHeld: 0, redis: 0 },
  };

  // One scenario, several verdicts: each `it` below checks one consequence.
  beforeAll(async () => {
    a = await fx.faculty('core');
    b = await fx.faculty('core');
    aWeek = await fx.assignWeek(a, W1);
    bWeek = await fx.assignWeek(b, W2);
    const snapshot = () => {
      const s = ts.service.locks.stats();
      return { lost: s.lost, releaseNotHeld: s.releaseNotHeld, redis: s.acquired.redis };
    };
    stats.before = snapshot();

    const blocker = await connect(ts.db.url);
    const admin = await connect(ts.db.url);
    try {
      await blocker.query('begin');
      await blocker.query('select id from assignment where id = $1 for update', [aWeek[0]]);

      staleRequestId = randomUUID();
      const staleCall = outcomeOf(ts.api.executeSwap(swapRequest(a, b, staleRequestId)));
      await waitFor('the first swap to wait on the held assignment row', async () => {
        return (await sessionsWaitingOnLocks(admin)) === 1;
      });
      const staleKeys = await lockKeys();
      expect(staleKeys.size).toBe(4);

      // The lease expires under the stalled writer: its keys vanish from Redis.
      await redis.del(...staleKeys.keys());
      await waitFor(
        'the lease to notice it was lost',
        () => ts.service.locks.stats().lost > stats.before.lost,
      );

      // A second swap of the same weeks takes the (now free) Redis lock and then
      // queues in PostgreSQL behind the stale writer's faculty-week row locks.
      const nextCall = outcomeOf(ts.api.executeSwap(swapRequest(a, b)));
      await waitFor(
        'the second swap to take the Redis lock',
        () => ts.service.locks.stats().acquired.redis > stats.before.redis + 1,
      );
      const nextKeys = await lockKeys();
      expect([...nextKeys.keys()].sort()).toEqual([...staleKeys.keys()].sort());
      for (const [key, owner] of nextKeys) expect(owner).not.toBe(staleKeys.get(key));
      await waitFor('the second swap to queue behind the first', async () => {
        return (await sessionsWaitingOnLocks(admin)) === 2;
      });

      await blocker.query('rollback');
      [stale, next] = await Promise.all([staleCall, nextCall]);
    } finally {
      await blocker.end();
      await admin.end();
    }
    // A call answers without waiting for its release; both have been sent.
    await waitFor('both leases to be released', async () => {
      const s = ts.service.locks.stats();
      return s.releaseNotHeld > stats.before.releaseNotHeld && (await lockKeys()).size === 0;
    });
    stats.after = snapshot();
  });

  it('fails the stale call ABORTED with reason LOCK_LOST', () => {
    expect(stale).toMatchObject({ ok: false, code: status.ABORTED });
    expect(stale.ok ? '' : stale.reason).toBe('LOCK_LOST');
  });

  it('commits nothing of the stale call', async () => {
    expect(stale.ok).toBe(false);
    expect(
      await count('select 1 from idempotency_record where request_id = $1', [staleRequestId]),
    ).toBe(0);
    // Exactly one swap moved the weeks: the second one.
    expect(await count('select 1 from swap_record where source_faculty_id = $1', [a])).toBe(1);
    for (const id of aWeek) expect(await holderOf(id)).toBe(b);
    for (const id of bWeek) expect(await holderOf(id)).toBe(a);
  });

  it('lets the swap that took the lock next commit undisturbed', async () => {
    expect(next).toMatchObject({ ok: true });
    const swap = next.ok ? next.swap : undefined;
    expect(swap?.movedAssignments).toHaveLength(aWeek.length + bWeek.length);
    expect(await count('select 1 from swap_record where id = $1', [swap?.id])).toBe(1);
    expect(stats.after.lost - stats.before.lost).toBe(1);
    // The stale writer's release found its keys gone and deleted nothing of the next holder's.
    expect(stats.after.releaseNotHeld - stats.before.releaseNotHeld).toBe(1);
    expect((await lockKeys()).size).toBe(0);
  });

  it('leaves no faculty double-booked', async () => {
    expect(await doubleBookings()).toBe(0);
  });
});

describe('fencing tokens', () => {
  it('refuses a write under an older token than the faculty week recorded, then succeeds on retry', async () => {
    const c = await fx.faculty('core');
    const d = await fx.faculty('core');
    const cWeek = await fx.assignWeek(c, W1);
    const dWeek = await fx.assignWeek(d, W2);
    // As if a holder whose Redis kept its counter had written c's week with a far higher token.
    const recorded = '1000000000000';
    await fx.db.query(
      `insert into faculty_week (id, person_id, week_start, fencing_token) values ($1, $2, $3, $4)`,
      [randomUUID(), c, W1, recorded],
    );
    const before = await fx.snapshot();
    const request = swapRequest(c, d);

    const refused = await outcomeOf(ts.api.executeSwap(request));

    expect(refused).toMatchObject({
      ok: false,
      code: status.ABORTED,
      reason: 'STALE_FENCING_TOKEN',
    });
    expect(await fx.snapshot()).toEqual(before);
    expect(await count('select 1 from swap_record where source_faculty_id = $1', [c])).toBe(0);
    expect(
      await count('select 1 from idempotency_record where request_id = $1', [request.requestId]),
    ).toBe(0);
    const token = await fx.db.query<{ token: string }>(
      'select fencing_token::text as token from faculty_week where person_id = $1 and week_start = $2',
      [c, W1],
    );
    expect(token.rows[0]?.token).toBe(recorded);

    // The refusal raised the lock's floor, so the same request, retried, gets a newer token.
    const retried = await outcomeOf(ts.api.executeSwap(request));

    expect(retried).toMatchObject({ ok: true });
    for (const id of cWeek) expect(await holderOf(id)).toBe(d);
    for (const id of dWeek) expect(await holderOf(id)).toBe(c);
    const written = await fx.db.query<{ token: string }>(
      `select s.fencing_token::text as token from swap_record s where s.source_faculty_id = $1`,
      [c],
    );
    expect(written.rows).toHaveLength(1);
    expect(BigInt(written.rows[0]!.token)).toBeGreaterThan(BigInt(recorded));
    const weeks = await fx.db.query<{ token: string }>(
      `select fencing_token::text as token from faculty_week
        where (person_id, week_start) in (($1::uuid, $3::date), ($2::uuid, $3::date), ($1::uuid, $4::date), ($2::uuid, $4::date))`,
      [c, d, W1, W2],
    );
    expect(weeks.rows.map((r) => r.token)).toEqual(Array(4).fill(written.rows[0]!.token));
    expect(await doubleBookings()).toBe(0);
  });

  it('refuses a write whose token ties with another grant that wrote the week, then succeeds on retry', async () => {
    const c = await fx.faculty('core');
    const d = await fx.faculty('core');
    const cWeek = await fx.assignWeek(c, W1);
    await fx.assignWeek(d, W2);
    // As if a failover had lost the counter with a grant that wrote c's week:
    // the service's next grant gets that grant's token again.
    const counter = `{${ts.lockKeyPrefix}}:fencing`;
    const tied = (BigInt((await redis.get(counter)) ?? '0') + 1n).toString();
    await fx.db.query(
      `insert into faculty_week (id, person_id, week_start, fencing_token, fencing_owner)
       values ($1, $2, $3, $4, 'the lost grant')`,
      [randomUUID(), c, W1, tied],
    );
    const request = swapRequest(c, d);

    const refused = await outcomeOf(ts.api.executeSwap(request));

    expect(refused).toMatchObject({
      ok: false,
      code: status.ABORTED,
      reason: 'STALE_FENCING_TOKEN',
    });
    expect(await redis.get(counter)).toBe(tied);
    expect(await count('select 1 from swap_record where source_faculty_id = $1', [c])).toBe(0);

    const retried = await outcomeOf(ts.api.executeSwap(request));

    expect(retried).toMatchObject({ ok: true });
    for (const id of cWeek) expect(await holderOf(id)).toBe(d);
    const written = await fx.db.query<{ token: string }>(
      `select fencing_token::text as token from swap_record where source_faculty_id = $1`,
      [c],
    );
    expect(BigInt(written.rows[0]!.token)).toBeGreaterThan(BigInt(tied));
    expect(await doubleBookings()).toBe(0);
  });
});
