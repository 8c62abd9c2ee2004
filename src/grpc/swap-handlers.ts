import type { SwapServiceServer } from '../generated/swap/v1/swap';
import type { ExecuteSwap } from '../swaps/execute-swap';
import type { RollbackSwap } from '../swaps/rollback-swap';
import type { SwapQueries } from '../swaps/swap-queries';
import type { ValidateSwap } from '../swaps/validate-swap';
import { requireText, requireUuid } from './request-fields';
import { toSwapCommand, toSwapFilter, toSwapMessage } from './swap-messages';
import { type HandlerDeps, mutating, unary } from './unary-handler';

/** The use cases behind SwapService. */
export interface SwapUseCases {
  executeSwap: ExecuteSwap;
  validateSwap: ValidateSwap;
  rollbackSwap: RollbackSwap;
  queries: SwapQueries;
}

/** The SwapService RPCs: each parses its request, calls one use case and maps the answer. */
export function swapHandlers(useCases: SwapUseCases, deps: HandlerDeps): SwapServiceServer {
  const { executeSwap, validateSwap, rollbackSwap, queries } = useCases;
  return {
    executeSwap: mutating(deps, async (request, ctx) => {
      const command = toSwapCommand(request);
      const requestId = requireUuid('request_id', request.requestId);
      const { value, replayed } = await executeSwap.execute(command, requestId, ctx);
      return { response: { swap: toSwapMessage(value) }, replayed };
    }),
    validateSwap: unary(deps, async (request, ctx) => {
      const command = toSwapCommand(request);
      if (request.requestId) requireUuid('request_id', request.requestId);
      const { errors, warnings } = await validateSwap.validate(command, ctx);
      return { valid: errors.length === 0, errors, warnings };
    }),
    rollbackSwap: mutating(deps, async (request, ctx) => {
      const swapId = requireUuid('swap_id', request.swapId);
      const reason = requireText('reason', request.reason);
      const requestId = requireUuid('request_id', request.requestId);
      const { value, replayed } = await rollbackSwap.rollback(swapId, reason, requestId, ctx);
      return { response: { swap: toSwapMessage(value) }, replayed };
    }),
    getSwap: unary(deps, async (request, ctx) => {
      const record = await queries.get(requireUuid('swap_id', request.swapId), ctx);
      return { swap: toSwapMessage(record) };
    }),
    listSwaps: unary(deps, async (request, ctx) => {
      const { filter, pageSize, pageToken, view } = toSwapFilter(request);
      const page = await queries.list(filter, pageSize, pageToken, ctx, view);
      return { swaps: page.swaps.map(toSwapMessage), nextPageToken: page.nextPageToken };
    }),
  };
}
