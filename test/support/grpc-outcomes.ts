import { type ServiceError, status } from '@grpc/grpc-js';
import { RetryInfo } from '../../src/generated/google/rpc/error_details';
import { Status } from '../../src/generated/google/rpc/status';
import type { Swap } from '../../src/generated/swap/v1/swap';
import { errorDetails } from './test-service';

/**
 * What a caller was told, in the shapes the tests compare: the error of a call
 * expected to fail, and the outcome of a swap call that may go either way.
 */

/** Whether `error` is a gRPC status error (what a client call rejects with), not a bug in the test. */
export function isServiceError(error: unknown): error is ServiceError {
  return (
    typeof error === 'object' &&
    error !== null &&
    typeof (error as Partial<ServiceError>).code === 'number'
  );
}

/** The gRPC error of a call that must fail; the test fails if it succeeds or throws anything else. */
export async function failure(call: Promise<unknown>): Promise<ServiceError> {
  try {
    await call;
  } catch (error) {
    if (isServiceError(error)) return error;
    throw error;
  }
  throw new Error('expected the call to fail, but it succeeded');
}

/** A swap call's result: the swap, or the status with its reason code (ErrorInfo). */
export type Outcome =
  | { ok: true; swap: Swap }
  | {
      ok: false;
      code: status;
      /** The status's name, e.g. `ABORTED`. */
      codeName: string;
      reason: string;
      message: string;
      error: ServiceError;
    };

/** Settles a swap call (ExecuteSwap, RollbackSwap…) into an Outcome; an OK answer must carry a swap. */
export async function outcomeOf(call: Promise<{ swap?: Swap | undefined }>): Promise<Outcome> {
  try {
    const { swap } = await call;
    if (!swap) throw new Error('an OK response without a swap');
    return { ok: true, swap };
  } catch (error) {
    if (!isServiceError(error)) throw error;
    return {
      ok: false,
      code: error.code,
      codeName: status[error.code] ?? String(error.code),
      reason: errorDetails(error).reason,
      message: error.details,
      error,
    };
  }
}

/** How many outcomes of each kind: `OK`, or `CODE/REASON`. */
export function tally(outcomes: readonly Outcome[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const o of outcomes) {
    const key = o.ok ? 'OK' : `${o.codeName}/${o.reason}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

/** The RetryInfo delay of an error's status details, in ms; undefined when it carries none. */
export function retryDelayMsOf(error: ServiceError): number | undefined {
  const raw = error.metadata.get('grpc-status-details-bin')[0];
  if (!Buffer.isBuffer(raw)) return undefined;
  const detail = Status.decode(raw).details.find((d) => d.typeUrl.endsWith('google.rpc.RetryInfo'));
  if (!detail) return undefined;
  const delay = RetryInfo.decode(detail.value).retryDelay;
  return delay && Number(delay.seconds) * 1000 + delay.nanos / 1_000_000;
}
