import { createHash } from 'node:crypto';
import type { ConflictDetector } from '../conflicts/conflict-detector';
import { ConflictAlert } from '../conflicts/conflict-alert.entity';
import type { ConflictQueries } from '../conflicts/conflict-queries';
import { conflictLockName, type ConflictResolver } from '../conflicts/conflict-resolver';
import type { ConflictTriage } from '../conflicts/conflict-triage';
import {
  RISK_ORDER,
  type ResolutionOption,
  type ResolutionPlanner,
  type RiskName,
} from '../conflicts/resolution-planner';
import type { GuardedMutations } from '../coordination/guarded-mutation';
import type { ScheduleLocks } from '../coordination/schedule-locks';
import type { TransactionRunner } from '../db/transaction-runner';
import type { CallBudget } from '../domain/call-budget';
import {
  DomainError,
  InvalidArgumentError,
  NotFoundError,
  PreconditionFailedError,
} from '../domain/errors';
import {
  AcknowledgeConflictResponse,
  AutoResolveOutcome,
  type AutoResolveResult,
  type ConflictServiceServer,
  IgnoreConflictResponse,
  ResolutionStrategy,
  ResolveConflictResponse,
} from '../generated/swap/v1/conflict';
import { inBusinessSpan } from '../observability/business-span';
import { type HandlerDeps, replayedMetadata } from './swap-service';
import {
  RISKS,
  STRATEGIES,
  toConflictFilter,
  toConflictMessage,
  toOptionMessage,
} from './conflict-messages';
import { requireEnum, requireText, requireUuid, requireWeek, optionalText } from './request-fields';
import { toSwapMessage } from './swap-messages';
import { unary } from './unary-handler';

export interface ConflictUseCases {
  detector: ConflictDetector;
  planner: ResolutionPlanner;
  resolver: ConflictResolver;
  triage: ConflictTriage;
  queries: ConflictQueries;
  mutations: GuardedMutations;
  locks: ScheduleLocks;
  transactions: TransactionRunner;
}

const MAX_DETECT_WEEKS = 60;
const MAX_AUTO_RESOLVE = 100;

/** The ConflictService RPCs. */
export function conflictServiceHandlers(
  useCases: ConflictUseCases,
  deps: HandlerDeps,
): ConflictServiceServer {
  const { detector, planner, resolver, triage, queries, mutations, locks, transactions } = useCases;
  const { tracer } = deps.telemetry;

  /** Reads the alert and its options, outside any lock: enough to pick what to lock. */
  const plan = (conflictId: string, budget: CallBudget, optionId?: string) =>
    transactions.run(
      budget,
      async (em) => {
        const alert = await em.findOne(ConflictAlert, conflictId);
        if (!alert) {
          throw new NotFoundError('CONFLICT_NOT_FOUND', `no conflict with id ${conflictId}`, {
            conflict_id: conflictId,
          });
        }
        // A named option is computed alone; only a strategy needs every option ranked.
        const options = optionId
          ? [await planner.optionById(em, alert, optionId)].filter((o) => o !== undefined)
          : await planner.optionsFor(em, alert);
        return { alert, options };
      },
      { readOnly: true },
    );

  const resolve = (args: {
    alert: ConflictAlert;
    option: ResolutionOption;
    notes: string;
    actor: string;
    requestId: string;
    method: string;
    budget: CallBudget;
  }) =>
    mutations.run<ResolveConflictResponse>({
      actor: args.actor,
      method: args.method,
      requestId: args.requestId,
      fingerprint: fingerprintOf([args.alert.id, args.option.optionId, args.notes]),
      lockNames: resolver.lockNamesOf(args.alert, args.option),
      budget: args.budget,
      work: async (em, guard) => {
        const { alert, swap } = await resolver.resolveIn(
          em,
          args.alert.id,
          args.option,
          args.notes,
          args.actor,
          guard,
        );
        await em.flush();
        return { conflict: toConflictMessage(alert), swap: swap && toSwapMessage(swap) };
      },
      encode: (r) => ResolveConflictResponse.encode(r).finish(),
      decode: (b) => ResolveConflictResponse.decode(b),
    });

  return {
    detectConflicts: unary('DetectConflicts', deps, async (request, ctx) => {
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
      return inBusinessSpan(
        tracer,
        'conflict.detect',
        { 'conflict.week_from': from, 'conflict.week_to': to },
        async (span) => {
          // Detection is idempotent by its unique index; the lock only saves replicas a duplicate scan.
          const created = await locks.withLocks(['conflicts:detect'], ctx.budget, (guard) =>
            transactions.run(guard.budget, async (em) => {
              await guard.enter(em);
              return detector.detect(em, from, to);
            }),
          );
          span.setAttribute('conflict.created', created.length);
          return { created: created.map(toConflictMessage) };
        },
      );
    }),
    listConflicts: unary('ListConflicts', deps, async (request, ctx) => {
      const { filter, pageSize } = toConflictFilter(request);
      const page = await queries.list(filter, pageSize, request.pageToken, ctx.budget);
      return {
        conflicts: page.conflicts.map(toConflictMessage),
        nextPageToken: page.nextPageToken,
      };
    }),
    getConflict: unary('GetConflict', deps, async (request, ctx) => {
      const alert = await queries.get(requireUuid('conflict_id', request.conflictId), ctx.budget);
      return { conflict: toConflictMessage(alert) };
    }),
    acknowledgeConflict: unary('AcknowledgeConflict', deps, async (request, ctx, call) => {
      const conflictId = requireUuid('conflict_id', request.conflictId);
      const notes = optionalText('notes', request.notes);
      const result = await mutations.run<AcknowledgeConflictResponse>({
        actor: ctx.actor,
        method: 'AcknowledgeConflict',
        requestId: requireUuid('request_id', request.requestId),
        fingerprint: fingerprintOf([conflictId, notes]),
        lockNames: [conflictLockName(conflictId)],
        budget: ctx.budget,
        work: async (em) => {
          const alert = await triage.acknowledgeIn(em, conflictId, notes, ctx.actor);
          // Flushed first, so the answer (and its replays) carries the stored version.
          await em.flush();
          return { conflict: toConflictMessage(alert) };
        },
        encode: (r) => AcknowledgeConflictResponse.encode(r).finish(),
        decode: (b) => AcknowledgeConflictResponse.decode(b),
      });
      if (result.replayed) call.sendMetadata(replayedMetadata());
      return result.value;
    }),
    ignoreConflict: unary('IgnoreConflict', deps, async (request, ctx, call) => {
      const conflictId = requireUuid('conflict_id', request.conflictId);
      const reason = requireText('reason', request.reason);
      const result = await mutations.run<IgnoreConflictResponse>({
        actor: ctx.actor,
        method: 'IgnoreConflict',
        requestId: requireUuid('request_id', request.requestId),
        fingerprint: fingerprintOf([conflictId, reason]),
        lockNames: [conflictLockName(conflictId)],
        budget: ctx.budget,
        work: async (em) => {
          const alert = await triage.ignoreIn(em, conflictId, reason, ctx.actor);
          // Flushed first, so the answer (and its replays) carries the stored version.
          await em.flush();
          return { conflict: toConflictMessage(alert) };
        },
        encode: (r) => IgnoreConflictResponse.encode(r).finish(),
        decode: (b) => IgnoreConflictResponse.decode(b),
      });
      if (result.replayed) call.sendMetadata(replayedMetadata());
      return result.value;
    }),
    getResolutionOptions: unary('GetResolutionOptions', deps, async (request, ctx) => {
      const { options } = await plan(requireUuid('conflict_id', request.conflictId), ctx.budget);
      return { options: options.map(toOptionMessage) };
    }),
    resolveConflict: unary('ResolveConflict', deps, async (request, ctx, call) => {
      const conflictId = requireUuid('conflict_id', request.conflictId);
      const requestId = requireUuid('request_id', request.requestId);
      const notes = optionalText('notes', request.notes);
      if (
        !request.optionId ===
        (request.strategy === ResolutionStrategy.RESOLUTION_STRATEGY_UNSPECIFIED)
      ) {
        throw new InvalidArgumentError(
          'option_id',
          'set exactly one of option_id and strategy',
          'INVALID_CHOICE',
        );
      }
      const strategy = request.optionId
        ? undefined
        : requireEnum('strategy', request.strategy, STRATEGIES.fromProto, 'a ResolutionStrategy');
      return inBusinessSpan(
        tracer,
        'conflict.resolve',
        { 'conflict.id': conflictId, 'app.request_id': requestId },
        async (span) => {
          const { alert, options } = await plan(
            conflictId,
            ctx.budget,
            request.optionId || undefined,
          );
          const option = request.optionId
            ? options.find((o) => o.optionId === request.optionId)
            : options.find((o) => o.strategy === strategy);
          if (!option) {
            throw request.optionId
              ? new InvalidArgumentError(
                  'option_id',
                  `no option ${request.optionId} for conflict ${conflictId}; call GetResolutionOptions`,
                  'UNKNOWN_OPTION',
                )
              : new PreconditionFailedError([
                  {
                    reason: 'OPTION_NOT_AVAILABLE',
                    message: `no ${strategy} option for conflict ${conflictId}`,
                    subject: `conflict/${conflictId}`,
                  },
                ]);
          }
          span.setAttributes({
            'conflict.faculty_id': alert.facultyId,
            'conflict.week': alert.weekStart,
            'conflict.option_id': option.optionId,
          });
          const result = await resolve({
            alert,
            option,
            notes,
            actor: ctx.actor,
            requestId,
            method: 'ResolveConflict',
            budget: ctx.budget,
          });
          if (result.value.swap) span.setAttribute('swap.id', result.value.swap.id);
          if (result.replayed) call.sendMetadata(replayedMetadata());
          return result.value;
        },
      );
    }),
    autoResolve: unary('AutoResolve', deps, async (request, ctx) => {
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
      return inBusinessSpan(
        tracer,
        'conflict.auto_resolve',
        { 'conflict.count': ids.length, 'conflict.max_risk': maxRisk },
        async () => {
          const results: AutoResolveResult[] = [];
          // One at a time: each resolution is its own locked, idempotent transaction.
          for (const conflictId of ids) {
            results.push(
              await autoResolveOne(conflictId, maxRisk, requestId, ctx.actor, ctx.budget),
            );
          }
          return { results };
        },
      );
    }),
  };

  async function autoResolveOne(
    conflictId: string,
    maxRisk: RiskName,
    requestId: string,
    actor: string,
    budget: CallBudget,
  ): Promise<AutoResolveResult> {
    const result = (
      outcome: AutoResolveOutcome,
      message: string,
      optionId = '',
      swapId = '',
    ): AutoResolveResult => ({
      conflictId,
      outcome,
      optionId,
      swapId,
      message,
    });
    try {
      const { alert, options } = await plan(conflictId, budget);
      if (alert.status === 'RESOLVED' || alert.status === 'IGNORED') {
        return result(
          AutoResolveOutcome.AUTO_RESOLVE_OUTCOME_ALREADY_RESOLVED,
          `already ${alert.status}`,
        );
      }
      const option = options.find(
        (o) =>
          !o.requiresHuman &&
          o.checks.every((c) => c.passed) &&
          RISK_ORDER[o.risk] <= RISK_ORDER[maxRisk],
      );
      if (!option) {
        return result(
          AutoResolveOutcome.AUTO_RESOLVE_OUTCOME_NEEDS_HUMAN,
          `no option within risk ${maxRisk} passes every check`,
        );
      }
      const applied = await resolve({
        alert,
        option,
        notes: `auto-resolved (max risk ${maxRisk})`,
        actor,
        requestId: derivedRequestId(requestId, conflictId),
        method: 'AutoResolve',
        budget,
      });
      return result(
        AutoResolveOutcome.AUTO_RESOLVE_OUTCOME_RESOLVED,
        option.description,
        option.optionId,
        applied.value.swap?.id ?? '',
      );
    } catch (error) {
      if (error instanceof PreconditionFailedError && error.reason === 'ALREADY_RESOLVED') {
        return result(AutoResolveOutcome.AUTO_RESOLVE_OUTCOME_ALREADY_RESOLVED, error.message);
      }
      if (error instanceof DomainError)
        return result(
          AutoResolveOutcome.AUTO_RESOLVE_OUTCOME_FAILED,
          `${error.reason}: ${error.message}`,
        );
      deps.log.error({ err: error, conflictId }, 'auto-resolve failed');
      return result(AutoResolveOutcome.AUTO_RESOLVE_OUTCOME_FAILED, 'internal error');
    }
  }
}

function fingerprintOf(parts: readonly string[]): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}

/** A stable request id for one conflict of an AutoResolve call, so a retried call replays each. */
function derivedRequestId(requestId: string, conflictId: string): string {
  const hex = createHash('sha256').update(`${requestId}/${conflictId}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}
