import { addDays } from '../domain/calendar';
import type { FacultyWeekKey } from '../schedule/faculty-week-key';
import type { SwapKind } from './swap-record.entity';

/** A validated request to swap (or absorb) faculty weeks; what ExecuteSwap and ValidateSwap act on. */
export interface SwapCommand {
  sourceFacultyId: string;
  /** Monday of the week the source gives away. */
  sourceWeek: string;
  targetFacultyId: string;
  /** Monday of the week the target gives back; null for ABSORB. */
  targetWeek: string | null;
  swapType: SwapKind;
  reason: string;
}

/**
 * The Friday and Saturday of a week (days after its Monday): the calls that
 * follow whoever works it, and so move with the week.
 */
export const CASCADING_CALL_DAYS = [4, 5] as const;

/** One direction of a swap: `giver`'s work in `week` goes to `receiver`. */
export interface WeekTransfer {
  giver: string;
  receiver: string;
  week: string;
}

/** The transfers a swap is made of: two for ONE_TO_ONE, one for ABSORB. */
export function transfersOf(command: SwapCommand): WeekTransfer[] {
  const forward = {
    giver: command.sourceFacultyId,
    receiver: command.targetFacultyId,
    week: command.sourceWeek,
  };
  if (command.swapType === 'ABSORB' || command.targetWeek === null) return [forward];
  return [
    forward,
    { giver: command.targetFacultyId, receiver: command.sourceFacultyId, week: command.targetWeek },
  ];
}

/** The faculty weeks a swap changes: each swapped week, of both people. */
export function touchedWeeksOf(transfers: readonly WeekTransfer[]): FacultyWeekKey[] {
  return transfers.flatMap((t) => [
    { personId: t.giver, week: t.week },
    { personId: t.receiver, week: t.week },
  ]);
}

/**
 * The receivers' neighbouring weeks, which the back-to-back FMIT rule reads:
 * a swap locks them too, so no concurrent writer can change what it judged.
 */
export function neighbourWeeksOf(transfers: readonly WeekTransfer[]): FacultyWeekKey[] {
  return transfers.flatMap((t) => [
    { personId: t.receiver, week: addDays(t.week, -7) },
    { personId: t.receiver, week: addDays(t.week, 7) },
  ]);
}
