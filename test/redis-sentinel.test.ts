import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Outcome, outcomeOf } from './support/grpc-outcomes';
import { infoField, RedisFleet } from './support/redis-server';
import { type SentinelSetup, startSentinelSetup } from './support/redis-sentinel';
import { untilSettled } from './support/retried-call';
import { ScheduleFixture } from './support/schedule-fixture';
import { connect, sessionsOn, waitFor } from './support/sql-fixtures';
import { fmitSwapPair } from './support/swap-pair';
import { createTestDatabase, type TestDatabase } from './support/test-database';
import { startTestService, type TestService } from './support/test-service';

/**
 * The service on a real Sentinel deployment (a master, a replica, three
 * sentinels; test/support/redis-sentinel.ts), through failovers: a
 * SENTINEL FAILOVER, and a master killed outright. Callers may see UNAVAILABLE
 * during the gap and retry with the same request_id; afterwards locks come
 * from the new master again and every swap ran exactly once. Then a lock is
 * granted twice: the master grants it and fails over before the grant reaches
 * the replica, the new master grants it again, with the same fencing token
 * (the counter was lost too); PostgreSQL's fence, which records each grant's
 * owner with its token, must let exactly one of the two holders write.
 */

/** Mondays well after the test services' TODAY (2030-01-07), two weeks apart. */
const W1 = '2030-03-04';
const W2 = '2030-03-18';

let db: TestDatabase;
let fx: ScheduleFixture;
const fleet = new RedisFleet();
const services: TestService[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  fx = await ScheduleFixture.connect(db.url);
});
afterAll(async () => {
  for (const service of services) await service.close();
  await fx?.close();
  await db?.drop();
  await fleet.close();
});

/** A service on the sentinels that refuses (UNAVAILABLE) rather than fall back to advisory locks. */
async function serviceOn(
  setup: SentinelSetup,
  keyPrefix: string,
  extra: Record<string, string> = {},
) {
  const service = await startTestService(
    {
      REDIS_SENTINELS: setup.sentinelList,
      REDIS_SENTINEL_NAME: setup.name,
      LOCK_KEY_PREFIX: keyPrefix,
      LOCK_FALLBACK: 'fail',
      BREAKER_FAILURE_THRESHOLD: '3',
      BREAKER_COOLDOWN_MS: '200',
      ...extra,
    },
    { database: db },
  );
  services.push(service);
  return service;
}

/** The lock keys of `prefix` that `redis` holds, with their owners. */
async function lockKeys(redis: Redis, prefix: string): Promise<Map<string, string | null>> {
  const keys = await redis.keys(`{${prefix}}:lock:*`);
  const owners = keys.length > 0 ? await redis.mget(...keys) : [];
  return new Map(keys.map((key, i) => [key, owners[i] ?? null]));
}

async function counterOf(redis: Redis, prefix: string): Promise<bigint> {
  return BigInt((await redis.get(`{${prefix}}:fencing`)) ?? '0');
}

async function holderOf(assignmentId: string): Promise<string> {
  const { rows } = await fx.db.query<{ person_id: string }>(
    'select person_id from assignment where id = $1',
    [assignmentId],
  );
  return rows[0]!.person_id;
}

async function swapRecords(source: string): Promise<{ id: string; token: string }[]> {
  const { rows } = await fx.db.query<{ id: string; token: string }>(
    `select id, fencing_token::text as token from swap_record where source_faculty_id = $1 and status = 'EXECUTED'`,
    [source],
  );
  return rows;
}

describe('swaps through Sentinel failovers', () => {
  let setup: SentinelSetup;
  let ts: TestService;
  const prefix = `s${randomUUID().slice(0, 8)}`;

  beforeAll(async () => {
    setup = await startSentinelSetup(fleet);
    ts = await serviceOn(setup, prefix);
  });
  afterAll(() => setup?.close());

  /** A fresh pair, swapped through the service until settled; checks that it happened once. */
  async function swapOnce(reason: string) {
    const pair = await fmitSwapPair(fx, { sourceWeek: W1, targetWeek: W2, reason });
    const request = pair.request();
    const { final, retried } = await untilSettled(() => ts.api.executeSwap(request));
    expect(final).toMatchObject({ ok: true });
    for (const id of pair.sourceAssignments) expect(await holderOf(id)).toBe(pair.target);
    expect(await swapRecords(pair.source)).toHaveLength(1);
    return { retried, token: BigInt((await swapRecords(pair.source))[0]!.token) };
  }

  it('locks on the master the sentinels name', async () => {
    const before = ts.service.locks.stats().acquired.redis;
    const { retried } = await swapOnce('before any failover');
    expect(retried).toEqual([]);
    expect(ts.service.locks.stats().acquired.redis).toBe(before + 1);
    expect(await counterOf(setup.first.client(), prefix)).toBeGreaterThan(0n);
  });

  it('keeps swapping after SENTINEL FAILOVER, on the new master, once the old one is demoted', async () => {
    const oldMaster = setup.first.client();
    const { token: before } = await swapOnce('before the failover');
    await setup.failover();
    // Sentinel turns the old master into a replica a few seconds later; until
    // then it still takes writes. Wait for it, so the service must have moved.
    // Demoting it, Sentinel drops its clients: a command cut off that way is asked again.
    await waitFor('the old master to be demoted', async () => {
      const replication = await oldMaster.info('replication').catch(() => '');
      return infoField(replication, 'role') === 'slave';
    });

    const after = await swapOnce('after the failover');

    expect(after.token).toBeGreaterThan(before);
    // The grant was counted by the new master.
    expect(await counterOf(setup.second.client(), prefix)).toBe(after.token);
    expect((await fx.invariantBreaches()).doubleBooked).toBe(0);
  });

  it('keeps swapping when the master is killed, retrying UNAVAILABLE with the same request_id', async () => {
    expect(await setup.masterPort()).toBe(setup.second.port);
    await setup.second.kill();
    // Swaps sent while the sentinels notice and elect: each retried until it settles.
    const during = await Promise.all(['gap 1', 'gap 2', 'gap 3'].map((r) => swapOnce(r)));
    await setup.waitForMaster(setup.first.port);
    const after = await swapOnce('after the kill');

    const seen = during.flatMap((d) => d.retried).map((o) => (o.ok ? 'OK' : o.codeName));
    expect(new Set(seen)).toEqual(new Set(seen.filter((c) => c === 'UNAVAILABLE')));
    expect(await counterOf(setup.first.client(), prefix)).toBe(after.token);
    expect((await fx.invariantBreaches()).doubleBooked).toBe(0);
  });
});

describe('a failover whose old master stays up and writable', () => {
  let setup: SentinelSetup;
  let ts: TestService;
  const prefix = `u${randomUUID().slice(0, 8)}`;

  beforeAll(async () => {
    setup = await startSentinelSetup(fleet, { undemotableMaster: true });
    ts = await serviceOn(setup, prefix);
  });
  afterAll(() => setup?.close());

  it('moves the locks to the master the sentinels promoted', async () => {
    const oldMaster = setup.first.client();
    const newMaster = setup.second.client();
    await setup.failover();
    expect(infoField(await oldMaster.info('replication'), 'role')).toBe('master');

    // Swaps until one is granted by the new master. A client that stays on the
    // old master never gets there, and its locks would exclude nobody who
    // follows the sentinels.
    let movedAt = -1;
    const tokens: bigint[] = [];
    await waitFor('a lock granted by the promoted master', async () => {
      const pair = await fmitSwapPair(fx, { sourceWeek: W1, targetWeek: W2, reason: 'split' });
      const request = pair.request();
      const { final } = await untilSettled(() => ts.api.executeSwap(request));
      expect(final).toMatchObject({ ok: true });
      tokens.push(BigInt((await swapRecords(pair.source))[0]!.token));
      if ((await counterOf(newMaster, prefix)) === tokens.at(-1)) movedAt = tokens.length;
      return movedAt > 0;
    });
    // And it stays there.
    const pair = await fmitSwapPair(fx, { sourceWeek: W1, targetWeek: W2, reason: 'after' });
    const request = pair.request();
    expect((await untilSettled(() => ts.api.executeSwap(request))).final).toMatchObject({
      ok: true,
    });
    const last = BigInt((await swapRecords(pair.source))[0]!.token);
    expect(await counterOf(newMaster, prefix)).toBe(last);
    expect(await counterOf(oldMaster, prefix)).toBeLessThan(last);
  });
});

describe('a lock granted twice across a failover', () => {
  let setup: SentinelSetup;
  const prefix = `d${randomUUID().slice(0, 8)}`;
  let first: TestService;
  let second: TestService;
  let pair: Awaited<ReturnType<typeof fmitSwapPair>>;
  let staleRequestId: ReturnType<typeof randomUUID>;
  let stale: Outcome;
  let fresh: Outcome;
  const seen = {
    staleKeys: new Map<string, string | null>(),
    freshGrants: 0,
    staleSettledFirst: true,
    replicaKeysAtFailover: -1,
    staleToken: 0n,
    freshToken: 0n,
    lostWhileBothHeld: -1,
  };

  // One scenario, several verdicts.
  beforeAll(async () => {
    setup = await startSentinelSetup(fleet);
    // Two replicas of the service sharing the lock keys, as in production. The
    // lease is long, so neither extends it (which would reveal the loss)
    // while the scenario runs: both must believe they hold the lock.
    const env = { LOCK_TTL_MS: '600000' };
    first = await serviceOn(setup, prefix, env);
    second = await serviceOn(setup, prefix, env);
    pair = await fmitSwapPair(fx, { sourceWeek: W1, targetWeek: W2, reason: 'double grant' });
    const master = setup.first.client();
    const replica = setup.second.client();

    // From here on nothing the master does reaches the replica.
    setup.isolateReplica();

    // The first holder is stalled inside its transaction, right after taking
    // the Redis lock: a raw transaction has claimed its idempotency key, so its
    // own claim waits (it has not locked or read any faculty week yet).
    staleRequestId = randomUUID();
    const blocker = await connect(db.url);
    const admin = await connect(db.url);
    try {
      await blocker.query('begin');
      await blocker.query(
        `insert into idempotency_record (scope, request_id, fingerprint, expires_at)
         values ($1, $2, 'held by the test', now() + interval '1 hour')`,
        [JSON.stringify(['anonymous', null, 'ExecuteSwap']), staleRequestId],
      );
      let staleSettled = false;
      const staleCall = outcomeOf(first.api.executeSwap(pair.request(staleRequestId))).finally(
        () => (staleSettled = true),
      );
      await waitFor('the first holder to wait inside its transaction', async () => {
        const sessions = await sessionsOn(admin, db.name);
        return sessions.some((s) => s.waitEventType === 'Lock');
      });
      seen.staleKeys = await lockKeys(master, prefix);
      seen.staleToken = await counterOf(master, prefix);

      await setup.failover();
      seen.replicaKeysAtFailover = (await lockKeys(replica, prefix)).size;

      // The second holder gets the same lock from the new master and commits
      // (it may be told UNAVAILABLE while its client moves to the new master).
      const grantsBefore = second.service.locks.stats().acquired.redis;
      const freshRequest = pair.request();
      ({ final: fresh } = await untilSettled(() => second.api.executeSwap(freshRequest)));
      seen.freshGrants = second.service.locks.stats().acquired.redis - grantsBefore;
      seen.freshToken = await counterOf(replica, prefix);
      seen.lostWhileBothHeld = first.service.locks.stats().lost + second.service.locks.stats().lost;
      seen.staleSettledFirst = staleSettled;

      // The first holder goes on, still believing it holds the lock.
      await blocker.query('rollback');
      stale = await staleCall;
    } finally {
      await blocker.end();
      await admin.end();
    }
  });
  afterAll(() => setup?.close());

  it('really grants the lock twice, to two holders that both believe they hold it', () => {
    expect(seen.staleKeys.size).toBeGreaterThan(0);
    // The grant never reached the replica that was promoted…
    expect(seen.replicaKeysAtFailover).toBe(0);
    // …so the new master granted the same keys to the second holder, which
    // committed while the first was still waiting, lease intact, to write.
    expect(seen.freshGrants).toBe(1);
    expect(fresh).toMatchObject({ ok: true });
    expect(seen.staleSettledFirst).toBe(false);
    expect(seen.lostWhileBothHeld).toBe(0);
  });

  it('gives both grants the same fencing token: the counter was lost with the first', () => {
    // Redis cannot order the two; PostgreSQL tells them apart by owner.
    expect(seen.staleToken).toBeGreaterThan(0n);
    expect(seen.freshToken).toBe(seen.staleToken);
  });

  it('refuses the stale holder in PostgreSQL with STALE_FENCING_TOKEN', async () => {
    expect(stale).toMatchObject({ ok: false, code: status.ABORTED });
    expect(stale.ok ? '' : stale.reason).toBe('STALE_FENCING_TOKEN');
    const { rows } = await fx.db.query('select 1 from idempotency_record where request_id = $1', [
      staleRequestId,
    ]);
    expect(rows).toHaveLength(0);
  });

  it('leaves exactly one effect: one swap, the weeks moved once, nobody double-booked', async () => {
    // The stale call, retried with its request_id, now finds the swap done.
    const retried = await untilSettled(() => first.api.executeSwap(pair.request(staleRequestId)));
    expect(retried.final).toMatchObject({ ok: false, code: status.FAILED_PRECONDITION });

    const records = await swapRecords(pair.source);
    expect(records).toHaveLength(1);
    expect(BigInt(records[0]!.token)).toBe(seen.freshToken);
    // The swapped weeks name the second grant, with the token both grants got.
    const { rows: weeks } = await fx.db.query<{ token: string; owner: string | null }>(
      `select fencing_token::text as token, fencing_owner as owner from faculty_week
        where (person_id, week_start) in (($1::uuid, $3::date), ($2::uuid, $4::date))`,
      [pair.source, pair.target, W1, W2],
    );
    expect(weeks).toHaveLength(2);
    const staleOwners = new Set(seen.staleKeys.values());
    for (const week of weeks) {
      expect(BigInt(week.token)).toBe(seen.freshToken);
      expect(week.owner).not.toBeNull();
      expect(staleOwners.has(week.owner)).toBe(false);
    }
    for (const id of pair.sourceAssignments) expect(await holderOf(id)).toBe(pair.target);
    expect((await fx.invariantBreaches()).doubleBooked).toBe(0);
  });
});
