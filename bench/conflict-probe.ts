import type pg from 'pg';
import type { Config } from '../src/config';
import { addDays, daysBetween } from '../src/domain/calendar';
import {
  type Conflict,
  conflictSeverityToJSON,
  conflictTypeToJSON,
} from '../src/generated/swap/v1/conflict';
import type { CheckResult } from './bench-schedule-check';
import { detectAlerts } from './floor-swap';
import { holderOf, type SwapPair } from './swap-pairs';
import type { ServiceClients } from './swap-modes';

/** One alert, with people and dates relative to the probed pair. */
type AlertShape = string;

/**
 * Whether the floor's detection statement raises what the service raises
 * when there is something to find. On `pair`, which must be the last one (the
 * weeks after it are free), it plants a cause of every alert type: a blocking
 * absence over each FMIT week (LEAVE_FMIT_OVERLAP), the early holder's Friday
 * call handed to the other (CALL_CASCADE), a second FMIT week a week after the
 * late holder's (BACK_TO_BACK), and five weeks alternating FMIT and clinic for
 * the early holder (EXCESSIVE_ALTERNATING). The floor's statement scans that
 * schedule in a transaction that is rolled back; then the plant is committed
 * and the service's DetectConflicts scans the same weeks. It leaves the plant
 * and the alerts behind, so it runs after every other check.
 */
export async function probeDetection(
  db: pg.ClientBase,
  config: Config,
  pair: SwapPair,
  clients: ServiceClients,
): Promise<CheckResult> {
  const name = "detection: the floor's statement and the service raise the same alerts";
  const firstWeek = addDays(pair.weekA, -7);
  const lastWeek = addDays(pair.weekB, 35);
  const relative = (facultyId: string, week: string) =>
    `${facultyId === pair.a ? 'A' : facultyId === pair.b ? 'B' : 'someone else'} day ${daysBetween(pair.weekA, week)}`;

  let floor: AlertShape[];
  await db.query('begin');
  try {
    await plant(db, pair);
    const rows = await detectAlerts(db, config, firstWeek, lastWeek);
    floor = rows.map((r) =>
      [
        r.type,
        r.severity,
        relative(r.faculty_id, r.week),
        Boolean(r.absence_id),
        r.description,
      ].join(' | '),
    );
  } finally {
    await db.query('rollback');
  }

  await db.query('begin');
  await plant(db, pair);
  await db.query('commit');
  const created = await new Promise<Conflict[]>((resolve, reject) =>
    clients.conflicts.detectConflicts(
      { weekFrom: firstWeek, weekTo: lastWeek },
      clients.metadata(),
      clients.deadline(),
      (error, answer) => (error ? reject(error) : resolve(answer.created)),
    ),
  );
  const service = created.map((c) =>
    [
      conflictTypeToJSON(c.type).replace('CONFLICT_TYPE_', ''),
      conflictSeverityToJSON(c.severity).replace('CONFLICT_SEVERITY_', ''),
      relative(c.facultyId, c.week),
      Boolean(c.absenceId),
      c.description,
    ].join(' | '),
  );

  const tally = (alerts: AlertShape[]) => {
    const types = alerts.map((a) => a.split(' | ')[0]!);
    return [...new Set(types)].map((t) => `${t}×${types.filter((x) => x === t).length}`).join(', ');
  };
  const same = JSON.stringify([...floor].sort()) === JSON.stringify([...service].sort());
  const missing = [
    ...service.filter((s) => !floor.includes(s)),
    ...floor.filter((r) => !service.includes(r)),
  ];
  return {
    name,
    ok: same && new Set(floor.map((a) => a.split(' | ')[0])).size === 4,
    detail:
      `pair ${pair.index} with every cause planted: floor ${floor.length} (${tally(floor) || 'none'}), ` +
      `service ${service.length} (${tally(service) || 'none'})` +
      (same
        ? ', alike in type, severity, person, week, absence and description'
        : `; differ: ${missing[0]}`),
  };
}

/** The causes of every alert type (see probeDetection), in the transaction of `db`. */
async function plant(db: pg.ClientBase, pair: SwapPair): Promise<void> {
  const early = holderOf(pair, pair.weekA);
  const late = holderOf(pair, pair.weekB);
  await db.query(
    `insert into absence (id, person_id, start_date, end_date, type, blocking)
     select gen_random_uuid(), person, week, week + 6, 'vacation', true
     from unnest($1::uuid[], $2::date[]) as t(person, week)`,
    [
      [early, late],
      [pair.weekA, pair.weekB],
    ],
  );
  await db.query(
    'update call_assignment set person_id = $1 where person_id = $2 and date = $3::date + 4',
    [late, early, pair.weekA],
  );
  const work: Array<[day: number, person: string, rotation: string]> = [
    [8, late, 'FMIT'],
    [7, early, 'clinic'],
    [14, early, 'FMIT'],
    [21, early, 'clinic'],
    [28, early, 'FMIT'],
    [35, early, 'clinic'],
  ];
  await db.query(
    `with planted as (
       insert into block (id, date, half)
       select gen_random_uuid(), date, 'AM' from unnest($1::date[]) as date
       returning id, date
     )
     insert into assignment (id, block_id, person_id, role, rotation)
     select gen_random_uuid(), b.id, w.person, 'primary', w.rotation
     from planted b join unnest($1::date[], $2::uuid[], $3::text[]) as w(date, person, rotation) on w.date = b.date`,
    [work.map(([day]) => addDays(pair.weekB, day)), work.map((w) => w[1]), work.map((w) => w[2])],
  );
}
