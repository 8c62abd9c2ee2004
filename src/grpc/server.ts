import {
  Server,
  ServerCredentials,
  type ServerInterceptor,
  type ServerOptions,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import type { Logger } from 'pino';
import type { TlsConfig, TransportLimits } from '../config';
import { AuditServiceService, type AuditServiceServer } from '../generated/swap/v1/audit';
import { ConflictServiceService, type ConflictServiceServer } from '../generated/swap/v1/conflict';
import { ScheduleServiceService, type ScheduleServiceServer } from '../generated/swap/v1/schedule';
import { SwapServiceService, type SwapServiceServer } from '../generated/swap/v1/swap';
import { enforcePingPolicy } from './ping-policy';
import {
  refuseUndecodableRequests,
  withSafeDecoding,
  withStrictDecoding,
} from './request-decoding';
import { REFLECTION_SERVICE_NAMES, ReflectionService } from './reflection-service';
import { createServerCredentials } from './server-credentials';
import { ignoreMalformedTimeouts } from './timeout-header';

/** Fully qualified names of the services we serve; health reports each. */
export const SWAP_SERVICE_NAME = 'swap.v1.SwapService';
export const CONFLICT_SERVICE_NAME = 'swap.v1.ConflictService';
export const AUDIT_SERVICE_NAME = 'swap.v1.AuditService';
export const SCHEDULE_SERVICE_NAME = 'swap.v1.ScheduleService';
/**
 * Readiness: each service is SERVING while its dependency (the database) is
 * reachable. '' is liveness: SERVING while the process serves at all, whatever
 * the database does, so kubelet never restarts a healthy process for an outage
 * that a restart cannot fix (and would only add a cold start to).
 */
const READINESS = [
  SWAP_SERVICE_NAME,
  CONFLICT_SERVICE_NAME,
  AUDIT_SERVICE_NAME,
  SCHEDULE_SERVICE_NAME,
];
const SERVED = ['', ...READINESS];
const HEALTH_SERVICE_NAME = 'grpc.health.v1.Health';

export interface GrpcServerOptions {
  host: string;
  port: number;
  reflection: boolean;
  maxConnectionAgeMs: number;
  /** Absent: plaintext. */
  tls: TlsConfig | undefined;
  /** A plaintext port serving only grpc.health.v1 (for probes that cannot speak TLS); 0: none. */
  healthPort: number;
  limits: TransportLimits;
}

/**
 * The gRPC server: our services plus grpc.health.v1 and (optionally) server
 * reflection. It owns the health status, so shutdown can take the process out
 * of rotation before it stops taking calls.
 */
export class GrpcServer {
  private readonly server: Server;
  private readonly healthServer: Server | undefined;
  private readonly health = new HealthImplementation(
    Object.fromEntries(SERVED.map((name) => [name, 'SERVING' as const])),
  );
  private boundPort: number | undefined;
  /** Fully qualified names of the services added to `server`, which reflection lists. */
  private readonly servedServices: string[] = [];
  private draining = false;

  /**
   * `interceptors` run on every call, the first outermost: it sees the call
   * arrive first and its status leave last.
   */
  constructor(
    private readonly options: GrpcServerOptions,
    handlers: {
      swaps: SwapServiceServer;
      conflicts: ConflictServiceServer;
      audit: AuditServiceServer;
      schedule: ScheduleServiceServer;
    },
    interceptors: ServerInterceptor[],
    private readonly log: Logger,
  ) {
    // Innermost, so a caller refused for other reasons (credentials, load) learns that first.
    const undecodable = refuseUndecodableRequests(log);
    this.server = new Server({
      interceptors: [...interceptors, undecodable],
      ...transportOptions(options),
    });
    this.serve(SwapServiceService, handlers.swaps);
    this.serve(ConflictServiceService, handlers.conflicts);
    this.serve(AuditServiceService, handlers.audit);
    this.serve(ScheduleServiceService, handlers.schedule);
    this.health.addToServer(decodingSafely(this.server));
    this.servedServices.push(HEALTH_SERVICE_NAME);
    if (options.reflection) {
      this.servedServices.push(...REFLECTION_SERVICE_NAMES);
      ReflectionService.fromGeneratedDescriptors(this.servedServices).addToServer(
        decodingSafely(this.server),
      );
    }
    // Probes call health every few seconds; they are neither logged nor measured.
    if (options.healthPort > 0) {
      this.healthServer = new Server({ interceptors: [undecodable], ...transportOptions(options) });
      this.health.addToServer(decodingSafely(this.healthServer));
    }
  }

  /** Adds a service to the main port, and to what reflection lists. */
  private serve(definition: ServiceDefinition, implementation: UntypedServiceImplementation) {
    this.server.addService(withStrictDecoding(definition), implementation);
    this.servedServices.push(serviceNameOf(definition));
  }

  /** Binds and starts serving; resolves to the bound port (useful with port 0). */
  async start(): Promise<number> {
    const { credentials } = createServerCredentials(this.options.tls, this.log);
    this.boundPort = await this.listen(this.server, this.options.port, credentials);
    if (this.healthServer) {
      const port = await this.listen(
        this.healthServer,
        this.options.healthPort,
        ServerCredentials.createInsecure(),
      );
      this.log.info({ port }, 'serving grpc.health.v1 in plaintext for probes');
    }
    return this.boundPort;
  }

  private async listen(server: Server, port: number, credentials: ServerCredentials) {
    const bound = await new Promise<number>((resolve, reject) => {
      server.bindAsync(`${this.options.host}:${port}`, credentials, (error, p) =>
        error ? reject(error) : resolve(p),
      );
    });
    // Attached in the same tick as the listen completes (grpc-js resolves
    // through promises only), so no connection is accepted unwatched.
    enforcePingPolicy(
      server,
      {
        minIntervalMs: this.options.limits.keepaliveMinPingIntervalMs,
        permitWithoutCalls: this.options.limits.keepalivePermitWithoutCalls,
      },
      this.log,
    );
    ignoreMalformedTimeouts(server, this.log);
    return bound;
  }

  /**
   * Readiness of the services (not of '', liveness): NOT_SERVING while the
   * database is unreachable. Ignored once draining, which is final.
   */
  setReady(ready: boolean): void {
    if (this.draining) return;
    for (const name of READINESS) this.health.setStatus(name, ready ? 'SERVING' : 'NOT_SERVING');
  }

  /**
   * Reports NOT_SERVING, stops accepting calls and lets in-flight calls finish
   * for up to `graceMs`; whatever is still running then is cancelled.
   */
  async shutdown(graceMs: number): Promise<void> {
    this.draining = true;
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
    // Last, so probes see NOT_SERVING (not a refused connection) while calls drain.
    this.healthServer?.forceShutdown();
  }
}

/**
 * `server` as libraries that add their own services (health, reflection) see
 * it: what they add gets deserializers that never throw.
 */
function decodingSafely(server: Server): Server {
  const adding: Pick<Server, 'addService'> = {
    addService: (service, implementation) =>
      server.addService(withSafeDecoding(service), implementation),
  };
  // They call nothing but addService.
  return adding as Server;
}

/** `swap.v1.SwapService` for a definition whose methods are `/swap.v1.SwapService/…`. */
function serviceNameOf(definition: ServiceDefinition): string {
  const [method] = Object.values(definition);
  if (!method) throw new Error('a service definition without methods');
  return method.path.split('/')[1] ?? '';
}

/** Server options every port shares: connection lifetime and what one connection may ask. */
function transportOptions(options: GrpcServerOptions): ServerOptions {
  const { limits } = options;
  return {
    'grpc.max_receive_message_length': limits.maxReceiveMessageBytes,
    'grpc.max_send_message_length': limits.maxSendMessageBytes,
    // Announced in SETTINGS: a client queues calls beyond it, so no connection
    // runs more than this many handlers (and database transactions) at once.
    'grpc.max_concurrent_streams': limits.maxConcurrentStreams,
    ...(limits.maxConnectionIdleMs > 0 && {
      'grpc.max_connection_idle_ms': limits.maxConnectionIdleMs,
    }),
    // Connections are recycled so that clients spread onto replicas added by scaling.
    ...(options.maxConnectionAgeMs > 0 && {
      'grpc.max_connection_age_ms': options.maxConnectionAgeMs,
      'grpc.max_connection_age_grace_ms': 30_000,
    }),
  };
}
