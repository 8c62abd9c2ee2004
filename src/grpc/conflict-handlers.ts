import type { AutoResolve, AutoResolveItem } from '../conflicts/auto-resolve';
import type { ConflictQueries } from '../conflicts/conflict-queries';
import type { DetectConflicts } from '../conflicts/detect-conflicts';
import type { ResolutionChoice, ResolveConflict } from '../conflicts/resolve-conflict';
import type { TriageConflict } from '../conflicts/triage-conflict';
import { InvalidArgumentError } from '../domain/errors';
import {
  AutoResolveOutcome,
  type AutoResolveResult,
  type ConflictServiceServer,
  type ResolveConflictRequest,
  ResolutionStrategy,
} from '../generated/swap/v1/conflict';
import {
  RISKS,
  STRATEGIES,
  toConflictFilter,
  toConflictMessage,
  toOptionMessage,
} from './conflict-messages';
import {
  optionalText,
  requireEnum,
  requireOptionId,
  requireText,
  requireUuid,
  requireWeek,
} from './request-fields';
import { toSwapMessage } from './swap-messages';
import { type HandlerDeps, mutating, unary } from './unary-handler';

/** The use cases behind ConflictService. */
export interface ConflictUseCases {
  detectConflicts: DetectConflicts;
  triage: TriageConflict;
  resolveConflict: ResolveConflict;
  autoResolve: AutoResolve;
  queries: ConflictQueries;
}

const MAX_DETECT_WEEKS = 60;
const MAX_AUTO_RESOLVE = 100;

const OUTCOMES: Record<AutoResolveItem['outcome'], AutoResolveOutcome> = {
  RESOLVED: AutoResolveOutcome.AUTO_RESOLVE_OUTCOME_RESOLVED,
  NEEDS_HUMAN: AutoResolveOutcome.AUTO_RESOLVE_OUTCOME_NEEDS_HUMAN,
  ALREADY_RESOLVED: AutoResolveOutcome.AUTO_RESOLVE_OUTCOME_ALREADY_RESOLVED,
  FAILED: AutoResolveOutcome.AUTO_RESOLVE_OUTCOME_FAILED,
};

/** The ConflictService RPCs: each parses its request, calls one use case and maps the answer. */
export function conflictHandlers(
  useCases: ConflictUseCases,
  deps: HandlerDeps,
): ConflictServiceServer {
  const { detectConflicts, triage, resolveConflict, autoResolve, queries } = useCases;
  return {
    detectConflicts: unary(deps, async (request, ctx) => {
      const from = requireWeek('week_from', request.weekFrom);
      const to = requireWeek('week_to', request.weekTo);
      if (to < from)
        throw new InvalidArgumentError('week_to', 'must not be before week_from', 'INVALID_RANGE');
      if ((Date.parse(to) - Date.parse(from)) / 604_800_000 > MAX_DETECT_WEEKS) {
        throw new InvalidArgumentError(
          'week_to',
          `the range may span at most ${MAX_DETECT_WEEKS} weeks`,
          'INVALID_RANGE',
        );
      }
      const created = await detectConflicts.detect(from, to, ctx);
      return { created: created.map(toConflictMessage) };
    }),
    listConflicts: unary(deps, async (request, ctx) => {
      const { filter, pageSize, pageToken } = toConflictFilter(request);
      const page = await queries.list(filter, pageSize, pageToken, ctx);
      return {
        conflicts: page.conflicts.map(toConflictMessage),
        nextPageToken: page.nextPageToken,
      };
    }),
    getConflict: unary(deps, async (request, ctx) => {
      const alert = await queries.get(requireUuid('conflict_id', request.conflictId), ctx);
      return { conflict: toConflictMessage(alert) };
    }),
    acknowledgeConflict: mutating(deps, async (request, ctx) => {
      const conflictId = requireUuid('conflict_id', request.conflictId);
      const notes = optionalText('notes', request.notes);
      const requestId = requireUuid('request_id', request.requestId);
      const { value, replayed } = await triage.acknowledge(conflictId, notes, requestId, ctx);
      return { response: { conflict: toConflictMessage(value) }, replayed };
    }),
    ignoreConflict: mutating(deps, async (request, ctx) => {
      const conflictId = requireUuid('conflict_id', request.conflictId);
      const reason = requireText('reason', request.reason);
      const requestId = requireUuid('request_id', request.requestId);
      const { value, replayed } = await triage.ignore(conflictId, reason, requestId, ctx);
      return { response: { conflict: toConflictMessage(value) }, replayed };
    }),
    getResolutionOptions: unary(deps, async (request, ctx) => {
      const conflictId = requireUuid('conflict_id', request.conflictId);
      const options = await resolveConflict.options(conflictId, ctx);
      return { options: options.map(toOptionMessage) };
    }),
    resolveConflict: mutating(deps, async (request, ctx) => {
      const conflictId = requireUuid('conflict_id', request.conflictId);
      const requestId = requireUuid('request_id', request.requestId);
      const notes = optionalText('notes', request.notes);
      const choice = resolutionChoiceOf(request);
      const { value, replayed } = await resolveConflict.resolve(
        conflictId,
        choice,
        notes,
        requestId,
        ctx,
      );
      return {
        response: {
          conflict: toConflictMessage(value.alert),
          swap: value.swap && toSwapMessage(value.swap),
        },
        replayed,
      };
    }),
    // Mutating: each resolution it commits is audited by the write path, a refusal here.
    autoResolve: mutating(deps, async (request, ctx) => {
      const requestId = requireUuid('request_id', request.requestId);
      const maxRisk = requireEnum(
        'max_risk',
        request.maxRisk,
        RISKS.fromProto,
        'RISK_LEVEL_LOW, RISK_LEVEL_MEDIUM or RISK_LEVEL_HIGH',
      );
      if (request.conflictIds.length === 0 || request.conflictIds.length > MAX_AUTO_RESOLVE) {
        throw new InvalidArgumentError(
          'conflict_ids',
          `must hold 1 to ${MAX_AUTO_RESOLVE} ids`,
          'INVALID_SIZE',
        );
      }
      const ids = request.conflictIds.map((id, i) => requireUuid(`conflict_ids[${i}]`, id));
      const { value, replayed } = await autoResolve.autoResolve(ids, maxRisk, requestId, ctx);
      return { response: { results: value.map(toAutoResolveResult) }, replayed };
    }),
  };
}

/** Exactly one of option_id and strategy. */
function resolutionChoiceOf(request: ResolveConflictRequest): ResolutionChoice {
  const hasStrategy = request.strategy !== ResolutionStrategy.RESOLUTION_STRATEGY_UNSPECIFIED;
  if (!request.optionId === !hasStrategy) {
    throw new InvalidArgumentError(
      'option_id',
      'set exactly one of option_id and strategy',
      'INVALID_CHOICE',
    );
  }
  if (request.optionId) return { optionId: requireOptionId('option_id', request.optionId) };
  return {
    strategy: requireEnum(
      'strategy',
      request.strategy,
      STRATEGIES.fromProto,
      'a ResolutionStrategy',
    ),
  };
}

function toAutoResolveResult(item: AutoResolveItem): AutoResolveResult {
  return { ...item, outcome: OUTCOMES[item.outcome] };
}
