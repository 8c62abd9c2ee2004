import {
  type ChannelCredentials,
  Client,
  Metadata,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { ErrorInfo } from '../../src/generated/google/rpc/error_details';
import { Status } from '../../src/generated/google/rpc/status';

/** How one call ended, with the response bytes exactly as they arrived. */
export interface CallResult {
  status: string;
  reason: string;
  message: string;
  replayed: boolean;
  bytes?: Buffer;
}

/** The service of each method the workload calls. */
const SERVICES: Record<string, string> = {
  ExecuteSwap: 'swap.v1.SwapService',
  ValidateSwap: 'swap.v1.SwapService',
  RollbackSwap: 'swap.v1.SwapService',
  GetSwap: 'swap.v1.SwapService',
  ListSwaps: 'swap.v1.SwapService',
  DetectConflicts: 'swap.v1.ConflictService',
  ListConflicts: 'swap.v1.ConflictService',
  GetConflict: 'swap.v1.ConflictService',
  AcknowledgeConflict: 'swap.v1.ConflictService',
  IgnoreConflict: 'swap.v1.ConflictService',
  GetResolutionOptions: 'swap.v1.ConflictService',
  ResolveConflict: 'swap.v1.ConflictService',
  AutoResolve: 'swap.v1.ConflictService',
};

/**
 * A gRPC client of one replica that sends and receives raw bytes: the
 * workload encodes requests itself and keeps each answer's bytes, so the
 * checker can compare replays byte for byte. One channel per replica; grpc-js
 * reconnects it after the replica restarts.
 */
export class ChaosClient {
  private readonly client: Client;

  constructor(port: number, credentials: ChannelCredentials) {
    this.client = new Client(`127.0.0.1:${port}`, credentials, {
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000,
      'grpc.use_local_subchannel_pool': 1,
      // The server certificate names localhost too; TLS's server name indication takes no addresses.
      'grpc.ssl_target_name_override': 'localhost',
    });
  }

  call(method: string, request: Uint8Array, deadlineMs: number): Promise<CallResult> {
    const service = SERVICES[method];
    if (!service) throw new Error(`unknown method ${method}`);
    let replayed = false;
    return new Promise((resolve) => {
      const call = this.client.makeUnaryRequest<Uint8Array, Buffer>(
        `/${service}/${method}`,
        (message) => Buffer.from(message),
        (bytes) => bytes,
        request,
        new Metadata(),
        { deadline: new Date(Date.now() + deadlineMs) },
        (error, bytes) => {
          if (error) resolve(failure(error));
          else resolve({ status: 'OK', reason: '', message: '', replayed, bytes: bytes! });
        },
      );
      call.on('metadata', (metadata: Metadata) => {
        replayed = metadata.get('idempotent-replayed')[0] === 'true';
      });
    });
  }

  close(): void {
    this.client.close();
  }
}

function failure(error: ServiceError | Error): CallResult {
  const code = (error as Partial<ServiceError>).code;
  if (typeof code !== 'number') {
    return { status: 'CLIENT_ERROR', reason: '', message: error.message, replayed: false };
  }
  let reason = '';
  const raw = (error as ServiceError).metadata?.get('grpc-status-details-bin')[0];
  if (Buffer.isBuffer(raw)) {
    try {
      for (const any of Status.decode(raw).details) {
        if (any.typeUrl.endsWith('google.rpc.ErrorInfo'))
          reason = ErrorInfo.decode(any.value).reason;
      }
    } catch {
      reason = 'UNDECODABLE_DETAILS';
    }
  }
  return {
    status: status[code] ?? String(code),
    reason,
    message: (error as ServiceError).details ?? error.message,
    replayed: false,
  };
}
