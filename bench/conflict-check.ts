import type pg from 'pg';
import { ConflictDetector, type DetectionSettings } from '../src/conflicts/conflict-detector';
import { createOrm } from '../src/db/orm';
import { addDays } from '../src/domain/calendar';
import type { CheckResult } from './bench-schedule-check';
import { detectConflicts, type DetectionScope } from './raw-sql-swap';
import type { SwapPair } from './swap-pairs';
import { actorOf } from './swap-drivers';

/**
 * Alerts the run's swaps raised, by the mode that executed them. Every swap
 * runs detection for its weeks, but the bench schedule has no conflict (one
 * FMIT week per person, the pair's two 14 days apart, calls with the attending,
 * no absences), so each mode must raise the same number: none.
 */
export async function checkRunAlerts(
  db: pg.ClientBase,
  modes: readonly string[],
): Promise<CheckResult> {
  const { rows } = await db.query<{ actor: string; swaps: number; alerts: number }>(`
    select r.requested_by as actor, count(distinct r.id)::int as swaps, count(a.id)::int as alerts
    from swap_record r left join conflict_alert a on a.swap_id = r.id
    group by 1`);
  const total = (await db.query<{ n: number }>(`select count(*)::int as n from conflict_alert`))
    .rows[0]!.n;
  const byMode = modes.map((mode) => {
    const row = rows.find((r) => r.actor === actorOf(mode));
    return { mode, swaps: row?.swaps ?? 0, alerts: row?.alerts ?? 0 };
  });
  return {
    name: 'alerts raised by the swaps, per mode (bench schedule: none expected)',
    ok: total === 0 && byMode.every((m) => m.alerts === 0 && m.swaps > 0),
    detail: `${byMode.map((m) => `${m.mode} ${m.alerts} from ${m.swaps} swaps`).join(', ')}; ${total} alerts in all`,
  };
}

/**
 * Whether the raw path's detection statement finds what ConflictDetector
 * finds when there is something to find. On one pair, in a transaction that
 * is rolled back, it plants a blocking absence over each member's FMIT week and
 * hands the first member's Friday call to the second, then runs detection over
 * the window and faculty `detectAround` uses: once with the raw statement over
 * pg, once with ConflictDetector through the ORM.
 */
export async function checkDetectionAgrees(
  db: pg.ClientBase,
  url: string,
  settings: DetectionSettings,
  pairs: readonly SwapPair[],
): Promise<CheckResult> {
  const name = 'detection: raw SQL and ConflictDetector raise the same alerts';
  const pair = pairs.find((p) => !p.broken);
  if (!pair) return { name, ok: false, detail: 'no pair left to probe' };
  const weekOfA = pair.flipped ? pair.weekB : pair.weekA;
  const weekOfB = pair.flipped ? pair.weekA : pair.weekB;
  const scope: DetectionScope = {
    firstWeek: addDays(pair.weekA, -7),
    lastWeek: addDays(pair.weekB, 7),
    causedBySwap: null,
    faculty: [pair.a, pair.b],
  };
  const plant = [
    pair.a,
    weekOfA,
    addDays(weekOfA, 6),
    pair.b,
    weekOfB,
    addDays(weekOfB, 6),
    addDays(weekOfA, 4),
  ];
  // Parameters: a, a's week, its Sunday, b, b's week, its Sunday, a's Friday.
  const plantSql = (p: (n: number) => string) => `
    with absences as (
      insert into absence (id, person_id, start_date, end_date, type, blocking)
      values (gen_random_uuid(), ${p(1)}::uuid, ${p(2)}::date, ${p(3)}::date, 'vacation', true),
             (gen_random_uuid(), ${p(4)}::uuid, ${p(5)}::date, ${p(6)}::date, 'vacation', true)
      returning 1
    )
    update call_assignment set person_id = ${p(4)}::uuid
    where person_id = ${p(1)}::uuid and date = ${p(7)}::date and (select count(*) from absences) = 2`;

  let raw: string[];
  await db.query('begin');
  try {
    await db.query(
      plantSql((n) => `$${n}`),
      plant,
    );
    raw = (await detectConflicts(db, settings, scope)).map((a) => a.type);
  } finally {
    await db.query('rollback');
  }

  const orm = await createOrm({ clientUrl: url, poolMax: 1 });
  let viaOrm: string[];
  try {
    const em = orm.em.fork({ clear: true, useContext: false });
    await em.begin();
    try {
      await em.execute(
        plantSql(() => '?'),
        ormOrder(plant),
      );
      const alerts = await new ConflictDetector(settings).detect(
        em,
        scope.firstWeek,
        scope.lastWeek,
        { faculty: scope.faculty! },
      );
      viaOrm = alerts.map((a) => a.type);
    } finally {
      await em.rollback();
    }
  } finally {
    await orm.close();
  }
  const tally = (types: string[]) =>
    [...new Set(types)]
      .sort()
      .map((t) => `${t}×${types.filter((x) => x === t).length}`)
      .join(', ') || 'none';
  return {
    name,
    ok: raw.length > 0 && tally(raw) === tally(viaOrm),
    detail: `pair ${pair.index} with 2 blocking absences and a Friday call handed over (rolled back): raw ${raw.length} (${tally(raw)}), ConflictDetector ${viaOrm.length} (${tally(viaOrm)})`,
  };
}

/** The plant statement's parameters in the order its `?` placeholders appear. */
function ormOrder(plant: readonly string[]): string[] {
  const at = (n: number) => plant[n - 1]!;
  return [at(1), at(2), at(3), at(4), at(5), at(6), at(4), at(1), at(7)];
}
