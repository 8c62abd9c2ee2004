import type pg from 'pg';
import { backendPid, connect, waitFor } from './sql-fixtures';

/** How a promise ended, without throwing. */
export type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

export interface DeadlockOutcome<T> {
  /**
   * Whose transaction PostgreSQL aborted with 40P01. The side that has waited
   * longest runs its deadlock check first, so it is normally the service; if
   * the test's side was chosen, the swap simply went through without a retry.
   */
  victim: 'service' | 'test';
  result: Settled<T>;
}

export interface DeadlockPlan<T> {
  url: string;
  database: string;
  /** An assignment of the swap's source week: the swap locks it after its faculty weeks. */
  assignmentId: string;
  /** The source faculty week, which the swap locks first. Its row must already exist. */
  facultyWeek: { personId: string; week: string };
  /** Starts the ExecuteSwap that is to deadlock. */
  call: () => Promise<T>;
}

/**
 * Deadlocks an ExecuteSwap against a raw connection, in the opposite lock
 * order to the service's: the test locks an assignment row, the swap locks its
 * faculty weeks and waits on that row, then the test asks for the swap's
 * faculty week. Whatever PostgreSQL decides, the test's side is rolled back
 * and the call is let finish.
 */
export async function deadlockWith<T>(plan: DeadlockPlan<T>): Promise<DeadlockOutcome<T>> {
  const raw = await connect(plan.url);
  const observer = await connect(plan.url);
  try {
    const rawPid = await backendPid(raw);
    await raw.query('begin');
    await raw.query('select id from assignment where id = $1 for update', [plan.assignmentId]);
    let settled: Settled<T> | undefined;
    const pending = plan.call().then(
      (value): Settled<T> => (settled = { ok: true, value }),
      (error: unknown): Settled<T> => (settled = { ok: false, error }),
    );
    await waitFor('the swap to wait on the test’s row lock', async () => {
      if (settled) throw new Error(`the swap ended before it waited: ${describe(settled)}`);
      return (await waitingOn(observer, plan.database, rawPid)) === 1;
    });
    let victim: 'service' | 'test' = 'service';
    try {
      await raw.query(
        'select id from faculty_week where person_id = $1 and week_start = $2 for update',
        [plan.facultyWeek.personId, plan.facultyWeek.week],
      );
    } catch (error) {
      if ((error as { code?: unknown }).code !== '40P01') throw error;
      victim = 'test';
    }
    await raw.query('rollback');
    return { victim, result: await pending };
  } finally {
    await raw.end().catch(() => undefined);
    await observer.end().catch(() => undefined);
  }
}

/** Sessions of `database` waiting on a lock held by `pid`. */
async function waitingOn(observer: pg.Client, database: string, pid: number): Promise<number> {
  const { rows } = await observer.query(
    `select pid from pg_stat_activity
      where datname = $1 and wait_event_type = 'Lock' and $2 = any(pg_blocking_pids(pid))`,
    [database, pid],
  );
  return rows.length;
}

function describe<T>(settled: Settled<T>): string {
  return settled.ok ? 'OK' : String((settled.error as Error).message ?? settled.error);
}
