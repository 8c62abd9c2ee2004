import type { Cluster, Redis } from 'ioredis';

/**
 * Lua scripts that act on several lock keys atomically. ioredis runs a defined
 * command with EVALSHA and falls back to EVAL when the server lacks the script.
 * Every key of one call shares a hash tag, so they stay in one Cluster slot.
 */

// KEYS: the lock keys, then the fencing counter. ARGV: owner token, ttl ms, the
// lowest fencing token the caller knows to be in use (so a Redis that lost the
// counter never hands out a token PostgreSQL would refuse as old).
// Returns the new fencing token, or 0 when any key is held by someone else.
//
// A failover can still lose the counter together with a grant (replication is
// asynchronous), and the promoted replica then hands the same token to a second
// grant. Nothing here orders the two: PostgreSQL does, by recording each
// grant's owner token next to its fencing token (src/write-path/faculty-week-rows.ts).
const ACQUIRE = `
local n = #KEYS - 1
for i = 1, n do
  if not redis.call('set', KEYS[i], ARGV[1], 'NX', 'PX', ARGV[2]) then
    for j = 1, i - 1 do redis.call('del', KEYS[j]) end
    return 0
  end
end
local counter = KEYS[#KEYS]
local floor = tonumber(ARGV[3])
if tonumber(redis.call('get', counter) or '0') < floor then
  redis.call('set', counter, floor)
end
return redis.call('incr', counter)`;

// Deletes only the keys still holding this owner's token; returns how many.
const RELEASE = `
local released = 0
for i = 1, #KEYS do
  if redis.call('get', KEYS[i]) == ARGV[1] then
    redis.call('del', KEYS[i])
    released = released + 1
  end
end
return released`;

// Extends all keys, or none if any is no longer this owner's; returns 1 or 0.
const EXTEND = `
for i = 1, #KEYS do
  if redis.call('get', KEYS[i]) ~= ARGV[1] then return 0 end
end
for i = 1, #KEYS do redis.call('pexpire', KEYS[i], ARGV[2]) end
return 1`;

/** The narrow client the lock needs: a standalone, Sentinel or Cluster ioredis client. */
export type LockRedisClient = Redis | Cluster;

interface LockCommands {
  swapLockAcquire(numKeys: number, ...keysAndArgs: (string | number)[]): Promise<number>;
  swapLockRelease(numKeys: number, ...keysAndArgs: (string | number)[]): Promise<number>;
  swapLockExtend(numKeys: number, ...keysAndArgs: (string | number)[]): Promise<number>;
}

/** Registers the scripts on `client` (idempotent) and returns them typed. */
export function lockCommands(client: LockRedisClient): LockCommands {
  const withScripts = client as LockRedisClient & Partial<LockCommands>;
  if (!withScripts.swapLockAcquire) {
    client.defineCommand('swapLockAcquire', { lua: ACQUIRE });
    client.defineCommand('swapLockRelease', { lua: RELEASE });
    client.defineCommand('swapLockExtend', { lua: EXTEND });
  }
  return withScripts as LockCommands;
}
