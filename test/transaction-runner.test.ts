import { randomUUID } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { IsolationLevel, LockMode, OptimisticLockError } from '@mikro-orm/core';
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { createOrm } from '../src/db/orm';
import { connectionPool, poolStats } from '../src/db/pool-stats';
import {
  type TransactionRunner,
  retryReasonOf,
  type TransactionSettings,
} from '../src/db/transaction-runner';
import { budgetOf } from '../src/domain/call-budget';
import {
  ConcurrencyConflictError,
  DeadlineExceededError,
  PreconditionFailedError,
} from '../src/domain/errors';
import { Person } from '../src/schedule/person.entity';
import {
  backendPid,
  barrier,
  connect,
  gate,
  insertFaculty,
  personRow,
  sessionsOn,
  truncateAll,
  waitFor,
} from './support/sql-fixtures';
import { testTransactionRunner } from './support/test-transactions';
import { createTestDatabase, type TestDatabase } from './support/test-database';

/**
 * The ceiling is far above any budget used here, so whenever a run stops on
 * time it is the budget that stopped it, not the ceiling.
 */
const SETTINGS: TransactionSettings = {
  maxAttempts: 5,
  backoffBaseMs: 5,
  backoffMaxMs: 50,
  timeoutCeilingMs: 120_000,
};
const GENEROUS_BUDGET_MS = 30_000;

let db: TestDatabase;
let orm: MikroORM;
/** Sees only what has committed, and plays the concurrent writer. */
let observer: pg.Client;

beforeAll(async () => {
  db = await createTestDatabase();
  orm = await createOrm({ clientUrl: db.url, poolMax: 4 });
  observer = await connect(db.url);
  // A transaction leaked by a broken runner would otherwise make the next
  // truncate wait out the hook timeout instead of failing with the reason.
  await observer.query(`set lock_timeout = '10s'`);
});

afterAll(async () => {
  await observer?.end();
  await orm?.close();
  await db?.drop();
});

beforeEach(async () => {
  await truncateAll(observer);
});

function runnerWith(overrides: Partial<TransactionSettings> = {}): TransactionRunner {
  return testTransactionRunner(orm, { ...SETTINGS, ...overrides });
}

function newFaculty(em: EntityManager, name: string): Person {
  return em.create(Person, {
    id: randomUUID(),
    name,
    kind: 'faculty',
    pgyLevel: null,
    facultyRole: 'core',
  });
}

async function insertRaw(em: EntityManager, name: string): Promise<string> {
  const id = randomUUID();
  await em.execute(
    `insert into person (id, name, kind, faculty_role) values (?, ?, 'faculty', 'core')`,
    [id, name],
  );
  return id;
}

async function personNames(): Promise<string[]> {
  const { rows } = await observer.query<{ name: string }>('select name from person order by name');
  return rows.map((r) => r.name);
}

/**
 * A separate session that takes a row lock and keeps its transaction open until
 * released. It is released when the test finishes in any case, even by timing
 * out, so a runner that waits forever fails its test instead of hanging the file.
 */
async function holdRowLock(personId: string): Promise<{ pid: number; release(): Promise<void> }> {
  const holder = await connect(db.url);
  await holder.query('begin');
  await holder.query('select id from person where id = $1 for update', [personId]);
  const pid = await backendPid(holder);
  let released: Promise<void> | undefined;
  // Roll back before ending, so the session is idle, not mid-exit, when released.
  const release = () => (released ??= holder.query('rollback').then(() => holder.end()));
  onTestFinished(release);
  return { pid, release };
}

/** Sessions on the test database that are inside a transaction or running a statement. */
async function busySessions(
  except: number[] = [],
): Promise<{ pid: number; state: string | null }[]> {
  const sessions = await sessionsOn(observer, db.name);
  return sessions
    .filter((s) => !except.includes(s.pid) && s.state !== 'idle')
    .map(({ pid, state }) => ({ pid, state }));
}

describe('retryReasonOf', () => {
  it('labels the errors a fresh attempt can fix', () => {
    expect(retryReasonOf(new OptimisticLockError('stale version'))).toBe('optimistic_lock');
    expect(retryReasonOf({ code: '40001' })).toBe('serialization_failure');
    expect(retryReasonOf({ code: '40P01' })).toBe('deadlock_detected');
    expect(retryReasonOf({ code: '55P03' })).toBe('lock_not_available');
  });

  it('leaves everything else to be handled as a final failure', () => {
    for (const error of [
      { code: '57014' }, // statement timeout: the budget is spent, retrying cannot help
      { code: '23505' },
      { code: 40001 },
      new Error('boom'),
      new PreconditionFailedError([{ reason: 'DOUBLE_BOOKING', message: 'taken', subject: 'x' }]),
      'a string',
      null,
      undefined,
    ]) {
      expect(retryReasonOf(error), JSON.stringify(error)).toBeUndefined();
    }
  });
});

describe('TransactionRunner against PostgreSQL', () => {
  it('retries the loser of a real deadlock and both units of work commit once', async () => {
    const runner = runnerWith();
    const a = await insertFaculty(observer, 'Dr A');
    const b = await insertFaculty(observer, 'Dr B');
    const bothHoldTheirFirstLock = barrier(2);

    const lockInOrder = (first: string, second: string) =>
      runner.transactionally(budgetOf(GENEROUS_BUDGET_MS), async (em, attempt) => {
        await em.execute('select id from person where id = ? for update', [first]);
        await bothHoldTheirFirstLock.arrive();
        await em.execute('select id from person where id = ? for update', [second]);
        await em.execute('update person set version = version + 1 where id in (?, ?)', [
          first,
          second,
        ]);
        return attempt;
      });

    const attempts = await Promise.all([lockInOrder(a, b), lockInOrder(b, a)]);

    expect(runner.stats().retries.deadlock_detected).toBeGreaterThanOrEqual(1);
    expect(Math.max(...attempts)).toBeGreaterThan(1);
    // Each unit of work bumped both rows exactly once: the aborted attempt left nothing behind.
    expect((await personRow(observer, a))?.version).toBe(3);
    expect((await personRow(observer, b))?.version).toBe(3);
    expect(runner.stats().committed).toBe(2);
  });

  it('retries a real serialization failure (write skew) under SERIALIZABLE', async () => {
    const runner = runnerWith();
    const a = await insertFaculty(observer, 'Dr A');
    const b = await insertFaculty(observer, 'Dr B');
    const date = '2027-01-05';
    const bothHaveCounted = barrier(2);

    // Each takes the night's call only if nobody has it yet. Under READ
    // COMMITTED both would see zero and both would insert.
    const takeCallIfFree = (personId: string) =>
      runner.transactionally(
        budgetOf(GENEROUS_BUDGET_MS),
        async (em) => {
          const [row] = await em.execute<{ taken: number }[]>(
            'select count(*)::int as taken from call_assignment where date = ?',
            [date],
          );
          await bothHaveCounted.arrive();
          if (row!.taken > 0) return 'already covered';
          await em.execute(
            `insert into call_assignment (id, date, person_id, call_type) values (?, ?, ?, 'overnight')`,
            [randomUUID(), date, personId],
          );
          return 'took the call';
        },
        { isolationLevel: IsolationLevel.SERIALIZABLE },
      );

    const outcomes = await Promise.all([takeCallIfFree(a), takeCallIfFree(b)]);

    expect(outcomes.sort()).toEqual(['already covered', 'took the call']);
    const { rows } = await observer.query('select person_id from call_assignment where date = $1', [
      date,
    ]);
    expect(rows).toHaveLength(1);
    expect(runner.stats().retries.serialization_failure).toBeGreaterThanOrEqual(1);
    // The loser failed at COMMIT; its connection went back to the pool all the same.
    await nextTurn();
    expect(poolStats(await connectionPool(orm))).toMatchObject({ inUse: 0, waiting: 0 });
  });

  it('gives up with CONCURRENCY_CONFLICT when every attempt loses to a concurrent writer', async () => {
    const runner = runnerWith({ maxAttempts: 2 });
    const id = await insertFaculty(observer, 'Dr Original');
    let attempts = 0;

    const error: unknown = await runner
      .transactionally(budgetOf(GENEROUS_BUDGET_MS), async (em) => {
        attempts++;
        const person = await em.findOneOrFail(Person, id);
        // Another session commits a new version between our read and our write.
        await observer.query('update person set version = version + 1 where id = $1', [id]);
        person.name = 'Dr Stale';
      })
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(ConcurrencyConflictError);
    const conflict = error as ConcurrencyConflictError;
    expect(conflict.reason).toBe('CONCURRENCY_CONFLICT');
    expect(conflict.retryAfterMs).toBeGreaterThanOrEqual(0);
    expect(conflict.cause).toBeInstanceOf(OptimisticLockError);
    expect(attempts).toBe(2);
    const stats = runner.stats();
    expect(stats.exhausted).toBe(1);
    expect(stats.retries).toEqual({ optimistic_lock: 1 });
    expect(stats.committed).toBe(0);
    expect(await personRow(observer, id)).toEqual({ name: 'Dr Original', version: 3 });
  });

  it(
    'stops waiting for a row lock when the call budget runs out, leaving no transaction or write behind',
    { timeout: 20_000 },
    async () => {
      const runner = runnerWith();
      const id = await insertFaculty(observer, 'Dr Locked');
      const holder = await holdRowLock(id);

      const run = runner.transactionally(budgetOf(400), async (em) => {
        await insertRaw(em, 'Dr Written Before Waiting');
        em.persist(newFaculty(em, 'Dr Persisted Before Waiting'));
        await em.flush();
        await em.execute('select id from person where id = ? for update', [id]);
      });

      await expect(run).rejects.toBeInstanceOf(DeadlineExceededError);
      expect(runner.stats().deadlineExceeded).toBe(1);
      expect(await busySessions([holder.pid])).toEqual([]);
      expect(await personNames()).toEqual(['Dr Locked']);
    },
  );

  it('takes a real FOR UPDATE lock: another session waits for it until our commit', async () => {
    const runner = runnerWith();
    const id = await insertFaculty(observer, 'Dr Before');
    const lockTaken = gate();
    const finish = gate();

    const run = runner.transactionally(budgetOf(GENEROUS_BUDGET_MS), async (em) => {
      const person = await em.findOneOrFail(Person, id, { lockMode: LockMode.PESSIMISTIC_WRITE });
      person.name = 'Dr After';
      lockTaken.open();
      await finish.promise;
    });
    await lockTaken.promise;

    const other = await connect(db.url);
    try {
      const otherPid = await backendPid(other);
      let otherDone = false;
      const otherRead = other
        .query<{ name: string }>('select name from person where id = $1 for update', [id])
        .finally(() => {
          otherDone = true;
        });

      await waitFor('the other session to block on our row lock', async () => {
        const { rows } = await observer.query<{ waiting: boolean }>(
          `select exists (select 1 from pg_locks where pid = $1 and not granted) and
                  (select wait_event_type = 'Lock' from pg_stat_activity where pid = $1) as waiting`,
          [otherPid],
        );
        return rows[0]?.waiting === true;
      });
      expect(otherDone).toBe(false);

      finish.open();
      await run;
      // FOR UPDATE re-reads the row once the lock is free, so it sees our commit.
      expect((await otherRead).rows).toEqual([{ name: 'Dr After' }]);
    } finally {
      finish.open();
      await other.end();
    }
  });

  it('undoes only the savepoint when work inside it fails; the outer transaction commits', async () => {
    const runner = runnerWith();
    const existing = await insertFaculty(observer, 'Dr Existing');
    const innerFailure = new Error('inner step failed');

    const caught = await runner.transactionally(budgetOf(GENEROUS_BUDGET_MS), async (em) => {
      // Outer changes, deliberately left unflushed when the savepoint opens.
      const person = await em.findOneOrFail(Person, existing);
      person.name = 'Dr Existing Renamed';
      em.persist(newFaculty(em, 'Dr Outer Entity'));
      await insertRaw(em, 'Dr Outer Raw');

      const error = await runner
        .savepoint(em, async (inner) => {
          await insertRaw(inner, 'Dr Inner Raw');
          inner.persist(newFaculty(inner, 'Dr Inner Entity'));
          await inner.flush();
          throw innerFailure;
        })
        .catch((e: unknown) => e);

      em.persist(newFaculty(em, 'Dr Outer After Savepoint'));
      return error;
    });

    expect(caught).toBe(innerFailure);
    expect(await personNames()).toEqual([
      'Dr Existing Renamed',
      'Dr Outer After Savepoint',
      'Dr Outer Entity',
      'Dr Outer Raw',
    ]);
  });

  it(
    'returns every pooled connection and ends every transaction after failures of each kind',
    { timeout: 30_000 },
    async () => {
      const runner = runnerWith({ maxAttempts: 3 });
      const id = await insertFaculty(observer, 'Dr Locked');
      const holder = await holdRowLock(id);
      const refusal = new PreconditionFailedError([
        { reason: 'DOUBLE_BOOKING', message: 'taken', subject: 'x' },
      ]);

      const failures = {
        domainError: async (em: EntityManager) => {
          await insertRaw(em, 'Dr Refused');
          throw refusal;
        },
        retriesExhausted: async (em: EntityManager) => {
          await insertRaw(em, 'Dr Never Locks');
          await em.execute('select id from person where id = ? for update nowait', [id]);
        },
        deadlineExceeded: async (em: EntityManager) => {
          await insertRaw(em, 'Dr Out Of Time');
          await em.execute('select id from person where id = ? for update', [id]);
        },
        syntaxError: async (em: EntityManager) => {
          await insertRaw(em, 'Dr Typo');
          await em.execute('selec 1');
        },
      };
      const budgets = {
        domainError: 5_000,
        retriesExhausted: 5_000,
        deadlineExceeded: 300,
        syntaxError: 5_000,
      };

      for (let round = 0; round < 3; round++) {
        const outcomes = await Promise.allSettled(
          Object.entries(failures).map(([kind, work]) =>
            runner.transactionally(budgetOf(budgets[kind as keyof typeof budgets]), work),
          ),
        );
        const [domain, exhausted, deadline, syntax] = outcomes.map((o) =>
          o.status === 'rejected' ? (o.reason as unknown) : 'unexpectedly committed',
        );
        expect(domain).toBe(refusal);
        expect(exhausted).toBeInstanceOf(ConcurrencyConflictError);
        expect(deadline).toBeInstanceOf(DeadlineExceededError);
        expect((syntax as { code?: string }).code).toBe('42601');
      }
      await holder.release();

      // Connections go back to the pool a few microtasks after the rollback resolves.
      await nextTurn();
      expect(poolStats(await connectionPool(orm))).toMatchObject({ inUse: 0, waiting: 0 });
      expect(await busySessions()).toEqual([]);
      expect(await personNames()).toEqual(['Dr Locked']);
      const stats = runner.stats();
      expect(stats.committed).toBe(0);
      expect(stats.exhausted).toBe(3);
    },
  );

  it('rolls back and rethrows a domain error from the work unchanged, without retrying', async () => {
    const runner = runnerWith();
    const refusal = new PreconditionFailedError([
      {
        reason: 'DOUBLE_BOOKING',
        message: 'already on call that night',
        subject: 'faculty/x/week/2027-01-04',
      },
    ]);
    let attempts = 0;

    await expect(
      runner.transactionally(budgetOf(GENEROUS_BUDGET_MS), async (em) => {
        attempts++;
        em.persist(newFaculty(em, 'Dr Refused'));
        await em.flush();
        throw refusal;
      }),
    ).rejects.toBe(refusal);

    expect(attempts).toBe(1);
    expect(await personNames()).toEqual([]);
    const stats = runner.stats();
    expect(stats.retries).toEqual({});
    expect(stats.rolledBack).toBe(1);
    expect(stats.committed).toBe(0);
  });

  it('refuses to commit once the budget signal is aborted, rejecting with the abort reason', async () => {
    const runner = runnerWith();
    const controller = new AbortController();
    const lockLost = new ConcurrencyConflictError('LOCK_LOST', 'the faculty-week lock was lost', 0);

    await expect(
      runner.transactionally(budgetOf(GENEROUS_BUDGET_MS, controller.signal), async (em) => {
        await insertRaw(em, 'Dr Flushed');
        em.persist(newFaculty(em, 'Dr Pending'));
        controller.abort(lockLost);
      }),
    ).rejects.toBe(lockLost);

    expect(await personNames()).toEqual([]);
    expect(runner.stats().committed).toBe(0);
  });
});

describe('timeouts set when connections open', () => {
  const SESSION_MS = 60_000;
  let sessionOrm: MikroORM;
  beforeAll(async () => {
    // One connection, so every unit of work here runs on the same session.
    sessionOrm = await createOrm({ clientUrl: db.url, poolMax: 1, sessionTimeoutMs: SESSION_MS });
  });
  afterAll(async () => {
    await sessionOrm?.close();
  });

  // In milliseconds, as pg_settings keeps them (current_setting() picks a unit).
  const settingsIn = (em: EntityManager) =>
    em.execute<{ lock: number; statement: number }[]>(
      `select (select setting::int from pg_settings where name = 'lock_timeout') as lock,
              (select setting::int from pg_settings where name = 'statement_timeout') as statement`,
    );

  it('are what a call with more time than the ceiling runs under, with no settings of its own', async () => {
    const runner = testTransactionRunner(sessionOrm, {
      timeoutCeilingMs: SESSION_MS,
      sessionTimeoutMs: SESSION_MS,
    });
    const [settings] = await runner.transactionally(budgetOf(2 * SESSION_MS), settingsIn);
    expect(settings).toEqual({ lock: SESSION_MS, statement: SESSION_MS });

    // Whatever the session has is what such an attempt runs under: it sent nothing.
    await runner.transactionally(budgetOf(2 * SESSION_MS), (em) =>
      em.execute(`set lock_timeout = 7000`),
    );
    const [after] = await runner.transactionally(budgetOf(2 * SESSION_MS), settingsIn);
    expect(after!.lock).toBe(7000);
    await runner.transactionally(budgetOf(2 * SESSION_MS), (em) =>
      em.execute(`set lock_timeout = ${SESSION_MS}`),
    );
  });

  /** Whether the statement opened its own transaction: after a BEGIN it would start later than it. */
  const readOf = (em: EntityManager) =>
    em.execute<{ own: boolean; statement: number }[]>(
      `select transaction_timestamp() = statement_timestamp() as own,
              (select setting::int from pg_settings where name = 'statement_timeout') as statement`,
    );

  it('runs a single read outside a transaction when the session already bounds it', async () => {
    const runner = testTransactionRunner(sessionOrm, {
      timeoutCeilingMs: SESSION_MS,
      sessionTimeoutMs: SESSION_MS,
    });
    const [read] = await runner.outsideTransaction(budgetOf(2 * SESSION_MS), readOf);
    expect(read).toEqual({ own: true, statement: SESSION_MS });
    // The same read in a unit of work follows its BEGIN.
    const [inside] = await runner.transactionally(budgetOf(2 * SESSION_MS), readOf);
    expect(inside!.own).toBe(false);
  });

  it('wraps a single read in a transaction after all when the budget is shorter than the session', async () => {
    const runner = testTransactionRunner(sessionOrm, {
      timeoutCeilingMs: SESSION_MS,
      sessionTimeoutMs: SESSION_MS,
    });
    const [read] = await runner.outsideTransaction(budgetOf(20_000), readOf);
    expect(read!.own).toBe(false);
    expect(read!.statement).toBeGreaterThan(15_000);
    expect(read!.statement).toBeLessThanOrEqual(20_000);
  });

  it('answers DEADLINE_EXCEEDED for a read outside a transaction that runs past the session timeout', async () => {
    const shortOrm = await createOrm({ clientUrl: db.url, poolMax: 1, sessionTimeoutMs: 200 });
    onTestFinished(() => shortOrm.close());
    const runner = testTransactionRunner(shortOrm, {
      timeoutCeilingMs: 200,
      sessionTimeoutMs: 200,
    });
    await expect(
      runner.outsideTransaction(budgetOf(60_000), (em) => em.execute('select pg_sleep(5)')),
    ).rejects.toThrow(DeadlineExceededError);
    const pool = await connectionPool(shortOrm);
    expect(poolStats(pool).inUse).toBe(0);
    const [read] = await runner.outsideTransaction(budgetOf(60_000), readOf);
    expect(read).toEqual({ own: true, statement: 200 });
  });

  it('give way to the shorter budget of a call with less time left', async () => {
    const runner = testTransactionRunner(sessionOrm, {
      timeoutCeilingMs: SESSION_MS,
      sessionTimeoutMs: SESSION_MS,
    });
    const [settings] = await runner.transactionally(budgetOf(20_000), settingsIn);
    // What was left when the attempt began: just under the budget, in ms.
    expect(settings!.lock).toBeGreaterThan(15_000);
    expect(settings!.lock).toBeLessThanOrEqual(20_000);
    expect(settings!.statement).toBe(settings!.lock);
  });
});
