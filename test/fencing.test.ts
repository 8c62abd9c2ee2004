import { randomUUID } from 'node:crypto';
import type { MikroORM } from '@mikro-orm/postgresql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrm } from '../src/db/orm';
import type { FacultyWeekKey } from '../src/schedule/faculty-week-key';
import {
  type FencedOut,
  type FencingGrant,
  lockFacultyWeeks,
} from '../src/write-path/faculty-week-rows';
import { ScheduleFixture } from './support/schedule-fixture';
import { createTestDatabase, type TestDatabase } from './support/test-database';

/**
 * The fence on faculty weeks in PostgreSQL, statement by statement. A Redis
 * failover can lose the fencing counter and hand one token to two grants; the
 * fence must let exactly one of them write a week (the first to fence it),
 * and keep letting that one grant write it again.
 */

let db: TestDatabase;
let orm: MikroORM;
let fx: ScheduleFixture;
beforeAll(async () => {
  db = await createTestDatabase();
  orm = await createOrm({ clientUrl: db.url, poolMax: 2 });
  fx = await ScheduleFixture.connect(db.url);
});
afterAll(async () => {
  await fx?.close();
  await orm?.close();
  await db?.drop();
});

const WEEK = '2030-03-04';

/** One transaction that locks the weeks and fences them under `grant`, as the write context does. */
function fence(keys: FacultyWeekKey[], grant: FencingGrant): Promise<FencedOut[]> {
  return orm.em.fork().transactional((em) => lockFacultyWeeks(em, { written: keys }, grant));
}

async function recorded(key: FacultyWeekKey): Promise<{ token: string; owner: string | null }> {
  const { rows } = await fx.db.query<{ token: string; owner: string | null }>(
    `select fencing_token::text as token, fencing_owner as owner from faculty_week
      where person_id = $1 and week_start = $2`,
    [key.personId, key.week],
  );
  return rows[0]!;
}

async function freshWeek(): Promise<FacultyWeekKey> {
  return { personId: await fx.faculty('core'), week: WEEK };
}

describe('fencing a faculty week', () => {
  it('refuses a second grant with the same token as the grant that fenced the week first', async () => {
    const week = await freshWeek();
    const first = { token: '7', owner: randomUUID() };
    const second = { token: '7', owner: randomUUID() };

    expect(await fence([week], first)).toEqual([]);
    expect(await fence([week], second)).toEqual([{ ...week, token: '7' }]);
    // The refusal changed nothing: the week still names the first grant.
    expect(await recorded(week)).toEqual({ token: '7', owner: first.owner });
  });

  it('lets the grant that fenced the week fence it again', async () => {
    const week = await freshWeek();
    const grant = { token: '7', owner: randomUUID() };

    expect(await fence([week], grant)).toEqual([]);
    expect(await fence([week], grant)).toEqual([]);
    expect(await recorded(week)).toEqual({ token: '7', owner: grant.owner });
  });

  it('refuses an older token and lets a newer one take the week over', async () => {
    const week = await freshWeek();
    const middle = { token: '7', owner: randomUUID() };
    const newer = { token: '8', owner: randomUUID() };

    expect(await fence([week], middle)).toEqual([]);
    expect(await fence([week], { token: '6', owner: randomUUID() })).toEqual([
      { ...week, token: '7' },
    ]);
    expect(await fence([week], newer)).toEqual([]);
    expect(await recorded(week)).toEqual({ token: '8', owner: newer.owner });
    // The grant the newer one overtook may no longer write it, though its token is unchanged.
    expect(await fence([week], middle)).toEqual([{ ...week, token: '8' }]);
  });

  it('refuses a tie with a week fenced before owners were recorded', async () => {
    const week = await freshWeek();
    await fx.db.query(
      `insert into faculty_week (id, person_id, week_start, fencing_token) values ($1, $2, $3, 7)`,
      [randomUUID(), week.personId, week.week],
    );

    expect(await fence([week], { token: '7', owner: randomUUID() })).toEqual([
      { ...week, token: '7' },
    ]);
    expect(await recorded(week)).toEqual({ token: '7', owner: null });
  });

  it('reports only the weeks that refused', async () => {
    const taken = await freshWeek();
    const free = await freshWeek();
    const holder = { token: '7', owner: randomUUID() };
    expect(await fence([taken], holder)).toEqual([]);

    // (The write context then refuses the whole write, and its transaction rolls back.)
    expect(await fence([taken, free], { token: '7', owner: randomUUID() })).toEqual([
      { ...taken, token: '7' },
    ]);
  });
});
