import type pg from 'pg';
import type { SwapPair } from './swap-pairs';

/** One invariant the run must leave true, and whether it does. */
export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
}

/**
 * Checks what every swap must have preserved, and that every committed swap
 * and nothing else left a trace: nobody double-booked, one attending and two
 * residents per block, calls following the attending, each pair in the state
 * its last committed swap left it, versions bumped once per swap, one record
 * per swap, and no lock rows created (the bench seeds them all).
 */
export async function checkBenchSchedule(
  db: pg.ClientBase,
  pairs: readonly SwapPair[],
  committedSwaps: number,
): Promise<CheckResult[]> {
  const counts = (
    await db.query<
      Record<'doubled' | 'bad_blocks' | 'stray_calls' | 'records' | 'lock_rows', number>
    >(`
      select
        (select count(*)::int from (select 1 from assignment group by block_id, person_id having count(*) > 1) x) as doubled,
        (select count(*)::int from block b where
           (select count(*) from assignment a join person p on p.id = a.person_id
            where a.block_id = b.id and p.kind = 'faculty') <> 1
           or (select count(*) from assignment a where a.block_id = b.id) <> 3) as bad_blocks,
        (select count(*)::int from call_assignment c where c.person_id is distinct from (
           select a.person_id from assignment a join block b on b.id = a.block_id join person p on p.id = a.person_id
           where b.date = c.date and b.half = 'AM' and p.kind = 'faculty')) as stray_calls,
        (select count(*)::int from swap_record) as records,
        (select count(*)::int from faculty_week) as lock_rows`)
  ).rows[0]!;

  // Per week: who holds its faculty blocks, at which versions, and the versions of its calls and residents.
  const { rows: weeks } = await db.query<{
    week: string;
    holders: string[] | null;
    versions: number[] | null;
    residents: number[] | null;
    calls: number[] | null;
  }>(`
    select w.week::text as week, w.holders, w.versions, w.residents, c.calls
    from (select date_trunc('week', b.date)::date as week,
                 array_agg(distinct a.person_id::text) filter (where p.kind = 'faculty') as holders,
                 array_agg(distinct a.version) filter (where p.kind = 'faculty') as versions,
                 array_agg(distinct a.version) filter (where p.kind = 'resident') as residents
          from assignment a join block b on b.id = a.block_id join person p on p.id = a.person_id
          group by 1) w
    left join (select date_trunc('week', date)::date as week, array_agg(distinct version) as calls
               from call_assignment group by 1) c on c.week = w.week`);
  const byWeek = new Map(weeks.map((w) => [w.week, w]));
  const stateErrors: string[] = [];
  const versionErrors: string[] = [];
  for (const pair of pairs.filter((p) => !p.broken)) {
    const holders = pair.flipped ? [pair.b, pair.a] : [pair.a, pair.b];
    for (const [i, week] of [pair.weekA, pair.weekB].entries()) {
      const w = byWeek.get(week);
      if (!w || w.holders?.join() !== holders[i]) {
        stateErrors.push(`pair ${pair.index} week ${week}`);
        continue;
      }
      const want = String(1 + pair.swaps);
      if ([w.versions, w.calls].some((v) => v?.join() !== want) || w.residents?.join() !== '1')
        versionErrors.push(
          `pair ${pair.index} week ${week}: versions ${w.versions?.join()}, calls ${w.calls?.join()}, residents ${w.residents?.join()}; want ${want}`,
        );
    }
  }
  const broken = pairs.filter((p) => p.broken).length;
  const first = (errors: string[], otherwise: string) =>
    errors.length === 0 ? otherwise : errors.slice(0, 3).join('; ');
  return [
    {
      name: 'no double booking',
      ok: counts.doubled === 0,
      detail: `${counts.doubled} (block, person) pairs booked twice`,
    },
    {
      name: 'one attending and two residents per block',
      ok: counts.bad_blocks === 0,
      detail: `${counts.bad_blocks} blocks off`,
    },
    {
      name: 'calls follow the FMIT attending',
      ok: counts.stray_calls === 0,
      detail: `${counts.stray_calls} calls held by someone else`,
    },
    {
      name: 'each pair as its last committed swap left it',
      ok: stateErrors.length === 0,
      detail: first(
        stateErrors,
        `${pairs.length - broken} pairs checked${broken ? `, ${broken} skipped after a failure` : ''}`,
      ),
    },
    {
      name: 'moved rows bumped one version per swap, residents untouched',
      ok: versionErrors.length === 0,
      detail: first(versionErrors, 'all versions = 1 + swaps of the pair'),
    },
    {
      name: 'swap_record count = committed swaps',
      ok: counts.records === committedSwaps,
      detail: `${counts.records} records, ${committedSwaps} swaps committed`,
    },
    {
      name: 'no faculty-week lock rows created',
      ok: counts.lock_rows === pairs.length * 10,
      detail: `${counts.lock_rows} rows`,
    },
  ];
}
