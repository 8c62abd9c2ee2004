import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { CallContext } from '../domain/call-context';
import { DomainError, PreconditionFailedError } from '../domain/errors';
import { inBusinessSpan } from '../observability/business-span';
import type { ServiceTelemetry } from '../observability/service-telemetry';
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
 * so a retried call replays each one it already applied.
 */
export class AutoResolve {
  constructor(
    private readonly resolveConflict: ResolveConflict,
    private readonly telemetry: ServiceTelemetry,
    private readonly log: Logger,
  ) {}

  autoResolve(
    conflictIds: readonly string[],
    maxRisk: RiskName,
    requestId: string,
    call: CallContext,
  ): Promise<AutoResolveItem[]> {
    const attributes = { 'conflict.count': conflictIds.length, 'conflict.max_risk': maxRisk };
    return inBusinessSpan(this.telemetry.tracer, 'conflict.auto_resolve', attributes, async () => {
      const results: AutoResolveItem[] = [];
      // One at a time: each resolution locks what it changes, in its own transaction.
      for (const conflictId of conflictIds) {
        results.push(await this.resolveOne(conflictId, maxRisk, requestId, call));
      }
      return results;
    });
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
      const { alert, options } = await this.resolveConflict.plan(conflictId, call);
      if (alert.status === 'RESOLVED' || alert.status === 'IGNORED')
        return item('ALREADY_RESOLVED', `already ${alert.status}`);
      const option = options.find(
        (o) =>
          !o.requiresHuman &&
          o.checks.every((c) => c.passed) &&
          RISK_ORDER[o.risk] <= RISK_ORDER[maxRisk],
      );
      if (!option)
        return item('NEEDS_HUMAN', `no option within risk ${maxRisk} passes every check`);
      const applied = await this.resolveConflict.commitResolution(
        {
          alert,
          option,
          notes: `auto-resolved (max risk ${maxRisk})`,
          method: 'AutoResolve',
          requestId: derivedRequestId(requestId, conflictId),
          request: { conflictId, maxRisk },
        },
        call,
      );
      return item('RESOLVED', option.description, option.optionId, applied.value.swap?.id ?? '');
    } catch (error) {
      if (error instanceof PreconditionFailedError && error.reason === 'ALREADY_RESOLVED')
        return item('ALREADY_RESOLVED', error.message);
      if (error instanceof DomainError) return item('FAILED', `${error.reason}: ${error.message}`);
      // A bug: the other conflicts still get their chance, and this one is logged in full.
      this.log.error({ err: error, conflictId }, 'auto-resolve failed');
      return item('FAILED', 'internal error');
    }
  }
}

/** A stable request id for one conflict of an AutoResolve call, so a retried call replays each. */
function derivedRequestId(requestId: string, conflictId: string): string {
  const hex = createHash('sha256').update(`${requestId}/${conflictId}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}
