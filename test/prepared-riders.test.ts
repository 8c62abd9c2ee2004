import type { MikroORM } from '@mikro-orm/postgresql';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createOrm } from '../src/db/orm';
import { preparedStatement, runPrepared, withRiders } from '../src/db/prepared-statement';
import type { TransactionRunner } from '../src/db/transaction-runner';
import { budgetOf } from '../src/domain/call-budget';
import { testTransactionRunner } from './support/test-transactions';
import { createTestDatabase, type TestDatabase } from './support/test-database';

let db: TestDatabase;
let orm: MikroORM;
let runner: TransactionRunner;
beforeAll(async () => {
  db = await createTestDatabase();
  orm = await createOrm({ clientUrl: db.url, poolMax: 2 });
  runner = testTransactionRunner(orm);
  await orm.em.fork().execute('create table rider_log (name text not null, n int not null)');
});
afterAll(async () => {
  await orm?.close();
  await db?.drop();
});

const FIRST = preparedStatement<{ total: number }>(
  'rider_first',
  `insert into rider_log (name, n) values ($1, $2) returning $2::int + 1 as total`,
);
const NOTHING = preparedStatement<{ total: number }>(
  'rider_nothing',
  `update rider_log set n = n where name = $1 and false returning n as total`,
);
const LOG = preparedStatement<object>(
  'rider_log',
  `insert into rider_log (name, n) values ($1, $2::int * 10)`,
);
// Side effects through a function: the audit row's way (audit_append).
const CALL = preparedStatement<object>('rider_call', `select set_config('rider.seen', $1, true)`);

async function logged(): Promise<string[]> {
  const rows = await orm.em
    .fork()
    .execute<{ name: string; n: number }[]>('select name, n from rider_log order by name');
  return rows.map((r) => `${r.name}=${r.n}`);
}

it('runs the riders in the first statement, their placeholders numbered after its own', async () => {
  await orm.em.fork().execute('truncate rider_log');
  const rows = await runner.transactionally(budgetOf(5_000), (em) =>
    runPrepared(em, withRiders(FIRST, [LOG, LOG]), ['first', 1, 'second', 2, 'third', 3]),
  );
  expect(rows).toEqual([{ total: 2 }]);
  expect(await logged()).toEqual(['first=1', 'second=20', 'third=30']);
});

it('runs every rider when the first statement returns no row', async () => {
  await orm.em.fork().execute('truncate rider_log');
  const seen = await runner.transactionally(budgetOf(5_000), async (em) => {
    const rows = await runPrepared(em, withRiders(NOTHING, [LOG, CALL]), [
      'absent',
      'logged',
      4,
      'called',
    ]);
    expect(rows).toEqual([]);
    const [setting] = await em.execute<{ seen: string }[]>(
      `select current_setting('rider.seen', true) as seen`,
    );
    return setting?.seen;
  });
  expect(seen).toBe('called');
  expect(await logged()).toEqual(['logged=40']);
});

it('is the first statement itself when nothing rides along', () => {
  expect(withRiders(FIRST, [])).toBe(FIRST);
});
