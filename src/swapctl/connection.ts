import { readFileSync } from 'node:fs';
import {
  type CallOptions,
  type ChannelCredentials,
  type ChannelOptions,
  type Client,
  credentials,
  makeGenericClientConstructor,
  Metadata,
  type ServiceError,
} from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { AuditServiceClient } from '../generated/swap/v1/audit';
import { ConflictServiceClient } from '../generated/swap/v1/conflict';
import { ScheduleServiceClient } from '../generated/swap/v1/schedule';
import { SwapServiceClient } from '../generated/swap/v1/swap';
import { UsageError } from './usage-error';

/** The connection flags every command takes. */
export interface ConnectionFlags {
  addr: string;
  /** Per-call deadline, as given (`10s`, `500ms`, `2m`). */
  deadline: string;
  tls?: boolean;
  ca?: string;
  cert?: string;
  key?: string;
  serverName?: string;
  token?: string;
  tokenFile?: string;
  onBehalfOf?: string;
}

/** A grpc.health.v1 client (grpc-health-check ships the service definition, not a client). */
export interface HealthClient extends Client {
  check(
    request: { service: string },
    metadata: Metadata,
    options: Partial<CallOptions>,
    callback: (error: ServiceError | null, response: { status: string }) => void,
  ): void;
}
const HealthClientConstructor = makeGenericClientConstructor(
  healthService,
  'Health',
) as unknown as new (
  address: string,
  creds: ChannelCredentials,
  options?: ChannelOptions,
) => HealthClient;

/** One channel to the service and a client of each of its services on it. */
export class Connection {
  readonly swaps: SwapServiceClient;
  readonly conflicts: ConflictServiceClient;
  readonly schedule: ScheduleServiceClient;
  readonly audit: AuditServiceClient;
  readonly health: HealthClient;
  private readonly deadlineMs: number;
  private readonly headers: Record<string, string>;

  constructor(flags: ConnectionFlags) {
    this.deadlineMs = parseDuration('--deadline', flags.deadline);
    this.headers = headersOf(flags);
    const channelCredentials = credentialsOf(flags);
    const options: ChannelOptions = flags.serverName
      ? { 'grpc.ssl_target_name_override': flags.serverName }
      : {};
    this.swaps = new SwapServiceClient(flags.addr, channelCredentials, options);
    // Every other client rides on the first one's channel: one connection per run.
    const shared = { ...options, channelOverride: this.swaps.getChannel() };
    this.conflicts = new ConflictServiceClient(flags.addr, channelCredentials, shared);
    this.schedule = new ScheduleServiceClient(flags.addr, channelCredentials, shared);
    this.audit = new AuditServiceClient(flags.addr, channelCredentials, shared);
    this.health = new HealthClientConstructor(flags.addr, channelCredentials, shared);
  }

  /** Metadata for one call: the bearer token and on-behalf-of header, if given. */
  metadata(): Metadata {
    const metadata = new Metadata();
    for (const [key, value] of Object.entries(this.headers)) metadata.set(key, value);
    return metadata;
  }

  /** Call options for one call: the deadline from now. */
  callOptions(): Partial<CallOptions> {
    return { deadline: new Date(Date.now() + this.deadlineMs) };
  }

  close(): void {
    this.swaps.close();
  }
}

/** A unary method of a ts-proto grpc-js client, in its full-argument form. */
export type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => unknown;

/** Calls a unary method with the connection's metadata and deadline. */
export function call<Req, Res>(
  connection: Connection,
  method: UnaryMethod<Req, Res>,
  request: Req,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    method(request, connection.metadata(), connection.callOptions(), (error, response) =>
      error ? reject(error) : resolve(response),
    );
  });
}

function credentialsOf(flags: ConnectionFlags): ChannelCredentials {
  if ((flags.cert === undefined) !== (flags.key === undefined))
    throw new UsageError('--cert and --key go together (a client certificate and its key)');
  const tls = flags.tls || flags.ca !== undefined || flags.cert !== undefined;
  if (!tls) return credentials.createInsecure();
  const ca = flags.ca === undefined ? null : readFlagFile('--ca', flags.ca);
  const cert = flags.cert === undefined ? null : readFlagFile('--cert', flags.cert);
  const key = flags.key === undefined ? null : readFlagFile('--key', flags.key);
  return credentials.createSsl(ca, key, cert);
}

function headersOf(flags: ConnectionFlags): Record<string, string> {
  if (flags.token !== undefined && flags.tokenFile !== undefined)
    throw new UsageError('give --token or --token-file, not both');
  const token =
    flags.tokenFile !== undefined
      ? readFlagFile('--token-file', flags.tokenFile).toString('utf8').trim()
      : flags.token;
  return {
    ...(token && { authorization: `Bearer ${token}` }),
    ...(flags.onBehalfOf && { 'x-on-behalf-of': flags.onBehalfOf }),
  };
}

function readFlagFile(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new UsageError(`${flag} ${file}: cannot read the file (${code})`);
  }
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000 };

/** `500ms`, `10s`, `2m`, or a bare number of seconds, as milliseconds. */
export function parseDuration(flag: string, value: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value.trim());
  const ms = match ? Number(match[1]) * UNITS[match[2] ?? 's']! : NaN;
  if (!(ms > 0))
    throw new UsageError(
      `${flag} must be a positive duration such as 500ms, 10s or 2m, got "${value}"`,
    );
  return ms;
}
