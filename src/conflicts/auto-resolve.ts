import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { CallContext } from '../domain/call-context';
import {
  CallCancelledError,
  DeadlineExceededError,
  DomainError,
  PreconditionFailedError,
  ServiceUnavailableError,
} from '../domain/errors';
import { inBusinessSpan } from '../observability/business-span';
import type { ServiceTelemetry } from '../observability/service-telemetry';
import type { Committed, WritePath } from '../write-path/write-path';
import { RISK_ORDER, type RiskName } from './resolution-planner';
import type { ResolveConflict } from './resolve-conflict';

/** What became of one conflict of an AutoResolve call. */
export interface AutoResolveItem {
  conflictId: string;
  outcome: 'RESOLVED' | 'NEEDS_HUMAN' | 'ALREADY_RESOLVED' | 'FAILED';
  optionId: string;
  swapId: string;
  message: string;
}

/**
 * AutoResolve: for each conflict, applies the best option within `maxRisk`
 * that passes every check and needs no human. Each resolution is its own
 * locked, idempotent write, keyed by the call's request id and the conflict,
 * so a retried call replays each one it already applied. A dependency that
 * fails (the database, the lock service) or the caller's deadline fails the
 * whole call rather than an item: retried with the same request id, the call
 * replays what committed and goes on from there.
 *
 * Once every conflict has its outcome, the call's answer is itself committed
 * under the call's request id. A retry of a call that was answered gets that
 * answer again, byte for byte, rather than a new pass over conflicts whose
 * state has moved on (one that needed a human may have become resolvable).
 */
export class AutoResolve {
  constructor(
    private readonly writePath: WritePath,
    private readonly resolveConflict: ResolveConflict,
    private readonly telemetry: ServiceTelemetry,
    private readonly log: Logger,
  ) {}

  autoResolve(
    conflictIds: readonly string[],
    maxRisk: RiskName,
    requestId: string,
    call: CallContext,
  ): Promise<Committed<AutoResolveItem[]>> {
    const attributes = { 'conflict.count': conflictIds.length, 'conflict.max_risk': maxRisk };
    return inBusinessSpan(this.telemetry.tracer, 'conflict.auto_resolve', attributes, () =>
      this.writePath.commit(call, {
        method: 'AutoResolve',
        requestId,
        request: { conflictIds, maxRisk },
        // Planned only when the call has no answer yet: the resolutions commit
        // one by one, then the answer that lists them commits on its own.
        plan: async () => {
          const results: AutoResolveItem[] = [];
          // One at a time: each resolution locks what it changes, in its own transaction.
          for (const conflictId of conflictIds) {
            results.push(await this.resolveOne(conflictId, maxRisk, requestId, call));
          }
          return { lockNames: [], change: () => Promise.resolve(results) };
        },
      }),
    );
  }

  private async resolveOne(
    conflictId: string,
    maxRisk: RiskName,
    requestId: string,
    call: CallContext,
  ): Promise<AutoResolveItem> {
    const item = (
      outcome: AutoResolveItem['outcome'],
      message: string,
      optionId = '',
      swapId = '',
    ): AutoResolveItem => ({ conflictId, outcome, optionId, swapId, message });
    try {
      // Through the write path before anything is read: a retried call
      // replays the resolution it committed, with its option and swap.
      const { value } = await this.resolveConflict.commitResolution(
        {
          conflictId,
          choose: (alert, options) => {
            if (alert.status === 'RESOLVED' || alert.status === 'IGNORED')
              throw new NotApplied('ALREADY_RESOLVED', `already ${alert.status}`);
            const option = options.find(
              (o) =>
                !o.requiresHuman &&
                o.checks.every((c) => c.passed) &&
                RISK_ORDER[o.risk] <= RISK_ORDER[maxRisk],
            );
            if (!option)
              throw new NotApplied(
                'NEEDS_HUMAN',
                `no option within risk ${maxRisk} passes every check`,
              );
            return option;
          },
          notes: `auto-resolved (max risk ${maxRisk})`,
          method: 'AutoResolve',
          requestId: derivedRequestId(requestId, conflictId),
          request: { conflictId, maxRisk },
        },
        call,
      );
      return item('RESOLVED', value.description, value.optionId, value.swap?.id ?? '');
    } catch (error) {
      if (error instanceof NotApplied) return item(error.outcome, error.message);
      if (error instanceof PreconditionFailedError && error.reason === 'ALREADY_RESOLVED')
        return item('ALREADY_RESOLVED', error.message);
      // The call as a whole cannot go on, and a FAILED item would read as final:
      // the caller retries the call with the same request id, which replays
      // every resolution already committed.
      if (
        error instanceof ServiceUnavailableError ||
        error instanceof DeadlineExceededError ||
        error instanceof CallCancelledError
      )
        throw error;
      if (error instanceof DomainError) return item('FAILED', `${error.reason}: ${error.message}`);
      // A bug: the other conflicts still get their chance, and this one is logged in full.
      this.log.error({ err: error, conflictId }, 'auto-resolve failed');
      return item('FAILED', 'internal error');
    }
  }
}

/** Why a conflict's resolution was not applied, when that is an outcome rather than an error. */
class NotApplied extends Error {
  constructor(
    readonly outcome: 'ALREADY_RESOLVED' | 'NEEDS_HUMAN',
    message: string,
  ) {
    super(message);
  }
}

/** A stable request id for one conflict of an AutoResolve call, so a retried call replays each. */
function derivedRequestId(requestId: string, conflictId: string): string {
  const hex = createHash('sha256').update(`${requestId}/${conflictId}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}
