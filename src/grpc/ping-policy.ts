import { EventEmitter } from 'node:events';
import http2 from 'node:http2';
import type { Server } from '@grpc/grpc-js';
import type { Logger } from 'pino';

/** How often a client may ping a connection (gRPC's keepalive enforcement policy). */
export interface PingPolicy {
  /** Pings closer together than this are strikes. */
  minIntervalMs: number;
  /** Whether pings on a connection without an open call are allowed at all. */
  permitWithoutCalls: boolean;
}

/** Strikes tolerated before the connection is closed; grpc-go's and gRPC core's default. */
const MAX_PING_STRIKES = 2;
/** Without open calls (and not permitted), a ping within this of the last one is a strike. */
const IDLE_PING_INTERVAL_MS = 2 * 60 * 60 * 1000;
const TOO_MANY_PINGS = Buffer.from('too_many_pings');

/**
 * The ping strikes of one connection, by the rules grpc-go's server applies: a
 * ping sooner than the policy allows after the previous one is a strike, a
 * ping after a new call was opened is forgiven along with the strikes before
 * it, and more than two strikes end the connection.
 */
export class PingStrikes {
  private lastPingAt: number | undefined;
  private strikes = 0;
  private forgive = false;

  constructor(private readonly policy: PingPolicy) {}

  /** A call was opened: the client is working, so earlier pings are forgiven. */
  callOpened(): void {
    this.forgive = true;
  }

  /** Records a ping; true when it is one strike too many and the connection must go. */
  ping(now: number, openCalls: number): boolean {
    const last = this.lastPingAt;
    this.lastPingAt = now;
    if (this.forgive) {
      this.forgive = false;
      this.strikes = 0;
      return false;
    }
    const interval =
      openCalls === 0 && !this.policy.permitWithoutCalls
        ? IDLE_PING_INTERVAL_MS
        : this.policy.minIntervalMs;
    if (last !== undefined && now - last < interval) this.strikes++;
    return this.strikes > MAX_PING_STRIKES;
  }
}

/**
 * Enforces `policy` on every connection of `server`, answering a client that
 * pings too often with GOAWAY ENHANCE_YOUR_CALM "too_many_pings" (gRFC A8:
 * a gRPC client then doubles its keepalive interval) and closing the
 * connection once its calls finish. grpc-js servers do not enforce any ping
 * policy, so without this a client can make the server answer pings as fast as
 * it sends them. Call it right after the server is bound, in the same tick, so
 * no connection is accepted before it.
 */
export function enforcePingPolicy(server: Server, policy: PingPolicy, log: Logger): void {
  for (const http2Server of http2ServersOf(server)) {
    http2Server.on('session', (session: http2.ServerHttp2Session) =>
      watchSession(session, policy, log),
    );
  }
}

function watchSession(session: http2.ServerHttp2Session, policy: PingPolicy, log: Logger): void {
  const strikes = new PingStrikes(policy);
  let openCalls = 0;
  let lastStreamId = 0;
  session.on('stream', (stream) => {
    openCalls++;
    lastStreamId = Math.max(lastStreamId, stream.id ?? 0);
    strikes.callOpened();
    stream.once('close', () => openCalls--);
  });
  session.on('ping', () => {
    if (session.closed || !strikes.ping(Date.now(), openCalls)) return;
    log.warn(
      { peer: session.socket?.remoteAddress, minIntervalMs: policy.minIntervalMs },
      'client pinged too often; GOAWAY too_many_pings',
    );
    session.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, lastStreamId, TOO_MANY_PINGS);
    session.close();
  });
}

/**
 * The HTTP/2 servers behind a grpc-js Server. grpc-js keeps them in a private
 * map and offers no hook on connections; the shape is checked, so a grpc-js
 * upgrade that changes it fails the start (and the keepalive test) instead of
 * silently dropping the policy.
 */
export function http2ServersOf(server: Server): http2.Http2Server[] {
  const servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  const found = servers instanceof Map ? [...(servers as Map<unknown, unknown>).keys()] : [];
  const isServer = (s: unknown) =>
    s instanceof EventEmitter && typeof (s as { address?: unknown }).address === 'function';
  if (found.length === 0 || !found.every(isServer)) {
    throw new Error(
      'grpc-js no longer exposes its HTTP/2 servers as `http2Servers`; the ping policy cannot be enforced',
    );
  }
  return found as http2.Http2Server[];
}
