import { beforeAll, describe, expect, it } from 'vitest';
import { addDays } from '../src/domain/calendar';
import { ConflictStatus } from '../src/generated/swap/v1/conflict';
import { SwapStatus } from '../src/generated/swap/v1/swap';
import type { ScheduleFixture } from './support/schedule-fixture';
import { truncateAll } from './support/sql-fixtures';
import { type TestService, useTestService } from './support/test-service';

let ts: TestService;
let fx: ScheduleFixture;
useTestService((started) => ({ ts, fx } = started));

const W = '2030-03-04';
const PAGE = 7;
let faculty: string[] = [];

/**
 * Records and alerts that tie on the leading sort key in runs (several swaps
 * requested at the same instant, several alerts in one week), so a cursor that
 * mishandled the id tie-break would skip or repeat rows at a page's edge.
 */
beforeAll(async () => {
  await truncateAll(fx.db);
  faculty = [await fx.faculty(), await fx.faculty(), await fx.faculty()];
  await fx.db.query(
    `insert into swap_record (id, source_faculty_id, source_week, target_faculty_id, target_week, swap_type, status,
                              reason, requested_at, requested_by, executed_at, executed_by, moves, warnings)
     select gen_random_uuid(), f[1 + n % 3], $2::date + 7 * (n % 5), f[1 + (n + 1) % 3], $2::date + 7 * (n % 5 + 2),
            'ONE_TO_ONE', case when n % 4 = 0 then 'ROLLED_BACK' else 'EXECUTED' end, 'paging', 
            timestamptz '2030-01-01' + (n / 3) * interval '1 second', 'test', now(), 'test',
            '{"assignments": [], "calls": []}', '[]'
     from generate_series(1, 100) n, (select $1::uuid[] as f) x`,
    [faculty, W],
  );
  await fx.db.query(
    `insert into conflict_alert (id, faculty_id, type, severity, week_start, status, description, created_at)
     select gen_random_uuid(), f[1 + n / 24], (array['BACK_TO_BACK', 'CALL_CASCADE', 'LEAVE_FMIT_OVERLAP', 'EXCESSIVE_ALTERNATING'])[1 + n % 4],
            'WARNING', $2::date + 7 * ((n / 4) % 6), case when n % 5 = 0 then 'RESOLVED' else 'NEW' end, 'paging', now()
     from generate_series(0, 71) n, (select $1::uuid[] as f) x`,
    [faculty, W],
  );
});

/** Every page of a listing, each page's ids, following the tokens to the end. */
async function pages(list: (token: string) => Promise<{ ids: string[]; next: string }>) {
  const all: string[][] = [];
  let token = '';
  do {
    const page = await list(token);
    all.push(page.ids);
    token = page.next;
  } while (token);
  return all;
}

/** The same pages cut by OFFSET from one ordered query over the same filter. */
async function offsetPages(sql: string, values: unknown[], count: number): Promise<string[][]> {
  const result: string[][] = [];
  for (let page = 0; page < count; page++) {
    const { rows } = await fx.db.query<{ id: string }>(
      `${sql} limit ${PAGE} offset ${page * PAGE}`,
      values,
    );
    result.push(rows.map((r) => r.id));
  }
  return result;
}

describe('ListSwaps', () => {
  const cases = [
    { name: 'no filter', request: () => ({}), where: 'true', values: () => [] },
    {
      name: 'a faculty member',
      request: () => ({ facultyId: faculty[1]! }),
      where: '(source_faculty_id = $1 or target_faculty_id = $1)',
      values: () => [faculty[1]],
    },
    {
      name: 'rolled back, in a range of weeks',
      request: () => ({
        status: SwapStatus.SWAP_STATUS_ROLLED_BACK,
        weekFrom: addDays(W, 7),
        weekTo: addDays(W, 21),
      }),
      where: `status = 'ROLLED_BACK' and (source_week between $1 and $2 or target_week between $1 and $2)`,
      values: () => [addDays(W, 7), addDays(W, 21)],
    },
  ];
  for (const c of cases) {
    it(`pages by cursor exactly as OFFSET does (${c.name})`, async () => {
      const request = c.request();
      const byCursor = await pages(async (pageToken) => {
        const page = await ts.api.listSwaps({ ...request, pageSize: PAGE, pageToken });
        return { ids: page.swaps.map((s) => s.id), next: page.nextPageToken };
      });
      const byOffset = await offsetPages(
        `select id from swap_record where ${c.where} order by requested_at desc, id desc`,
        c.values(),
        byCursor.length,
      );
      expect(byCursor.length).toBeGreaterThan(2);
      expect(byCursor).toEqual(byOffset);
    });
  }
});

describe('ListConflicts', () => {
  const cases = [
    { name: 'no filter', request: () => ({}), where: 'true', values: () => [] },
    {
      name: 'a faculty member, new only',
      request: () => ({ facultyId: faculty[2]!, status: ConflictStatus.CONFLICT_STATUS_NEW }),
      where: `faculty_id = $1 and status = 'NEW'`,
      values: () => [faculty[2]],
    },
    {
      name: 'a range of weeks',
      request: () => ({ weekFrom: addDays(W, 7), weekTo: addDays(W, 28) }),
      where: 'week_start between $1 and $2',
      values: () => [addDays(W, 7), addDays(W, 28)],
    },
  ];
  for (const c of cases) {
    it(`pages by cursor exactly as OFFSET does (${c.name})`, async () => {
      const request = c.request();
      const byCursor = await pages(async (pageToken) => {
        const page = await ts.conflicts.listConflicts({ ...request, pageSize: PAGE, pageToken });
        return { ids: page.conflicts.map((a) => a.id), next: page.nextPageToken };
      });
      const byOffset = await offsetPages(
        `select id from conflict_alert where ${c.where} order by week_start, id`,
        c.values(),
        byCursor.length,
      );
      expect(byCursor.length).toBeGreaterThan(2);
      expect(byCursor).toEqual(byOffset);
    });
  }
});
