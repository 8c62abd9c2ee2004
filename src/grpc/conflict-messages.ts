import type {
  ConflictSeverityName,
  ConflictStatusName,
  ConflictTypeName,
  ResolutionStrategyName,
} from '../conflicts/conflict-alert.entity';
import { type ConflictAlert as AlertEntity } from '../conflicts/conflict-alert.entity';
import type { ConflictFilter } from '../conflicts/conflict-queries';
import type { ResolutionOption as PlannedOption, RiskName } from '../conflicts/resolution-planner';
import {
  type Conflict,
  ConflictSeverity,
  ConflictStatus,
  ConflictType,
  type ListConflictsRequest,
  type ResolutionOption,
  ResolutionStrategy,
  RiskLevel,
} from '../generated/swap/v1/conflict';
import { listWindowOf, optionalUuid, requireEnum } from './request-fields';

/** Two-way maps between proto enums and domain names, built from the proto's own naming. */
function enumMaps<N extends string>(values: Record<string, string | number>, prefix: string) {
  const toProto = new Map<N, number>();
  const fromProto = new Map<number, N>();
  for (const [key, value] of Object.entries(values)) {
    if (typeof value !== 'number' || !key.startsWith(prefix) || key.endsWith('UNSPECIFIED'))
      continue;
    const name = key.slice(prefix.length) as N;
    toProto.set(name, value);
    fromProto.set(value, name);
  }
  return { toProto, fromProto };
}

const TYPES = enumMaps<ConflictTypeName>(ConflictType, 'CONFLICT_TYPE_');
const SEVERITIES = enumMaps<ConflictSeverityName>(ConflictSeverity, 'CONFLICT_SEVERITY_');
const STATUSES = enumMaps<ConflictStatusName>(ConflictStatus, 'CONFLICT_STATUS_');
export const STRATEGIES = enumMaps<ResolutionStrategyName>(
  ResolutionStrategy,
  'RESOLUTION_STRATEGY_',
);
export const RISKS = enumMaps<RiskName>(RiskLevel, 'RISK_LEVEL_');

export function toConflictMessage(alert: AlertEntity): Conflict {
  return {
    id: alert.id,
    facultyId: alert.facultyId,
    type: TYPES.toProto.get(alert.type) ?? ConflictType.CONFLICT_TYPE_UNSPECIFIED,
    severity:
      SEVERITIES.toProto.get(alert.severity) ?? ConflictSeverity.CONFLICT_SEVERITY_UNSPECIFIED,
    week: alert.weekStart,
    absenceId: alert.absenceId ?? '',
    swapId: alert.swapId ?? '',
    status: STATUSES.toProto.get(alert.status) ?? ConflictStatus.CONFLICT_STATUS_UNSPECIFIED,
    description: alert.description,
    createdAt: alert.createdAt,
    acknowledgedBy: alert.acknowledgedBy ?? '',
    acknowledgedAt: alert.acknowledgedAt ?? undefined,
    resolvedBy: alert.resolvedBy ?? '',
    resolvedAt: alert.resolvedAt ?? undefined,
    notes: alert.notes ?? '',
    resolution:
      (alert.resolution && STRATEGIES.toProto.get(alert.resolution)) ||
      ResolutionStrategy.RESOLUTION_STRATEGY_UNSPECIFIED,
    resolutionSwapId: alert.resolutionSwapId ?? '',
    version: alert.version,
  };
}

export function toOptionMessage(option: PlannedOption): ResolutionOption {
  return {
    optionId: option.optionId,
    strategy:
      STRATEGIES.toProto.get(option.strategy) ?? ResolutionStrategy.RESOLUTION_STRATEGY_UNSPECIFIED,
    description: option.description,
    risk: RISKS.toProto.get(option.risk) ?? RiskLevel.RISK_LEVEL_UNSPECIFIED,
    score: option.score,
    requiresHuman: option.requiresHuman,
    checks: option.checks,
    targetFacultyId: option.swap?.targetFacultyId ?? '',
  };
}

export function toConflictFilter(request: ListConflictsRequest): {
  filter: ConflictFilter;
  pageSize: number;
  pageToken: string;
} {
  const { weekFrom, weekTo, pageSize, pageToken } = listWindowOf(request);
  const optionalEnum = <N>(field: string, value: number, maps: { fromProto: Map<number, N> }) =>
    value === 0 ? undefined : requireEnum(field, value, maps.fromProto, `a known ${field} value`);
  return {
    filter: {
      facultyId: optionalUuid('faculty_id', request.facultyId),
      status: optionalEnum('status', request.status, STATUSES),
      type: optionalEnum('type', request.type, TYPES),
      severity: optionalEnum('severity', request.severity, SEVERITIES),
      weekFrom,
      weekTo,
    },
    pageSize,
    pageToken,
  };
}
