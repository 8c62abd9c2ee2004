import { randomUUID } from 'node:crypto';
import { credentials, Metadata } from '@grpc/grpc-js';
import { budgetOf } from '../src/domain/call-budget';
import { SwapServiceClient, SwapType } from '../src/generated/swap/v1/swap';
import type { SwapExecutor } from '../src/swaps/swap-executor';
import type { SwapDriver } from './load-runner';
import type { RawSqlSwap } from './raw-sql-swap';
import { nextSwapOf } from './swap-pairs';

const DEADLINE_MS = 30_000;

/**
 * The actor each mode's swaps are recorded under (`requested_by`), so the
 * checks can tell which mode raised what.
 */
export function actorOf(mode: string): string {
  return `bench-${mode}`;
}

/** ExecuteSwap over a real gRPC channel: the whole service path. */
export function grpcDriver(port: number, actor: string): { driver: SwapDriver; close(): void } {
  const client = new SwapServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
  const driver: SwapDriver = (pair) => {
    const command = nextSwapOf(pair);
    const metadata = new Metadata();
    metadata.set('x-actor', actor);
    return new Promise((resolve, reject) => {
      client.executeSwap(
        {
          sourceFacultyId: command.sourceFacultyId,
          sourceWeek: command.sourceWeek,
          targetFacultyId: command.targetFacultyId,
          targetWeek: command.targetWeek ?? '',
          swapType: SwapType.SWAP_TYPE_ONE_TO_ONE,
          reason: command.reason,
          requestId: randomUUID(),
        },
        metadata,
        { deadline: new Date(Date.now() + DEADLINE_MS) },
        (error) => (error ? reject(error) : resolve()),
      );
    });
  };
  return { driver, close: () => client.close() };
}

/** The use case called directly: the service path minus gRPC and request mapping. */
export function executorDriver(executor: SwapExecutor, actor: string): SwapDriver {
  return async (pair) => {
    await executor.execute(nextSwapOf(pair), actor, budgetOf(DEADLINE_MS));
  };
}

/** The same work by hand over pg and ioredis: the floor the others are compared with. */
export function rawSqlDriver(raw: RawSqlSwap, actor: string): SwapDriver {
  return (pair) => raw.execute(nextSwapOf(pair), actor);
}
