import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClusterSetup, startClusterSetup } from './support/redis-cluster';
import { RedisFleet } from './support/redis-server';
import { untilSettled } from './support/retried-call';
import { ScheduleFixture } from './support/schedule-fixture';
import { fmitSwapPair } from './support/swap-pair';
import { createTestDatabase, type TestDatabase } from './support/test-database';
import { startTestService, type TestService } from './support/test-service';

/**
 * The service on a real Redis Cluster (three masters with a replica each;
 * test/support/redis-cluster.ts). Every lock key and the fencing counter share
 * the key prefix's hash tag, so the multi-key scripts run on one node; when
 * that node's master is killed, its replica takes the slot over and swaps,
 * retried with the same request_id through the gap, go on there, each once.
 */

const W1 = '2030-03-04';
const W2 = '2030-03-18';

let db: TestDatabase;
let fx: ScheduleFixture;
let cluster: ClusterSetup;
let ts: TestService;
const fleet = new RedisFleet();
const prefix = `c${randomUUID().slice(0, 8)}`;
const counterKey = `{${prefix}}:fencing`;

beforeAll(async () => {
  db = await createTestDatabase();
  fx = await ScheduleFixture.connect(db.url);
  cluster = await startClusterSetup(fleet);
  ts = await startTestService(
    {
      REDIS_CLUSTER_NODES: cluster.seedList,
      LOCK_KEY_PREFIX: prefix,
      LOCK_FALLBACK: 'fail',
      BREAKER_FAILURE_THRESHOLD: '3',
      BREAKER_COOLDOWN_MS: '200',
    },
    { database: db },
  );
});
afterAll(async () => {
  await ts?.close();
  await fx?.close();
  await db?.drop();
  await fleet.close();
});

async function holderOf(assignmentId: string): Promise<string> {
  const { rows } = await fx.db.query<{ person_id: string }>(
    'select person_id from assignment where id = $1',
    [assignmentId],
  );
  return rows[0]!.person_id;
}

/** A fresh pair swapped until settled; checks it happened exactly once and returns its token. */
async function swapOnce(reason: string) {
  const pair = await fmitSwapPair(fx, { sourceWeek: W1, targetWeek: W2, reason });
  const request = pair.request();
  const { final, retried } = await untilSettled(() => ts.api.executeSwap(request));
  expect(final).toMatchObject({ ok: true });
  for (const id of pair.sourceAssignments) expect(await holderOf(id)).toBe(pair.target);
  const { rows } = await fx.db.query<{ token: string }>(
    `select fencing_token::text as token from swap_record where source_faculty_id = $1`,
    [pair.source],
  );
  expect(rows).toHaveLength(1);
  return { retried, token: BigInt(rows[0]!.token) };
}

describe('swaps on a Redis Cluster', () => {
  it('lock every key of a swap on the node of the prefix hash tag, with one script', async () => {
    const before = ts.service.locks.stats().acquired.redis;
    const { token, retried } = await swapOnce('on the cluster');
    expect(retried).toEqual([]);
    expect(ts.service.locks.stats().acquired.redis).toBe(before + 1);
    const owner = await cluster.ownerOf(counterKey);
    expect(BigInt((await owner.client().get(counterKey)) ?? '0')).toBe(token);
  });

  it('keep working when that master is killed and its replica takes over', async () => {
    const { token: before } = await swapOnce('before the kill');
    const { killed, promoted } = await cluster.killOwnerOf(counterKey);
    expect(promoted.port).not.toBe(killed.port);

    const during = await Promise.all(['gap 1', 'gap 2', 'gap 3'].map((r) => swapOnce(r)));
    const after = await swapOnce('after the kill');

    // What callers saw in the gap, if anything, was retryable and settled OK.
    const seen = new Set(during.flatMap((d) => d.retried).map((o) => (o.ok ? 'OK' : o.codeName)));
    for (const code of seen) expect(['UNAVAILABLE', 'ABORTED']).toContain(code);
    expect(after.token).toBeGreaterThan(before);
    expect(BigInt((await promoted.client().get(counterKey)) ?? '0')).toBe(after.token);
    expect((await fx.invariantBreaches()).doubleBooked).toBe(0);
  });
});
