import type { SwapServiceServer } from '../generated/swap/v1/swap';
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
}

/** The SwapService RPCs: request parsing and response mapping around the use cases. */
export function swapServiceHandlers(useCases: SwapUseCases, deps: UnaryDeps): SwapServiceServer {
  return {
    executeSwap: unary('ExecuteSwap', deps, async (request, ctx) => {
      const command = toSwapCommand(request);
      requireUuid('request_id', request.requestId);
      const record = await useCases.executor.execute(command, ctx.actor, ctx.budget);
      return { swap: toSwapMessage(record) };
    }),
    validateSwap: unary('ValidateSwap', deps, async (request, ctx) => {
      const command = toSwapCommand(request);
      if (request.requestId) requireUuid('request_id', request.requestId);
      const { errors, warnings } = await useCases.executor.validate(command, ctx.budget);
      return { valid: errors.length === 0, errors, warnings };
    }),
    rollbackSwap: unary('RollbackSwap', deps, async (request, ctx) => {
      const swapId = requireUuid('swap_id', request.swapId);
      const reason = requireText('reason', request.reason);
      requireUuid('request_id', request.requestId);
      const record = await useCases.rollback.rollback(swapId, reason, ctx.actor, ctx.budget);
      return { swap: toSwapMessage(record) };
    }),
    getSwap: unary('GetSwap', deps, async (request, ctx) => {
      const record = await useCases.queries.get(requireUuid('swap_id', request.swapId), ctx.budget);
      return { swap: toSwapMessage(record) };
    }),
    listSwaps: unary('ListSwaps', deps, async (request, ctx) => {
      const { filter, pageSize } = toSwapFilter(request);
      const page = await useCases.queries.list(filter, pageSize, request.pageToken, ctx.budget);
      return { swaps: page.swaps.map(toSwapMessage), nextPageToken: page.nextPageToken };
    }),
  };
}
