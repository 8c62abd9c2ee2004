import { createHash } from 'node:crypto';
import { Metadata } from '@grpc/grpc-js';
import type { GuardedMutations } from '../coordination/guarded-mutation';
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

export interface SwapUseCases {
  executor: SwapExecutor;
  rollback: SwapRollback;
  queries: SwapQueries;
  mutations: GuardedMutations;
}

/** Response metadata that tells a client its answer was replayed, not recomputed. */
export const REPLAYED_HEADER = 'idempotent-replayed';

/** The SwapService RPCs: request parsing and response mapping around the use cases. */
export function swapServiceHandlers(useCases: SwapUseCases, deps: UnaryDeps): SwapServiceServer {
  const { executor, rollback, queries, mutations } = useCases;
  return {
    executeSwap: unary('ExecuteSwap', deps, async (request, ctx, call) => {
      const command = toSwapCommand(request);
      const requestId = requireUuid('request_id', request.requestId);
      const result = await mutations.run<ExecuteSwapResponse>({
        scope: `${ctx.actor}:ExecuteSwap`,
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
      });
      if (result.replayed) call.sendMetadata(replayedMetadata());
      return result.value;
    }),
    validateSwap: unary('ValidateSwap', deps, async (request, ctx) => {
      const command = toSwapCommand(request);
      if (request.requestId) requireUuid('request_id', request.requestId);
      const { errors, warnings } = await executor.validate(command, ctx.budget);
      return { valid: errors.length === 0, errors, warnings };
    }),
    rollbackSwap: unary('RollbackSwap', deps, async (request, ctx, call) => {
      const swapId = requireUuid('swap_id', request.swapId);
      const reason = requireText('reason', request.reason);
      const requestId = requireUuid('request_id', request.requestId);
      // The lock names come from the swap itself; it is read again, locked, in the transaction.
      const record = await queries.get(swapId, ctx.budget);
      const result = await mutations.run<RollbackSwapResponse>({
        scope: `${ctx.actor}:RollbackSwap`,
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
      });
      if (result.replayed) call.sendMetadata(replayedMetadata());
      return result.value;
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

/** SHA-256 of the canonical (protobuf-encoded, request id cleared) request. */
function fingerprintOf(canonical: Uint8Array): string {
  return createHash('sha256').update(canonical).digest('hex');
}

function replayedMetadata(): Metadata {
  const metadata = new Metadata();
  metadata.set(REPLAYED_HEADER, 'true');
  return metadata;
}
