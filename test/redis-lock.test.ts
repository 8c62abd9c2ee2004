import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LockAcquireTimeoutError, LockLostError, LockNotHeldError } from '../src/domain/errors';
import { type RedisLease, RedisLock } from '../src/coordination/redis-lock';
import { lockCommands } from '../src/coordination/redis-lock-scripts';
import { waitFor } from './support/sql-fixtures';

/**
 * RedisLock against a real Redis. Every test works under a key prefix of its
 * own and deletes its keys afterwards, so tests never see each other's locks or
 * fencing counters. Failures (expiry, a key taken over, a lost counter) are
 * provoked on the server, not simulated in the client.
 */

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const TTL_MS = 300;

let redis: Redis;
const clients: Redis[] = [];
const leases: RedisLease[] = [];
let prefix: string;

beforeAll(async () => {
  redis = new Redis(REDIS_URL);
  await redis.ping();
});
beforeEach(() => {
  prefix = `rl-${randomUUID().slice(0, 8)}`;
});
afterEach(async () => {
  await Promise.all(leases.splice(0).map((lease) => lease.release().catch(() => undefined)));
  const keys = await keysUnder(prefix);
  if (keys.length > 0) await redis.del(...keys);
});
afterAll(() => {
  for (const client of clients.splice(0)) client.disconnect();
  redis?.disconnect();
});

/** A RedisLock on a connection of its own (the default) or on `client`, under this test's prefix. */
function newLock(options: { ttlMs?: number; client?: Redis } = {}): RedisLock {
  let client = options.client;
  if (!client) {
    client = new Redis(REDIS_URL);
    clients.push(client);
  }
  return new RedisLock(client, { ttlMs: options.ttlMs ?? TTL_MS, keyPrefix: prefix });
}

/** Takes the lease or fails the test; the lease is released after the test in any case. */
async function take(lock: RedisLock, names: readonly string[]): Promise<RedisLease> {
  const lease = await lock.tryAcquire(names);
  if (!lease) throw new Error(`expected to lock ${names.join(', ')}`);
  leases.push(lease);
  return lease;
}

async function keysUnder(keyPrefix: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `{${keyPrefix}}:*`, 'COUNT', 1000);
    found.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  return found;
}

/** What the abort reason of a lease's signal is, once it has fired. */
function lossOf(lease: RedisLease): unknown {
  return lease.signal.reason as unknown;
}

describe('RedisLock', () => {
  it('grants a lease whose key holds its owner token, and release deletes it', async () => {
    const lock = newLock();
    const lease = await take(lock, ['fw:a']);
    expect(lease.keys).toEqual([lock.keyOf('fw:a')]);
    expect(lease.keys[0]).toBe(`{${prefix}}:lock:fw:a`);
    expect(await redis.get(lease.keys[0]!)).toBe(lease.owner);
    const pttl = await redis.pttl(lease.keys[0]!);
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(TTL_MS);

    await lease.release();
    expect(await redis.exists(lease.keys[0]!)).toBe(0);
    expect(lease.signal.aborted).toBe(false);
  });

  it('refuses a second lease while the first is held and grants it after release', async () => {
    const first = newLock();
    const second = newLock();
    const held = await take(first, ['fw:a']);

    expect(await second.tryAcquire(['fw:a'])).toBeUndefined();
    expect(await first.tryAcquire(['fw:a'])).toBeUndefined();
    expect(await redis.get(held.keys[0]!)).toBe(held.owner);

    await held.release();
    const next = await take(second, ['fw:a']);
    expect(next.owner).not.toBe(held.owner);
    expect(await redis.get(next.keys[0]!)).toBe(next.owner);
  });

  // The lease extends itself every ttl/3, so to see the ttl at work the holder
  // has to stop extending. Cutting its connection is what a crashed or
  // partitioned holder looks like: its extensions fail, it learns it lost the
  // lease, and the key expires on the server on its own.
  it('expires after its ttl once the holder can no longer extend it', async () => {
    const holderClient = new Redis(REDIS_URL);
    clients.push(holderClient);
    const holder = newLock({ client: holderClient });
    const other = newLock();
    const lease = await take(holder, ['fw:a']);
    const key = lease.keys[0]!;
    expect(await redis.get(key)).toBe(lease.owner);

    holderClient.disconnect();

    await waitFor('the cut-off holder to notice it lost the lease', () => lease.signal.aborted);
    expect(lossOf(lease)).toBeInstanceOf(LockLostError);
    expect((lossOf(lease) as LockLostError).keys).toEqual([key]);
    await waitFor('the key to expire', async () => (await redis.exists(key)) === 0);
    const next = await take(other, ['fw:a']);
    expect(await redis.get(key)).toBe(next.owner);
  });

  it('keeps a lease alive past its ttl by extending it', async () => {
    const lease = await take(newLock(), ['fw:a', 'fw:b']);

    await sleep(3 * TTL_MS);

    expect(lease.signal.aborted).toBe(false);
    for (const key of lease.keys) {
      expect(await redis.get(key)).toBe(lease.owner);
      expect(await redis.pttl(key)).toBeGreaterThan(0);
    }
    await expect(lease.extend()).resolves.toBeUndefined();
  });

  it('refuses release and extension with another owner token', async () => {
    const lease = await take(newLock({ ttlMs: 10_000 }), ['fw:a']);
    const key = lease.keys[0]!;
    // The scripts themselves, called as an intruder would.
    const scripts = lockCommands(redis);

    expect(await scripts.swapLockExtend(1, key, 'not-the-owner', 600_000)).toBe(0);
    expect(await redis.pttl(key)).toBeLessThanOrEqual(10_000);
    expect(await scripts.swapLockRelease(1, key, 'not-the-owner')).toBe(0);
    expect(await redis.get(key)).toBe(lease.owner);
    expect(lease.signal.aborted).toBe(false);
  });

  it('tells a holder whose key another owner took that it lost the lease', async () => {
    const stale = await take(newLock({ ttlMs: 10_000 }), ['fw:a', 'fw:b']);
    // As if the key had expired while the holder was stalled, and someone else took it.
    await redis.del(stale.keys[1]!);
    const current = await take(newLock({ ttlMs: 10_000 }), ['fw:b']);

    const extended = await stale.extend().catch((e: unknown) => e);
    expect(extended).toBeInstanceOf(LockLostError);
    expect(stale.signal.aborted).toBe(true);
    expect(lossOf(stale)).toBeInstanceOf(LockLostError);
    // An extension is all or nothing: the key still ours was not extended either.
    expect(await redis.pttl(stale.keys[0]!)).toBeLessThanOrEqual(10_000);

    const released = await stale.release().catch((e: unknown) => e);
    expect(released).toBeInstanceOf(LockNotHeldError);
    expect((released as LockNotHeldError).heldCount).toBe(1);
    expect(await redis.exists(stale.keys[0]!)).toBe(0);
    expect(await redis.get(current.keys[0]!)).toBe(current.owner);
    expect(current.signal.aborted).toBe(false);
  });

  it('does not report a lease lost by an extension that fails after release was asked for', async () => {
    const client = new Redis(REDIS_URL);
    clients.push(client);
    const lease = await take(newLock({ client }), ['fw:a']);
    // Writes stall, so the next extension (every ttl/3) is sent and left waiting for its answer.
    await redis.call('CLIENT', 'PAUSE', '5000', 'WRITE');
    try {
      await sleep(TTL_MS / 3 + 100);
      const released = lease.release().catch((e: unknown) => e);
      // The connection drops: the extension still in flight fails, after the work was done.
      client.disconnect();
      expect(await released).toBeInstanceOf(Error);
    } finally {
      await redis.call('CLIENT', 'UNPAUSE');
    }
    await sleep(50);
    expect(lease.signal.aborted).toBe(false);
  });

  it('gives up a blocking acquire at its wait limit with LockAcquireTimeoutError', async () => {
    await take(newLock({ ttlMs: 10_000 }), ['fw:a']);
    const waiter = newLock();

    const error = await waiter.acquire(['fw:a'], Date.now() + 150).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(LockAcquireTimeoutError);
    const timeout = error as LockAcquireTimeoutError;
    expect(timeout.attempts).toBeGreaterThan(1);
    expect(timeout.keys).toEqual(['fw:a']);
  });

  it('grants a blocking acquire once the holder releases', async () => {
    const held = await take(newLock({ ttlMs: 10_000 }), ['fw:a']);
    const waiting = newLock().acquire(['fw:a'], Date.now() + 10_000);
    await sleep(50);
    await held.release();

    const lease = await waiting;
    leases.push(lease);
    expect(await redis.get(lease.keys[0]!)).toBe(lease.owner);
  });

  it('hands out strictly increasing fencing tokens, across two locks sharing Redis', async () => {
    const locks = [newLock(), newLock()];
    const tokens: bigint[] = [];
    for (let i = 0; i < 40; i++) {
      const lease = await take(locks[i % 2]!, ['fw:a']);
      tokens.push(BigInt(lease.fencingToken));
      await lease.release();
    }
    for (let i = 1; i < tokens.length; i++) expect(tokens[i]).toBeGreaterThan(tokens[i - 1]!);

    // Concurrent grants on distinct keys: all distinct, all above every earlier grant.
    const concurrent = await Promise.all(
      Array.from({ length: 20 }, (_, i) => take(locks[i % 2]!, [`fw:c${i}`])),
    );
    const later = concurrent.map((lease) => BigInt(lease.fencingToken));
    expect(new Set(later).size).toBe(later.length);
    for (const token of later) expect(token).toBeGreaterThan(tokens.at(-1)!);
  });

  it('does not spend a fencing token on a refused acquisition', async () => {
    const lock = newLock();
    const counter = `{${prefix}}:fencing`;
    await take(lock, ['fw:a']);
    const before = await redis.get(counter);

    expect(await newLock().tryAcquire(['fw:b', 'fw:a'])).toBeUndefined();

    expect(await redis.get(counter)).toBe(before);
  });

  it('repeats a token, under another owner, when a failover lost the counter with a grant', async () => {
    const counter = `{${prefix}}:fencing`;
    const before = '41';
    await redis.set(counter, before);
    const lost = await take(newLock(), ['fw:a']);
    expect(lost.fencingToken).toBe('42');
    await lost.release();

    // The promoted replica has the counter as it was before the lost grant.
    await redis.set(counter, before);
    const again = await take(newLock(), ['fw:a']);

    // Redis alone cannot order the two: same token, told apart only by owner
    // (PostgreSQL's fence records both; test/fencing.test.ts).
    expect(again.fencingToken).toBe(lost.fencingToken);
    expect(again.owner).not.toBe(lost.owner);
    await again.release();
  });

  it('resumes above the fencing floor after Redis lost the counter', async () => {
    const counter = `{${prefix}}:fencing`;
    const lock = newLock();
    let last = 0n;
    for (let i = 0; i < 5; i++) {
      const lease = await take(lock, ['fw:a']);
      last = BigInt(lease.fencingToken);
      await lease.release();
    }

    await redis.del(counter);
    // A lock that has never seen a token starts the counter over: the hazard.
    const forgetful = await take(newLock(), ['fw:b']);
    expect(BigInt(forgetful.fencingToken)).toBeLessThanOrEqual(last);
    // The lock that granted the earlier tokens remembers them as its floor.
    const resumed = await take(lock, ['fw:c']);
    expect(BigInt(resumed.fencingToken)).toBeGreaterThan(last);

    await redis.del(counter);
    // A lock told the highest token recorded elsewhere (by the database) resumes above it.
    const told = newLock();
    told.raiseFencingFloor('1000000');
    told.raiseFencingFloor('5');
    const above = await take(told, ['fw:d']);
    expect(above.fencingToken).toBe('1000001');
    expect(await redis.get(counter)).toBe('1000001');
  });

  it.each(['fw:a', 'fw:b', 'fw:c'])(
    'sets none of several keys when %s is held, and sets and releases them together',
    async (held) => {
      const holder = await take(newLock({ ttlMs: 10_000 }), [held]);
      const lock = newLock({ ttlMs: 10_000 });
      const names = ['fw:c', 'fw:a', 'fw:b', 'fw:a'];

      expect(await lock.tryAcquire(names)).toBeUndefined();
      for (const name of ['fw:a', 'fw:b', 'fw:c'].filter((n) => n !== held)) {
        expect(await redis.exists(lock.keyOf(name))).toBe(0);
      }
      expect(await redis.get(lock.keyOf(held))).toBe(holder.owner);

      await holder.release();
      const lease = await take(lock, names);
      expect(lease.keys).toEqual(['fw:a', 'fw:b', 'fw:c'].map((n) => lock.keyOf(n)));
      for (const key of lease.keys) expect(await redis.get(key)).toBe(lease.owner);

      await lease.release();
      for (const key of lease.keys) expect(await redis.exists(key)).toBe(0);
    },
  );
});
