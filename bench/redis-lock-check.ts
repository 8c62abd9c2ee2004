import type pg from 'pg';
import type { ScheduleLockStats } from '../src/coordination/schedule-locks';
import type { CheckResult } from './bench-schedule-check';

/**
 * What a Redis-locked service (`who`) must show for its numbers to be those of
 * Redis locks: every grant from Redis (no fallback to advisory locks), no lease
 * lost, and one fencing token recorded per swap it committed. `otherGrants`
 * are swaps that wrote a token without the service (the raw path).
 */
export async function checkRedisLocking(
  db: pg.ClientBase,
  stats: ScheduleLockStats,
  who = 'service-redis',
  otherGrants: ReadonlyArray<{ who: string; grants: number }> = [],
): Promise<CheckResult[]> {
  const { rows } = await db.query<{ records: number; weeks: number; highest: string | null }>(`
    select (select count(*)::int from swap_record where fencing_token is not null) as records,
           (select count(*)::int from faculty_week where fencing_token is not null) as weeks,
           (select max(fencing_token)::text from faculty_week) as highest`);
  const { records, weeks, highest } = rows[0]!;
  const others = otherGrants.reduce((n, o) => n + o.grants, 0);
  const advisory = stats.acquired.postgres + stats.fallbacks + stats.refusedUnavailable;
  return [
    {
      name: `${who} locked in Redis only`,
      ok: stats.acquired.redis > 0 && advisory === 0 && stats.timeouts === 0,
      detail: `${stats.acquired.redis} Redis grants, ${stats.acquired.postgres} advisory, ${stats.fallbacks} fallbacks, ${stats.timeouts} timeouts`,
    },
    {
      name: 'no Redis lease lost or released after expiry',
      ok: stats.lost === 0 && stats.releaseNotHeld === 0,
      detail: `${stats.lost} lost, ${stats.releaseNotHeld} released late`,
    },
    {
      name: 'one fencing token per Redis-locked swap',
      ok: records === stats.acquired.redis + others && weeks > 0,
      detail:
        `${records} swap_records carry a token, ${stats.acquired.redis} grants to ${who}` +
        otherGrants.map((o) => ` + ${o.grants} to ${o.who}`).join('') +
        `; ${weeks} faculty weeks fenced, highest token ${highest ?? '-'}`,
    },
  ];
}
