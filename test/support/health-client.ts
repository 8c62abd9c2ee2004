import {
  type ChannelCredentials,
  type Client,
  type ClientReadableStream,
  credentials,
  makeGenericClientConstructor,
  type ServiceError,
} from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';

/** A grpc.health.v1 client, for tests that ask the service how it is. */

export type HealthStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

export interface HealthClient extends Client {
  check(
    request: { service: string },
    options: { deadline: Date },
    callback: (error: ServiceError | null, response: { status: HealthStatus }) => void,
  ): void;
  watch(request: { service: string }): ClientReadableStream<{ status: HealthStatus }>;
}

const HealthClientConstructor = makeGenericClientConstructor(
  healthService,
  'Health',
) as unknown as new (address: string, creds: ChannelCredentials, options?: object) => HealthClient;

/** A client on a connection of its own (not shared through grpc-js's global subchannel pool). */
export function freshHealthClient(
  address: string,
  channelCredentials: ChannelCredentials = credentials.createInsecure(),
): HealthClient {
  return new HealthClientConstructor(address, channelCredentials, {
    'grpc.use_local_subchannel_pool': 1,
  });
}

export function checkHealth(client: HealthClient, service: string): Promise<HealthStatus> {
  return new Promise((resolve, reject) => {
    client.check({ service }, { deadline: new Date(Date.now() + 5_000) }, (error, response) =>
      error ? reject(error) : resolve(response.status),
    );
  });
}
