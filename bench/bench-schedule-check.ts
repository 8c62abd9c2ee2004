import type pg from 'pg';
import type { SwapPair } from './swap-pairs';

/** One invariant the schedule must still hold after the run, and whether it does. */
export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
}

/**
 * Checks what every swap must have preserved, and that every committed swap
 * and nothing else left a trace: nobody double-booked, one attending per FMIT
 * block, calls following the attending, each pair in the state its last
 * committed swap left it, versions bumped once per swap, one record per swap.
 */
export async function checkBenchSchedule(
  db: pg.ClientBase,
  pairs: readonly SwapPair[],
  committedSwaps: number,
): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const check = (name: string, ok: boolean, detail: string) => results.push({ name, ok, detail });

  const one = async (sql: string): Promise<number> => {
    const { rows } = await db.query<{ n: number }>(sql);
    return rows[0]!.n;
  };

  const doubleBooked = await one(
    `select count(*)::int as n from (select block_id, person_id from assignment group by 1, 2 having count(*) > 1) x`,
  );
  check(
    'no double booking',
    doubleBooked === 0,
    `${doubleBooked} (block, person) pairs booked twice`,
  );

  const badBlocks = await one(`
    select count(*)::int as n from block b
    where (select count(*) from assignment a join person p on p.id = a.person_id
           where a.block_id = b.id and p.kind = 'faculty') <> 1
       or (select count(*) from assignment a where a.block_id = b.id) <> 3`);
  check('one attending and two residents per block', badBlocks === 0, `${badBlocks} blocks off`);

  const strayCalls = await one(`
    select count(*)::int as n from call_assignment c
    where c.person_id is distinct from (
      select a.person_id from assignment a join block b on b.id = a.block_id join person p on p.id = a.person_id
      where b.date = c.date and b.half = 'AM' and p.kind = 'faculty')`);
  check(
    'calls follow the FMIT attending',
    strayCalls === 0,
    `${strayCalls} calls held by someone else`,
  );

  const { rows: weeks } = await db.query<{
    week: string;
    holder: string | null;
    holders: number;
    min_version: number;
    max_version: number;
    resident_version: number;
    call_version: number | null;
  }>(`
    with weeks as (
      select date_trunc('week', b.date)::date as week,
             min(a.person_id::text) filter (where p.kind = 'faculty') as holder,
             count(distinct a.person_id) filter (where p.kind = 'faculty')::int as holders,
             min(a.version) filter (where p.kind = 'faculty') as min_version,
             max(a.version) filter (where p.kind = 'faculty') as max_version,
             max(a.version) filter (where p.kind = 'resident') as resident_version
      from assignment a join block b on b.id = a.block_id join person p on p.id = a.person_id
      group by 1
    ), calls as (
      select date_trunc('week', c.date)::date as week, max(c.version) as call_version
      from call_assignment c group by 1
    )
    select w.week::text as week, w.holder, w.holders, w.min_version, w.max_version,
           w.resident_version, c.call_version
    from weeks w left join calls c on c.week = w.week`);
  const byWeek = new Map(weeks.map((w) => [w.week, w]));
  const stateErrors: string[] = [];
  const versionErrors: string[] = [];
  for (const pair of pairs) {
    if (pair.broken) continue;
    const expected = pair.flipped
      ? [
          [pair.weekA, pair.b],
          [pair.weekB, pair.a],
        ]
      : [
          [pair.weekA, pair.a],
          [pair.weekB, pair.b],
        ];
    for (const [week, holder] of expected) {
      const w = byWeek.get(week!);
      if (!w || w.holders !== 1 || w.holder !== holder) {
        stateErrors.push(`pair ${pair.index} week ${week}`);
        continue;
      }
      const want = 1 + pair.swaps;
      if (
        w.min_version !== want ||
        w.max_version !== want ||
        w.call_version !== want ||
        w.resident_version !== 1
      ) {
        versionErrors.push(
          `pair ${pair.index} week ${week}: versions ${w.min_version}..${w.max_version}, calls ${w.call_version}, residents ${w.resident_version}; want ${want}`,
        );
      }
    }
  }
  const broken = pairs.filter((p) => p.broken).length;
  check(
    'each pair as its last committed swap left it',
    stateErrors.length === 0,
    stateErrors.length === 0
      ? `${pairs.length - broken} pairs checked${broken ? `, ${broken} skipped after a failure` : ''}`
      : stateErrors.slice(0, 3).join('; '),
  );
  check(
    'moved rows bumped one version per swap, residents untouched',
    versionErrors.length === 0,
    versionErrors.length === 0
      ? 'all versions = 1 + swaps of the pair'
      : versionErrors.slice(0, 3).join('; '),
  );

  const records = await one(`select count(*)::int as n from swap_record`);
  check(
    'swap_record count = committed swaps',
    records === committedSwaps,
    `${records} records, ${committedSwaps} swaps committed`,
  );

  const lockRows = await one(`select count(*)::int as n from faculty_week`);
  check('no faculty-week lock rows created', lockRows === pairs.length * 10, `${lockRows} rows`);
  return results;
}
