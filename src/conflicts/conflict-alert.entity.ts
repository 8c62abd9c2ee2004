import { EntitySchema, type Opt } from '@mikro-orm/core';

export const CONFLICT_TYPES = [
  'LEAVE_FMIT_OVERLAP',
  'BACK_TO_BACK',
  'EXCESSIVE_ALTERNATING',
  'CALL_CASCADE',
] as const;
export type ConflictTypeName = (typeof CONFLICT_TYPES)[number];
export type ConflictSeverityName = 'CRITICAL' | 'WARNING' | 'INFO';
export type ConflictStatusName = 'NEW' | 'ACKNOWLEDGED' | 'RESOLVED' | 'IGNORED';
export const RESOLUTION_STRATEGIES = [
  'SWAP_ASSIGNMENTS',
  'REASSIGN_JUNIOR',
  'ESCALATE_TO_BACKUP',
  'SPLIT_COVERAGE',
  'DEFER_TO_HUMAN',
] as const;
export type ResolutionStrategyName = (typeof RESOLUTION_STRATEGIES)[number];

/** Statuses in which an alert still asks for action. */
export const OPEN_STATUSES: readonly ConflictStatusName[] = ['NEW', 'ACKNOWLEDGED'];

/** A scheduling conflict found by detection, and what became of it. */
export class ConflictAlert {
  id!: string;
  facultyId!: string;
  type!: ConflictTypeName;
  severity!: ConflictSeverityName;
  weekStart!: string;
  absenceId!: string | null;
  swapId!: string | null;
  status!: ConflictStatusName;
  description!: string;
  createdAt!: Date;
  acknowledgedBy!: string | null;
  acknowledgedAt!: Date | null;
  resolvedBy!: string | null;
  resolvedAt!: Date | null;
  notes!: string | null;
  resolution!: ResolutionStrategyName | null;
  resolutionSwapId!: string | null;
  version!: Opt<number>;
}

export const ConflictAlertSchema = new EntitySchema<ConflictAlert>({
  class: ConflictAlert,
  tableName: 'conflict_alert',
  properties: {
    id: { type: 'uuid', primary: true },
    facultyId: { type: 'uuid' },
    type: { type: 'string', columnType: 'text' },
    severity: { type: 'string', columnType: 'text' },
    weekStart: { type: 'string', columnType: 'date' },
    absenceId: { type: 'uuid', nullable: true },
    swapId: { type: 'uuid', nullable: true },
    status: { type: 'string', columnType: 'text' },
    description: { type: 'string', columnType: 'text' },
    createdAt: { type: 'Date', columnType: 'timestamptz' },
    acknowledgedBy: { type: 'string', columnType: 'text', nullable: true },
    acknowledgedAt: { type: 'Date', columnType: 'timestamptz', nullable: true },
    resolvedBy: { type: 'string', columnType: 'text', nullable: true },
    resolvedAt: { type: 'Date', columnType: 'timestamptz', nullable: true },
    notes: { type: 'string', columnType: 'text', nullable: true },
    resolution: { type: 'string', columnType: 'text', nullable: true },
    resolutionSwapId: { type: 'uuid', nullable: true },
    version: { type: 'integer', version: true },
  },
});
