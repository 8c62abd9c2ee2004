import { createHash } from 'node:crypto';
import { Metadata } from '@grpc/grpc-js';
import type { GuardedMutations } from '../coordination/guarded-mutation';
import { DomainError } from '../domain/errors';
import { inBusinessSpan } from '../observability/business-span';
import type { ServiceTelemetry } from '../observability/service-telemetry';
import {
  ExecuteSwapRequest,
  ExecuteSwapResponse,
  RollbackSwapRequest,
  RollbackSwapResponse,
  type SwapServiceServer,
} from '../generated/swap/v1/swap';
import type { SwapExecutor } from '../swaps/swap-executor';
import type { SwapQueries } from '../swaps/swap-queries';
import type { SwapRollback } from '../swaps/swap-rollback';
import { requireText, requireUuid } from './request-fields';
import { toSwapCommand, toSwapFilter, toSwapMessage } from './swap-messages';
import { type UnaryDeps, unary } from './unary-handler';

/** What the handlers need besides the use cases. */
export interface HandlerDeps extends UnaryDeps {
  telemetry: ServiceTelemetry;
}

export interface SwapUseCases {
  executor: SwapExecutor;
  rollback: SwapRollback;
  queries: SwapQueries;
  mutations: GuardedMutations;
}

/** Response metadata that tells a client its answer was replayed, not recomputed. */
export const REPLAYED_HEADER = 'idempotent-replayed';

/** The SwapService RPCs: request parsing and response mapping around the use cases. */
export function swapServiceHandlers(useCases: SwapUseCases, deps: HandlerDeps): SwapServiceServer {
  const { executor, rollback, queries, mutations } = useCases;
  const { tracer, swaps } = deps.telemetry;
  return {
    executeSwap: unary('ExecuteSwap', deps, async (request, ctx, call) => {
      const command = toSwapCommand(request);
      const requestId = requireUuid('request_id', request.requestId);
      const attributes = {
        'swap.type': command.swapType,
        'swap.source_faculty_id': command.sourceFacultyId,
        'swap.source_week': command.sourceWeek,
        'swap.target_faculty_id': command.targetFacultyId,
        ...(command.targetWeek && { 'swap.target_week': command.targetWeek }),
        'app.request_id': requestId,
      };
      const counted = { operation: 'execute', swap_type: command.swapType };
      return inBusinessSpan(tracer, 'swap.execute', attributes, async (span) => {
        const result = await mutations
          .run<ExecuteSwapResponse>({
            actor: ctx.actor,
            method: 'ExecuteSwap',
            requestId,
            fingerprint: fingerprintOf(
              ExecuteSwapRequest.encode({ ...request, requestId: '' }).finish(),
            ),
            lockNames: executor.lockNamesOf(command),
            budget: ctx.budget,
            work: async (em, guard) => ({
              swap: toSwapMessage(await executor.executeIn(em, command, ctx.actor, guard)),
            }),
            encode: (response) => ExecuteSwapResponse.encode(response).finish(),
            decode: (bytes) => ExecuteSwapResponse.decode(bytes),
          })
          .catch((error: unknown) => {
            swaps.add(1, { ...counted, outcome: outcomeOf(error) });
            throw error;
          });
        span.setAttributes({
          'swap.id': result.value.swap?.id ?? '',
          'app.replayed': result.replayed,
        });
        swaps.add(1, { ...counted, outcome: result.replayed ? 'replayed' : 'ok' });
        if (result.replayed) call.sendMetadata(replayedMetadata());
        return result.value;
      });
    }),
    validateSwap: unary('ValidateSwap', deps, async (request, ctx) => {
      const command = toSwapCommand(request);
      if (request.requestId) requireUuid('request_id', request.requestId);
      const attributes = {
        'swap.type': command.swapType,
        'swap.source_faculty_id': command.sourceFacultyId,
        'swap.target_faculty_id': command.targetFacultyId,
      };
      return inBusinessSpan(tracer, 'swap.validate', attributes, async (span) => {
        const { errors, warnings } = await executor.validate(command, ctx.budget);
        span.setAttribute('swap.valid', errors.length === 0);
        return { valid: errors.length === 0, errors, warnings };
      });
    }),
    rollbackSwap: unary('RollbackSwap', deps, async (request, ctx, call) => {
      const swapId = requireUuid('swap_id', request.swapId);
      const reason = requireText('reason', request.reason);
      const requestId = requireUuid('request_id', request.requestId);
      const attributes = { 'swap.id': swapId, 'app.request_id': requestId };
      return inBusinessSpan(tracer, 'swap.rollback', attributes, async (span) => {
        // The lock names come from the swap itself; it is read again, locked, in the transaction.
        const record = await queries.get(swapId, ctx.budget);
        const counted = { operation: 'rollback', swap_type: record.swapType };
        span.setAttributes({
          'swap.source_faculty_id': record.sourceFacultyId,
          'swap.target_faculty_id': record.targetFacultyId,
          'swap.source_week': record.sourceWeek,
        });
        const result = await mutations
          .run<RollbackSwapResponse>({
            actor: ctx.actor,
            method: 'RollbackSwap',
            requestId,
            fingerprint: fingerprintOf(
              RollbackSwapRequest.encode({ ...request, requestId: '' }).finish(),
            ),
            lockNames: rollback.lockNamesOf(record),
            budget: ctx.budget,
            work: async (em, guard) => ({
              swap: toSwapMessage(await rollback.rollbackIn(em, swapId, reason, ctx.actor, guard)),
            }),
            encode: (response) => RollbackSwapResponse.encode(response).finish(),
            decode: (bytes) => RollbackSwapResponse.decode(bytes),
          })
          .catch((error: unknown) => {
            swaps.add(1, { ...counted, outcome: outcomeOf(error) });
            throw error;
          });
        span.setAttribute('app.replayed', result.replayed);
        swaps.add(1, { ...counted, outcome: result.replayed ? 'replayed' : 'ok' });
        if (result.replayed) call.sendMetadata(replayedMetadata());
        return result.value;
      });
    }),
    getSwap: unary('GetSwap', deps, async (request, ctx) => {
      const record = await queries.get(requireUuid('swap_id', request.swapId), ctx.budget);
      return { swap: toSwapMessage(record) };
    }),
    listSwaps: unary('ListSwaps', deps, async (request, ctx) => {
      const { filter, pageSize } = toSwapFilter(request);
      const page = await queries.list(filter, pageSize, request.pageToken, ctx.budget);
      return { swaps: page.swaps.map(toSwapMessage), nextPageToken: page.nextPageToken };
    }),
  };
}

/** A low-cardinality label for a failed swap: the domain reason code, or `error`. */
function outcomeOf(error: unknown): string {
  return error instanceof DomainError ? error.reason.toLowerCase() : 'error';
}

/** SHA-256 of the canonical (protobuf-encoded, request id cleared) request. */
function fingerprintOf(canonical: Uint8Array): string {
  return createHash('sha256').update(canonical).digest('hex');
}

/** Response metadata for an answer replayed from an earlier call. */
export function replayedMetadata(): Metadata {
  const metadata = new Metadata();
  metadata.set(REPLAYED_HEADER, 'true');
  return metadata;
}
