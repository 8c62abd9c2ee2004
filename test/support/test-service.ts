import { randomUUID } from 'node:crypto';
import {
  type CallOptions as GrpcCallOptions,
  type ChannelCredentials,
  type ChannelOptions,
  credentials,
  type Interceptor,
  Metadata,
  type ServiceError,
} from '@grpc/grpc-js';
import pino, { type Logger } from 'pino';
import { afterAll, beforeAll } from 'vitest';
import { loadConfig } from '../../src/config';
import {
  AcknowledgeConflictRequest,
  type AcknowledgeConflictResponse,
  AutoResolveRequest,
  type AutoResolveResponse,
  ConflictServiceClient,
  DetectConflictsRequest,
  type DetectConflictsResponse,
  GetConflictRequest,
  type GetConflictResponse,
  GetResolutionOptionsRequest,
  type GetResolutionOptionsResponse,
  IgnoreConflictRequest,
  type IgnoreConflictResponse,
  ListConflictsRequest as ListConflictsRequest_,
  type ListConflictsResponse,
  ResolveConflictRequest,
  type ResolveConflictResponse,
} from '../../src/generated/swap/v1/conflict';
import {
  type AuditServiceClient,
  ListAuditEventsRequest,
  type ListAuditEventsResponse,
  VerifyAuditChainRequest,
  type VerifyAuditChainResponse,
} from '../../src/generated/swap/v1/audit';
import {
  ExecuteSwapRequest,
  type ExecuteSwapResponse,
  GetSwapRequest,
  type GetSwapResponse,
  ListSwapsRequest,
  type ListSwapsResponse,
  RollbackSwapRequest,
  type RollbackSwapResponse,
  SwapServiceClient,
  ValidateSwapRequest,
  type ValidateSwapResponse,
} from '../../src/generated/swap/v1/swap';
import {
  ErrorInfo,
  PreconditionFailure,
  BadRequest,
} from '../../src/generated/google/rpc/error_details';
import { Status } from '../../src/generated/google/rpc/status';
import { type RunningService, type ServiceOverrides, startService } from '../../src/main';
import { JwtIssuer } from './jwt-issuer';
import { ScheduleFixture } from './schedule-fixture';
import { TestClock } from './test-clock';
import { createTestDatabase, type TestDatabase } from './test-database';

/** A real service on 127.0.0.1:0 over a database of its own, and a real client. */
export interface TestService {
  service: RunningService;
  /** `127.0.0.1:<port>`, for clients of a test's own. */
  address: string;
  client: SwapServiceClient;
  api: SwapApi;
  conflictClient: ConflictServiceClient;
  conflicts: ConflictApi;
  db: TestDatabase;
  clock: TestClock;
  /** The service's own LOCK_KEY_PREFIX, so no two services share Redis keys unless told to. */
  lockKeyPrefix: string;
  /** Stops the clients and the service, and drops the database if it was created for it. */
  close(): Promise<void>;
}

export interface TestServiceOptions {
  /** Serve this database (another service's, say) instead of a new one; close leaves it. */
  database?: TestDatabase;
  /** What the service's clients connect with (a TLS service needs them); plaintext unless given. */
  clientCredentials?: ChannelCredentials;
  /** The service's logger; pino at TEST_LOG_LEVEL (silent unless set) unless given. */
  log?: Logger;
  /** Interceptors of the service's clients (to add credentials, say). */
  clientInterceptors?: Interceptor[];
  /** Extra write-path hooks, run after the service's own (see ServiceOverrides). */
  writeHooks?: ServiceOverrides['writeHooks'];
}

/** The test calendar: "today" is a Monday, and weeks after it are open to swaps. */
export const TODAY = '2030-01-07';

export async function startTestService(
  env: Record<string, string> = {},
  options: TestServiceOptions = {},
): Promise<TestService> {
  const logLevel = process.env.TEST_LOG_LEVEL ?? 'silent';
  const db = options.database ?? (await createTestDatabase());
  const ownsDatabase = !options.database;
  const lockKeyPrefix = `t${randomUUID().slice(0, 8)}`;
  const clock = new TestClock(new Date(`${TODAY}T12:00:00Z`));
  const config = loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: db.url,
    GRPC_HOST: '127.0.0.1',
    GRPC_PORT: '0',
    LOG_LEVEL: 'silent',
    DB_POOL_MAX: '10',
    // The Redis path runs whenever the machine has Redis (CI sets REDIS_URL); each
    // service gets its own key prefix, so neither test files nor a restarted
    // service share lock keys or cached replies.
    ...(process.env.REDIS_URL && { REDIS_URL: process.env.REDIS_URL }),
    LOCK_KEY_PREFIX: lockKeyPrefix,
    ...env,
  });
  const log = options.log ?? pino({ level: logLevel });
  const service = await startService(config, { clock, log, writeHooks: options.writeHooks });
  const address = `127.0.0.1:${service.port}`;
  const channelCredentials = options.clientCredentials ?? credentials.createInsecure();
  const clientOptions = { ...CLIENT_OPTIONS, interceptors: options.clientInterceptors ?? [] };
  const client = new SwapServiceClient(address, channelCredentials, clientOptions);
  const conflictClient = new ConflictServiceClient(address, channelCredentials, clientOptions);
  return {
    service,
    address,
    client,
    api: swapApi(client),
    conflictClient,
    conflicts: conflictApi(conflictClient),
    db,
    clock,
    lockKeyPrefix: config.redis.keyPrefix,
    close: async () => {
      client.close();
      conflictClient.close();
      await service.stop();
      if (ownsDatabase) await db.drop();
    },
  };
}

// Connections of their own, so a service started after another one stopped
// on the same port never reaches a subchannel grpc-js kept for the first.
const CLIENT_OPTIONS: ChannelOptions = { 'grpc.use_local_subchannel_pool': 1 };

/**
 * A SwapService client on a connection of its own to `ts`, with `channelCredentials`
 * (a client certificate, say) and any extra channel `options`; the caller closes it.
 */
export function swapClientOf(
  ts: Pick<TestService, 'address'>,
  channelCredentials: ChannelCredentials,
  options: ChannelOptions = {},
): { client: SwapServiceClient; api: SwapApi } {
  const client = new SwapServiceClient(ts.address, channelCredentials, {
    ...CLIENT_OPTIONS,
    ...options,
  });
  return { client, api: swapApi(client) };
}

/** What useTestService hands the tests: a service and a fixture on its database. */
export interface ServiceAndFixture {
  ts: TestService;
  fx: ScheduleFixture;
}

/**
 * The usual set-up of a file (or describe block) of gRPC tests: before its
 * tests, starts a test service (with `env`, or what it returns then) and a
 * schedule fixture on its database, and hands both to `ready`; after them,
 * closes both. Hooks registered later run after it and, in afterAll, before it.
 */
export function useTestService(
  ready: (started: ServiceAndFixture) => void,
  env: Record<string, string> | (() => Record<string, string>) = {},
  options: TestServiceOptions | (() => TestServiceOptions) = {},
): void {
  let started: Partial<ServiceAndFixture> = {};
  beforeAll(async () => {
    started.ts = await startTestService(
      typeof env === 'function' ? env() : env,
      typeof options === 'function' ? options() : options,
    );
    started.fx = await ScheduleFixture.connect(started.ts.db.url);
    ready({ ts: started.ts, fx: started.fx });
  });
  afterAll(async () => {
    const { ts, fx } = started;
    started = {};
    await fx?.close();
    await ts?.close();
  });
}

/** What useTokenAuthenticatedService hands the tests: the service, fixture and identity provider. */
export interface AuthenticatedServiceAndFixture extends ServiceAndFixture {
  issuer: JwtIssuer;
}

/**
 * Like {@link useTestService}, for a service that authenticates callers by
 * bearer token: it first starts a test identity provider ({@link JwtIssuer})
 * that the service trusts, with `env` added, and closes it after the service.
 */
export function useTokenAuthenticatedService(
  ready: (started: AuthenticatedServiceAndFixture) => void,
  env: Record<string, string> = {},
  options: TestServiceOptions = {},
): void {
  let issuer: JwtIssuer | undefined;
  beforeAll(async () => {
    issuer = await JwtIssuer.start();
  });
  afterAll(() => issuer?.close());
  useTestService(
    (started) => ready({ ...started, issuer: issuer! }),
    () => ({ ...issuer!.env(), ...env }),
    options,
  );
}

export interface CallOptions {
  deadline?: Date;
  metadata?: Metadata;
}

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<GrpcCallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => unknown;

function promised<Req, Res>(method: UnaryMethod<Req, Res>, fill: (partial: Partial<Req>) => Req) {
  return (request: Partial<Req>, options: CallOptions = {}): Promise<Res> =>
    new Promise((resolve, reject) => {
      const deadline = options.deadline ?? new Date(Date.now() + 30_000);
      method(fill(request), options.metadata ?? new Metadata(), { deadline }, (error, response) =>
        error ? reject(error) : resolve(response),
      );
    });
}

/** The SwapService client with promises; every call has a deadline. */
export function swapApi(client: SwapServiceClient) {
  return {
    executeSwap: promised<ExecuteSwapRequest, ExecuteSwapResponse>(
      (req, md, opts, cb) => client.executeSwap(req, md, opts, cb),
      (p) => ExecuteSwapRequest.fromPartial(p),
    ),
    validateSwap: promised<ValidateSwapRequest, ValidateSwapResponse>(
      (req, md, opts, cb) => client.validateSwap(req, md, opts, cb),
      (p) => ValidateSwapRequest.fromPartial(p),
    ),
    rollbackSwap: promised<RollbackSwapRequest, RollbackSwapResponse>(
      (req, md, opts, cb) => client.rollbackSwap(req, md, opts, cb),
      (p) => RollbackSwapRequest.fromPartial(p),
    ),
    getSwap: promised<GetSwapRequest, GetSwapResponse>(
      (req, md, opts, cb) => client.getSwap(req, md, opts, cb),
      (p) => GetSwapRequest.fromPartial(p),
    ),
    listSwaps: promised<ListSwapsRequest, ListSwapsResponse>(
      (req, md, opts, cb) => client.listSwaps(req, md, opts, cb),
      (p) => ListSwapsRequest.fromPartial(p),
    ),
  };
}
export type SwapApi = ReturnType<typeof swapApi>;

/** The ConflictService client with promises; every call has a deadline. */
export function conflictApi(client: ConflictServiceClient) {
  return {
    detectConflicts: promised<DetectConflictsRequest, DetectConflictsResponse>(
      (req, md, opts, cb) => client.detectConflicts(req, md, opts, cb),
      (p) => DetectConflictsRequest.fromPartial(p),
    ),
    listConflicts: promised<ListConflictsRequest_, ListConflictsResponse>(
      (req, md, opts, cb) => client.listConflicts(req, md, opts, cb),
      (p) => ListConflictsRequest_.fromPartial(p),
    ),
    getConflict: promised<GetConflictRequest, GetConflictResponse>(
      (req, md, opts, cb) => client.getConflict(req, md, opts, cb),
      (p) => GetConflictRequest.fromPartial(p),
    ),
    acknowledgeConflict: promised<AcknowledgeConflictRequest, AcknowledgeConflictResponse>(
      (req, md, opts, cb) => client.acknowledgeConflict(req, md, opts, cb),
      (p) => AcknowledgeConflictRequest.fromPartial(p),
    ),
    ignoreConflict: promised<IgnoreConflictRequest, IgnoreConflictResponse>(
      (req, md, opts, cb) => client.ignoreConflict(req, md, opts, cb),
      (p) => IgnoreConflictRequest.fromPartial(p),
    ),
    getResolutionOptions: promised<GetResolutionOptionsRequest, GetResolutionOptionsResponse>(
      (req, md, opts, cb) => client.getResolutionOptions(req, md, opts, cb),
      (p) => GetResolutionOptionsRequest.fromPartial(p),
    ),
    resolveConflict: promised<ResolveConflictRequest, ResolveConflictResponse>(
      (req, md, opts, cb) => client.resolveConflict(req, md, opts, cb),
      (p) => ResolveConflictRequest.fromPartial(p),
    ),
    autoResolve: promised<AutoResolveRequest, AutoResolveResponse>(
      (req, md, opts, cb) => client.autoResolve(req, md, opts, cb),
      (p) => AutoResolveRequest.fromPartial(p),
    ),
  };
}
export type ConflictApi = ReturnType<typeof conflictApi>;

/** The AuditService client with promises; every call has a deadline. */
export function auditApi(client: AuditServiceClient) {
  return {
    listAuditEvents: promised<ListAuditEventsRequest, ListAuditEventsResponse>(
      (req, md, opts, cb) => client.listAuditEvents(req, md, opts, cb),
      (p) => ListAuditEventsRequest.fromPartial(p),
    ),
    verifyAuditChain: promised<VerifyAuditChainRequest, VerifyAuditChainResponse>(
      (req, md, opts, cb) => client.verifyAuditChain(req, md, opts, cb),
      (p) => VerifyAuditChainRequest.fromPartial(p),
    ),
  };
}
export type AuditApi = ReturnType<typeof auditApi>;

/** The reason code, violations and field violations carried in a status's details. */
export function errorDetails(error: ServiceError): {
  reason: string;
  violations: string[];
  fields: string[];
} {
  const raw = error.metadata.get('grpc-status-details-bin')[0];
  if (!Buffer.isBuffer(raw)) return { reason: '', violations: [], fields: [] };
  const status = Status.decode(raw);
  let reason = '';
  const violations: string[] = [];
  const fields: string[] = [];
  for (const any of status.details) {
    if (any.typeUrl.endsWith('google.rpc.ErrorInfo')) reason = ErrorInfo.decode(any.value).reason;
    if (any.typeUrl.endsWith('google.rpc.PreconditionFailure')) {
      violations.push(...PreconditionFailure.decode(any.value).violations.map((v) => v.type));
    }
    if (any.typeUrl.endsWith('google.rpc.BadRequest')) {
      fields.push(...BadRequest.decode(any.value).fieldViolations.map((v) => v.field));
    }
  }
  return { reason, violations, fields };
}
