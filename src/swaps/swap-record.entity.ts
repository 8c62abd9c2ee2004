import { EntitySchema, type Opt } from '@mikro-orm/core';

export const SWAP_TYPES = ['ONE_TO_ONE', 'ABSORB'] as const;
export type SwapKind = (typeof SWAP_TYPES)[number];

/** The statuses a swap record can have; the contract reserves others for swap requests. */
export const SWAP_STATUSES = ['EXECUTED', 'ROLLED_BACK'] as const;
export type SwapStatusName = (typeof SWAP_STATUSES)[number];

/** An assignment that a swap moved, with the version the swap left it at. */
export interface AssignmentMove {
  assignmentId: string;
  blockDate: string;
  blockHalf: string;
  rotation: string;
  fromPersonId: string;
  toPersonId: string;
  version: number;
}

/** A call that followed a swapped week, with the version the swap left it at. */
export interface CallMove {
  callId: string;
  date: string;
  callType: string;
  fromPersonId: string;
  toPersonId: string;
  version: number;
}

/** Exactly what a swap changed; a rollback undoes this and nothing else. */
export interface SwapMoves {
  assignments: AssignmentMove[];
  calls: CallMove[];
}

export interface RecordedViolation {
  reason: string;
  message: string;
  subject: string;
}

/** The durable record of one swap and of what it moved. */
export class SwapRecord {
  id!: string;
  sourceFacultyId!: string;
  sourceWeek!: string;
  targetFacultyId!: string;
  targetWeek!: string | null;
  swapType!: SwapKind;
  status!: SwapStatusName;
  reason!: string;
  requestedAt!: Date;
  requestedBy!: string;
  executedAt!: Date | null;
  executedBy!: string | null;
  rolledBackAt!: Date | null;
  rolledBackBy!: string | null;
  rollbackReason!: string | null;
  moves!: SwapMoves;
  warnings!: RecordedViolation[];
  /** Fencing token of the distributed lock the swap executed under, if any. */
  fencingToken!: string | null;
  version!: Opt<number>;
}

export const SwapRecordSchema = new EntitySchema<SwapRecord>({
  class: SwapRecord,
  tableName: 'swap_record',
  indexes: [
    { properties: ['sourceFacultyId', 'sourceWeek'] },
    { properties: ['targetFacultyId', 'targetWeek'] },
    { properties: ['requestedAt', 'id'] },
  ],
  properties: {
    id: { type: 'uuid', primary: true },
    // Plain ids rather than relations: the record is history and is read whole,
    // so it never needs the Person entities loaded.
    sourceFacultyId: { type: 'uuid' },
    sourceWeek: { type: 'string', columnType: 'date' },
    targetFacultyId: { type: 'uuid' },
    targetWeek: { type: 'string', columnType: 'date', nullable: true },
    swapType: { type: 'string', columnType: 'text' },
    status: { type: 'string', columnType: 'text' },
    reason: { type: 'string', columnType: 'text' },
    requestedAt: { type: 'Date', columnType: 'timestamptz' },
    requestedBy: { type: 'string', columnType: 'text' },
    executedAt: { type: 'Date', columnType: 'timestamptz', nullable: true },
    executedBy: { type: 'string', columnType: 'text', nullable: true },
    rolledBackAt: { type: 'Date', columnType: 'timestamptz', nullable: true },
    rolledBackBy: { type: 'string', columnType: 'text', nullable: true },
    rollbackReason: { type: 'string', columnType: 'text', nullable: true },
    moves: { type: 'json' },
    warnings: { type: 'json' },
    fencingToken: { type: 'bigint', nullable: true },
    version: { type: 'integer', version: true },
  },
});
