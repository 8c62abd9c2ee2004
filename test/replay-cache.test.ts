import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CircuitBreaker } from '../src/coordination/circuit-breaker';
import { CACHE_DELIVERY_MARGIN_MS, IdempotencyStore } from '../src/coordination/idempotency-store';
import { idempotencyScopeOf } from '../src/domain/call-context';
import { SwapType } from '../src/generated/swap/v1/swap';
import { TEST_REDIS_URL } from './support/redis-url';
import type { ScheduleFixture } from './support/schedule-fixture';
import { type TestService, useTestService } from './support/test-service';

const PREFIX = `rc${randomUUID().slice(0, 8)}`;
let ts: TestService;
let fx: ScheduleFixture;
let redis: Redis;
useTestService((started) => ({ ts, fx } = started), {
  REDIS_URL: TEST_REDIS_URL,
  LOCK_KEY_PREFIX: PREFIX,
  IDEMPOTENCY_RETENTION_HOURS: '1',
  // Short, for the replay that waits out a held lock.
  LOCK_WAIT_MS: '300',
});
beforeAll(() => {
  redis = new Redis(TEST_REDIS_URL);
});
// Runs before useTestService's afterAll: hooks after the tests run in reverse order.
afterAll(async () => {
  const keys = await redis?.keys(`{${PREFIX}}:*`);
  if (keys?.length) await redis.del(...keys);
  redis?.disconnect();
});

it('caches a committed answer for no longer than its key lives in PostgreSQL', async () => {
  const a = await fx.faculty('core');
  const b = await fx.faculty('core');
  await fx.assignWeek(a, '2030-05-06');
  const requestId = randomUUID();
  await ts.api.executeSwap({
    sourceFacultyId: a,
    sourceWeek: '2030-05-06',
    targetFacultyId: b,
    swapType: SwapType.SWAP_TYPE_ABSORB,
    reason: 'cache lifetime',
    requestId,
  });
  const scope = idempotencyScopeOf(
    { principal: 'anonymous', onBehalfOf: undefined, peer: '' },
    'ExecuteSwap',
  );
  const key = `{${PREFIX}}:idem:${scope}:${requestId}`;
  // The cache write is not awaited by the call; wait (bounded) until it lands.
  for (let i = 0; i < 100 && (await redis.exists(key)) === 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  // PostgreSQL first, the cache second: the cache's lifetime can only have shrunk since.
  const { rows } = await fx.db.query<{ left: number }>(
    `select floor(extract(epoch from (expires_at - clock_timestamp())) * 1000)::float8 as left
     from idempotency_record where request_id = $1`,
    [requestId],
  );
  const pttl = await redis.pttl(key);
  expect(pttl).toBeGreaterThan(0);
  // One millisecond of rounding between the two clocks' readings.
  expect(pttl).toBeLessThanOrEqual(rows[0]!.left + 1);
});

// The cache is asked while the locks are taken: a hit must still answer when
// the locks cannot be had, as it did when it was asked before them.
it('replays a cached answer while another holder keeps the weeks locked', async () => {
  const a = await fx.faculty('core');
  const b = await fx.faculty('core');
  const week = '2030-06-03';
  await fx.assignWeek(a, week);
  const request = {
    sourceFacultyId: a,
    sourceWeek: week,
    targetFacultyId: b,
    swapType: SwapType.SWAP_TYPE_ABSORB,
    reason: 'replay under a held lock',
    requestId: randomUUID(),
  };
  const first = await ts.api.executeSwap(request);
  const scope = idempotencyScopeOf(
    { principal: 'anonymous', onBehalfOf: undefined, peer: '' },
    'ExecuteSwap',
  );
  const cacheKey = `{${PREFIX}}:idem:${scope}:${request.requestId}`;
  for (let i = 0; i < 100 && (await redis.exists(cacheKey)) === 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  expect(await redis.exists(cacheKey)).toBe(1);
  // Someone else holds a's week for longer than the call may wait: without
  // the cache's answer, the call could only fail ABORTED (LOCK_TIMEOUT).
  const lockKey = `{${PREFIX}}:lock:fw:${a}:${week}`;
  await redis.set(lockKey, 'someone else', 'PX', 60_000);
  try {
    const again = await ts.api.executeSwap(request);
    expect(again.swap?.id).toBe(first.swap?.id);
  } finally {
    await redis.del(lockKey);
  }
  const { rows } = await fx.db.query('select 1 from swap_record where source_faculty_id = $1', [a]);
  expect(rows).toHaveLength(1);
});

// Found on a loaded CI machine: the cache outlived the key by 3 ms, since its
// lifetime counted from when Redis ran the SET, after the lifetime was reckoned.
it('gives up a margin of the key’s life, for the time the SET takes to reach Redis', async () => {
  const client = new Redis(TEST_REDIS_URL);
  const store = new IdempotencyStore(
    { retentionMs: 60_000, keyPrefix: PREFIX },
    {
      client,
      breaker: new CircuitBreaker({
        name: 'redis',
        failureThreshold: 5,
        cooldownMs: 1000,
        log: pino({ level: 'silent' }),
      }),
    },
    pino({ level: 'silent' }),
  );
  try {
    const requestId = randomUUID();
    await store.remember(
      'scope',
      requestId,
      { fingerprint: 'f', response: Buffer.from('r') },
      10_000,
    );
    const pttl = await redis.pttl(`{${PREFIX}}:idem:scope:${requestId}`);
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(10_000 - CACHE_DELIVERY_MARGIN_MS);
  } finally {
    client.disconnect();
  }
});
