import {
  type CallOptions as GrpcCallOptions,
  type ClientUnaryCall,
  Metadata,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import {
  ExecuteSwapRequest,
  type ExecuteSwapResponse,
  RollbackSwapRequest,
  type RollbackSwapResponse,
  type SwapServiceClient,
} from '../../src/generated/swap/v1/swap';
import { REPLAYED_HEADER } from '../../src/grpc/unary-handler';

/**
 * Mutating calls that also report whether the server said their answer was
 * replayed (the REPLAYED_HEADER response header), for the idempotency tests.
 */

/** What one call got back: the response or the error, and the replay header. */
export type Answer<Res> =
  | { ok: true; response: Res; replayed: boolean }
  | { ok: false; error: ServiceError; replayed: boolean };

export interface AskOptions {
  /** Sent as `authorization: Bearer …`; the service scopes idempotency keys by its principal. */
  token?: string;
  /** More request headers, e.g. `x-on-behalf-of`. */
  headers?: Record<string, string>;
  /** 30 s unless given. */
  deadlineMs?: number;
}

type Invoke<Res> = (
  metadata: Metadata,
  options: Partial<GrpcCallOptions>,
  callback: (error: ServiceError | null, response?: Res) => void,
) => ClientUnaryCall;

function ask<Res>(invoke: Invoke<Res>, options: AskOptions): Promise<Answer<Res>> {
  const metadata = new Metadata();
  if (options.token) metadata.set('authorization', `Bearer ${options.token}`);
  for (const [key, value] of Object.entries(options.headers ?? {})) metadata.set(key, value);
  const deadline = new Date(Date.now() + (options.deadlineMs ?? 30_000));
  return new Promise((resolve) => {
    let replayed = false;
    const call = invoke(metadata, { deadline }, (error, response) =>
      resolve(error ? { ok: false, error, replayed } : { ok: true, response: response!, replayed }),
    );
    // Response headers arrive before the message and the status, so before the callback.
    call.on('metadata', (headers: Metadata) => {
      replayed = headers.get(REPLAYED_HEADER)[0] === 'true';
    });
  });
}

export function executeSwapAnswer(
  client: SwapServiceClient,
  request: Partial<ExecuteSwapRequest>,
  options: AskOptions = {},
): Promise<Answer<ExecuteSwapResponse>> {
  return ask<ExecuteSwapResponse>(
    (md, opts, cb) => client.executeSwap(ExecuteSwapRequest.fromPartial(request), md, opts, cb),
    options,
  );
}

export function rollbackSwapAnswer(
  client: SwapServiceClient,
  request: Partial<RollbackSwapRequest>,
  options: AskOptions = {},
): Promise<Answer<RollbackSwapResponse>> {
  return ask<RollbackSwapResponse>(
    (md, opts, cb) => client.rollbackSwap(RollbackSwapRequest.fromPartial(request), md, opts, cb),
    options,
  );
}

/** The response of an OK answer; anything else fails the test with the status in the message. */
export function okResponse<Res>(answer: Answer<Res>): Res {
  if (!answer.ok)
    throw new Error(`expected OK, got ${status[answer.error.code]}: ${answer.error.details}`);
  return answer.response;
}

/** The error of a failed answer; an OK answer fails the test. */
export function errorOf<Res>(answer: Answer<Res>): ServiceError {
  if (answer.ok) throw new Error('expected an error, got OK');
  return answer.error;
}
