import { InvalidArgumentError } from '../domain/errors';
import {
  type ExecuteSwapRequest,
  type ListSwapsRequest,
  type Swap,
  SwapStatus,
  SwapType,
  SwapView,
} from '../generated/swap/v1/swap';
import type { SwapCommand } from '../swaps/swap-command';
import type { ListedSwap, SwapFilter, SwapListView } from '../swaps/swap-queries';
import type { SwapKind, SwapRecord, SwapStatusName } from '../swaps/swap-record.entity';
import {
  optionalText,
  optionalUuid,
  requireEnum,
  requireUuid,
  requireWeek,
  listWindowOf,
} from './request-fields';

const SWAP_TYPES = new Map<number, SwapKind>([
  [SwapType.SWAP_TYPE_ONE_TO_ONE, 'ONE_TO_ONE'],
  [SwapType.SWAP_TYPE_ABSORB, 'ABSORB'],
]);
const STATUS_TO_PROTO: Record<SwapStatusName, SwapStatus> = {
  EXECUTED: SwapStatus.SWAP_STATUS_EXECUTED,
  ROLLED_BACK: SwapStatus.SWAP_STATUS_ROLLED_BACK,
};
const STATUS_FROM_PROTO = new Map<number, SwapStatusName>(
  Object.entries(STATUS_TO_PROTO).map(([name, value]) => [value, name as SwapStatusName]),
);

/** The fields ExecuteSwap and ValidateSwap share. */
export type SwapRequestFields = Omit<ExecuteSwapRequest, 'requestId'>;

/** Turns a request into a command, or throws INVALID_ARGUMENT naming the first bad field. */
export function toSwapCommand(request: SwapRequestFields): SwapCommand {
  const sourceFacultyId = requireUuid('source_faculty_id', request.sourceFacultyId);
  const sourceWeek = requireWeek('source_week', request.sourceWeek);
  const targetFacultyId = requireUuid('target_faculty_id', request.targetFacultyId);
  const swapType = requireEnum(
    'swap_type',
    request.swapType,
    SWAP_TYPES,
    'SWAP_TYPE_ONE_TO_ONE, SWAP_TYPE_ABSORB',
  );
  let targetWeek: string | null = null;
  if (swapType === 'ONE_TO_ONE') {
    targetWeek = requireWeek('target_week', request.targetWeek);
  } else if (request.targetWeek) {
    throw new InvalidArgumentError(
      'target_week',
      'must be empty for SWAP_TYPE_ABSORB (the target gives nothing back)',
      'UNEXPECTED_FIELD',
    );
  }
  if (sourceFacultyId === targetFacultyId) {
    throw new InvalidArgumentError(
      'target_faculty_id',
      'must differ from source_faculty_id',
      'SAME_FACULTY',
    );
  }
  return {
    sourceFacultyId,
    sourceWeek,
    targetFacultyId,
    targetWeek,
    swapType,
    reason: optionalText('reason', request.reason),
  };
}

const VIEWS = new Map<number, SwapListView>([
  [SwapView.SWAP_VIEW_UNSPECIFIED, 'full'],
  [SwapView.SWAP_VIEW_FULL, 'full'],
  [SwapView.SWAP_VIEW_BASIC, 'basic'],
]);

export function toSwapFilter(request: ListSwapsRequest): {
  filter: SwapFilter;
  pageSize: number;
  pageToken: string;
  view: SwapListView;
} {
  const { weekFrom, weekTo, pageSize, pageToken } = listWindowOf(request);
  const status =
    request.status === SwapStatus.SWAP_STATUS_UNSPECIFIED
      ? undefined
      : requireEnum(
          'status',
          request.status,
          STATUS_FROM_PROTO,
          'SWAP_STATUS_EXECUTED or SWAP_STATUS_ROLLED_BACK',
        );
  const view = requireEnum('view', request.view, VIEWS, 'SWAP_VIEW_FULL or SWAP_VIEW_BASIC');
  return {
    filter: { facultyId: optionalUuid('faculty_id', request.facultyId), weekFrom, weekTo, status },
    pageSize,
    pageToken,
    view,
  };
}

/** A swap as the contract carries it; one listed in the basic view has no moves. */
export function toSwapMessage(record: SwapRecord | ListedSwap): Swap {
  return {
    id: record.id,
    sourceFacultyId: record.sourceFacultyId,
    sourceWeek: record.sourceWeek,
    targetFacultyId: record.targetFacultyId,
    targetWeek: record.targetWeek ?? '',
    swapType:
      record.swapType === 'ONE_TO_ONE' ? SwapType.SWAP_TYPE_ONE_TO_ONE : SwapType.SWAP_TYPE_ABSORB,
    status: STATUS_TO_PROTO[record.status],
    reason: record.reason,
    requestedAt: record.requestedAt,
    requestedBy: record.requestedBy,
    executedAt: record.executedAt ?? undefined,
    executedBy: record.executedBy ?? '',
    rolledBackAt: record.rolledBackAt ?? undefined,
    rolledBackBy: record.rolledBackBy ?? '',
    rollbackReason: record.rollbackReason ?? '',
    movedAssignments: (record.moves?.assignments ?? []).map((m) => ({
      assignmentId: m.assignmentId,
      blockDate: m.blockDate,
      blockHalf: m.blockHalf,
      rotation: m.rotation,
      fromPersonId: m.fromPersonId,
      toPersonId: m.toPersonId,
      version: m.version,
    })),
    movedCalls: (record.moves?.calls ?? []).map((m) => ({
      callId: m.callId,
      date: m.date,
      callType: m.callType,
      fromPersonId: m.fromPersonId,
      toPersonId: m.toPersonId,
      version: m.version,
    })),
    version: record.version,
    warnings: record.warnings,
  };
}
