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
