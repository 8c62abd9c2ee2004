/**
 * A swap's row changes are checked against the versions its facts read
 * (issue 14). A writer that bypasses the faculty-week locks and changes a row
 * between the read and the move makes the move raise MikroORM's
 * OptimisticLockError, which the transaction runner retries on fresh facts:
 * the swap commits once, over the other writer's change, never undoing it.
 * Run on both ways of writing the moves (prepared statements, and the ORM's).
 */
import { describe, expect, it } from 'vitest';
import type { TransactionStats } from '../src/db/transaction-stats';
import { connect, waitFor } from './support/sql-fixtures';
import { fmitSwapPair } from './support/swap-pair';
import { useTestService, type ServiceAndFixture } from './support/test-service';

describe.each(['prepared', 'orm'] as const)('SCHEDULE_WRITES=%s', (writes) => {
  let ts: ServiceAndFixture['ts'];
  let fx: ServiceAndFixture['fx'];
  useTestService((started) => ({ ts, fx } = started), { SCHEDULE_WRITES: writes });

  const retriesSince = (before: TransactionStats) =>
    (ts.service.transactions.stats().retries.optimistic_lock ?? 0) -
    (before.retries.optimistic_lock ?? 0);

  it('retries a swap whose assignment got a new version after the facts were read', async () => {
    const pair = await fmitSwapPair(fx, {
      sourceWeek: '2030-03-04',
      targetWeek: '2030-03-18',
      reason: 'stale version',
    });
    const [changed] = pair.sourceAssignments;
    const before = ts.service.transactions.stats();
    // Another writer holds a new version of one row the swap moves, uncommitted:
    // the swap reads the old one (a plain read does not wait), then waits to
    // move (or lock) it; nothing else in this database waits for a lock.
    const rival = await connect(ts.db.url);
    try {
      await rival.query('begin');
      await rival.query('update assignment set version = version + 1 where id = $1', [changed]);
      const swapped = ts.api.executeSwap(pair.request());
      swapped.catch(() => undefined);
      await waitFor('the move to wait for the other writer', async () => {
        const { rows } = await fx.db.query<{ n: number }>(
          `select count(*)::int as n from pg_stat_activity
           where datname = current_database() and wait_event_type = 'Lock'`,
        );
        return rows[0]!.n > 0;
      });
      await rival.query('commit');
      const { swap } = await swapped;

      expect(retriesSince(before)).toBe(1);
      const move = swap!.movedAssignments.find((m) => m.assignmentId === changed);
      // 1 as seeded, 2 by the other writer, 3 by the swap.
      expect(move?.version).toBe(3);
      const { rows } = await fx.db.query<{ person_id: string; version: number }>(
        'select person_id, version from assignment where id = $1',
        [changed],
      );
      expect(rows[0]).toEqual({ person_id: pair.target, version: 3 });
    } finally {
      await rival.query('rollback').catch(() => undefined);
      await rival.end();
    }
  });
});
