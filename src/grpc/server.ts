import path from 'node:path';
import { Server, ServerCredentials, type ServerInterceptor } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import type { Logger } from 'pino';
import { ConflictServiceService, type ConflictServiceServer } from '../generated/swap/v1/conflict';
import { SwapServiceService, type SwapServiceServer } from '../generated/swap/v1/swap';

/** Fully qualified names of the services we serve; health reports each. */
export const SWAP_SERVICE_NAME = 'swap.v1.SwapService';
export const CONFLICT_SERVICE_NAME = 'swap.v1.ConflictService';
const SERVED = ['', SWAP_SERVICE_NAME, CONFLICT_SERVICE_NAME];

// src/grpc and dist/grpc sit at the same depth, so this finds the contract from both.
const PROTO_ROOT = path.resolve(__dirname, '../../proto');

export interface GrpcServerOptions {
  host: string;
  port: number;
  reflection: boolean;
  maxConnectionAgeMs: number;
}

/**
 * The gRPC server: our services plus grpc.health.v1 and (optionally) server
 * reflection. It owns the health status, so shutdown can take the process out
 * of rotation before it stops taking calls.
 */
export class GrpcServer {
  private readonly server: Server;
  private readonly health = new HealthImplementation(
    Object.fromEntries(SERVED.map((name) => [name, 'SERVING' as const])),
  );
  private boundPort: number | undefined;

  /**
   * `interceptors` run on every call, the first outermost: it sees the call
   * arrive first and its status leave last.
   */
  constructor(
    private readonly options: GrpcServerOptions,
    handlers: { swaps: SwapServiceServer; conflicts: ConflictServiceServer },
    interceptors: ServerInterceptor[],
    private readonly log: Logger,
  ) {
    this.server = new Server({
      interceptors,
      // Connections are recycled so that clients spread onto replicas added by scaling.
      ...(options.maxConnectionAgeMs > 0 && {
        'grpc.max_connection_age_ms': options.maxConnectionAgeMs,
        'grpc.max_connection_age_grace_ms': 30_000,
      }),
    });
    this.server.addService(SwapServiceService, handlers.swaps);
    this.server.addService(ConflictServiceService, handlers.conflicts);
    this.health.addToServer(this.server);
    if (options.reflection) {
      const definition = loadSync(
        ['swap/v1/swap.proto', 'swap/v1/conflict.proto'].map((file) => path.join(PROTO_ROOT, file)),
        { includeDirs: [PROTO_ROOT] },
      );
      new ReflectionService(definition).addToServer(this.server);
    }
  }

  /** Binds and starts serving; resolves to the bound port (useful with port 0). */
  async start(): Promise<number> {
    const address = `${this.options.host}:${this.options.port}`;
    this.boundPort = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(address, ServerCredentials.createInsecure(), (error, port) =>
        error ? reject(error) : resolve(port),
      );
    });
    return this.boundPort;
  }

  /**
   * Reports NOT_SERVING, stops accepting calls and lets in-flight calls finish
   * for up to `graceMs`; whatever is still running then is cancelled.
   */
  async shutdown(graceMs: number): Promise<void> {
    for (const name of SERVED) this.health.setStatus(name, 'NOT_SERVING');
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        this.log.warn({ graceMs }, 'grace period over; cancelling the calls still running');
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }
}
