import { addDays } from '../domain/calendar';
import type { ScheduleWeek } from '../generated/swap/v1/schedule';
import { SwapType } from '../generated/swap/v1/swap';
import { call, type Connection } from './connection';

/** A swap the load generator executes and rolls back, found in the server's own schedule. */
export interface SwapCandidate {
  sourceFacultyId: string;
  sourceWeek: string;
  targetFacultyId: string;
  /** Empty for an absorb. */
  targetWeek: string;
  swapType: SwapType;
}

/** Every faculty member's schedule over a window of weeks, as the API answered it. */
export interface ScheduleSnapshot {
  firstWeek: string;
  weeks: number;
  /** Faculty id → its weeks. */
  schedules: Map<string, ScheduleWeek[]>;
}

const FMIT = 'FMIT';

/**
 * Reads the schedule through the API: the faculty, and each one's weeks from
 * the server's current week (the earliest upcoming FMIT week it reports).
 */
export async function snapshotSchedule(
  connection: Connection,
  weeks: number,
  firstWeek?: string,
): Promise<ScheduleSnapshot> {
  const { faculty } = await call(
    connection,
    connection.schedule.listFaculty.bind(connection.schedule),
    { weekFrom: firstWeek ?? '' },
  );
  const start =
    firstWeek ??
    faculty
      .flatMap((f) => f.fmitWeeks)
      .sort()
      .at(0);
  if (!start) throw new Error('the schedule has no upcoming FMIT week to swap');
  const schedules = new Map<string, ScheduleWeek[]>();
  for (const f of faculty) {
    const response = await call(
      connection,
      connection.schedule.getFacultySchedule.bind(connection.schedule),
      { facultyId: f.id, weekFrom: start, weeks },
    );
    schedules.set(f.id, response.weeks);
  }
  return { firstWeek: start, weeks, schedules };
}

/** The faculty weeks in which `after` differs from `before` ("<faculty> <week>"). */
export function scheduleDifferences(before: ScheduleSnapshot, after: ScheduleSnapshot): string[] {
  const differences: string[] = [];
  for (const [id, weeks] of before.schedules) {
    const other = after.schedules.get(id) ?? [];
    weeks.forEach((week, i) => {
      if (JSON.stringify(week) !== JSON.stringify(other[i])) differences.push(`${id} ${week.week}`);
    });
  }
  for (const id of after.schedules.keys()) {
    if (!before.schedules.has(id)) differences.push(`${id} (new faculty)`);
  }
  return differences;
}

/**
 * Swaps that should be valid, read off the snapshot: an FMIT week given to
 * someone who holds nothing that week (absorb), or two FMIT weeks traded by
 * two people each free in the other's week (one-to-one). The week the
 * snapshot starts with may have begun, so it is left out. The server has the
 * last word: the caller validates each before use.
 */
export function swapCandidates(snapshot: ScheduleSnapshot): SwapCandidate[] {
  const fmitWeeks = new Map<string, string[]>();
  const freeWeeks = new Map<string, Set<string>>();
  for (const [id, weeks] of snapshot.schedules) {
    fmitWeeks.set(
      id,
      weeks
        .filter((w) => w.week > snapshot.firstWeek && w.days.some((d) => d.am === FMIT))
        .map((w) => w.week),
    );
    freeWeeks.set(
      id,
      new Set(
        weeks
          .filter((w) => w.days.every((d) => !d.am && !d.pm && !d.call && !d.absence))
          .map((w) => w.week),
      ),
    );
  }
  const candidates: SwapCandidate[] = [];
  for (const [a, aWeeks] of fmitWeeks) {
    for (const aWeek of aWeeks) {
      for (const [b, bFree] of freeWeeks) {
        if (a === b || !bFree.has(aWeek)) continue;
        candidates.push({
          sourceFacultyId: a,
          sourceWeek: aWeek,
          targetFacultyId: b,
          targetWeek: '',
          swapType: SwapType.SWAP_TYPE_ABSORB,
        });
        for (const bWeek of fmitWeeks.get(b) ?? []) {
          if (freeWeeks.get(a)?.has(bWeek)) {
            candidates.push({
              sourceFacultyId: a,
              sourceWeek: aWeek,
              targetFacultyId: b,
              targetWeek: bWeek,
              swapType: SwapType.SWAP_TYPE_ONE_TO_ONE,
            });
          }
        }
      }
    }
  }
  return candidates;
}

/** The faculty weeks a swap touches, with the weeks either side (which the back-to-back rule reads). */
function touchedKeys(c: SwapCandidate): string[] {
  return [c.sourceWeek, c.targetWeek]
    .filter(Boolean)
    .flatMap((week) => [-7, 0, 7].map((d) => addDays(week, d)))
    .flatMap((week) => [`${c.sourceFacultyId} ${week}`, `${c.targetFacultyId} ${week}`]);
}

/**
 * Up to `limit` candidates that the server itself calls valid (ValidateSwap)
 * and that touch no faculty week another chosen one touches, so executing one
 * never makes another invalid and each can be executed and rolled back alone.
 * One-to-one swaps are tried first, so the mix has both kinds when it can.
 */
export async function validCandidates(
  connection: Connection,
  candidates: SwapCandidate[],
  limit: number,
): Promise<SwapCandidate[]> {
  const ordered = [
    ...candidates.filter((c) => c.swapType === SwapType.SWAP_TYPE_ONE_TO_ONE),
    ...candidates.filter((c) => c.swapType !== SwapType.SWAP_TYPE_ONE_TO_ONE),
  ];
  const taken = new Set<string>();
  const valid: SwapCandidate[] = [];
  for (const candidate of ordered) {
    if (valid.length >= limit) break;
    const keys = touchedKeys(candidate);
    if (keys.some((k) => taken.has(k))) continue;
    const response = await call(connection, connection.swaps.validateSwap.bind(connection.swaps), {
      ...candidate,
      reason: 'swapctl load',
      requestId: '',
    });
    if (!response.valid) continue;
    for (const k of keys) taken.add(k);
    valid.push(candidate);
  }
  return valid;
}
