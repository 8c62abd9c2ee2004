import { type ServerInterceptor, ServerInterceptingCall } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { OverloadedError } from '../domain/errors';
import { toGrpcError } from './error-boundary';

/** Health and reflection take no database connection, and Watch streams stay open for long. */
const UNCOUNTED = ['/grpc.health.v1.Health/', '/grpc.reflection.'];
/** What a shed caller is told to wait: long enough for a few calls to finish. */
const RETRY_AFTER_MS = 250;

/**
 * Bounds the calls the whole process runs at once. Max concurrent streams
 * bounds one connection; many connections could still queue more calls on the
 * database pool than it can serve before their deadlines. A call beyond the
 * bound is answered RESOURCE_EXHAUSTED (OVERLOADED, with RetryInfo) as soon as
 * its headers arrive, before authentication or any handler: it never takes a
 * database connection. Place it after logging and metrics, so shed calls are
 * still logged and counted.
 *
 * A call leaves the count when its status is sent or the client cancels it
 * (whichever comes first; a cancelled handler stops at its next check).
 */
export function inFlightLimit(maxCalls: number, log: Logger): ServerInterceptor {
  let inFlight = 0;
  return (descriptor, call) => {
    if (UNCOUNTED.some((prefix) => descriptor.path.startsWith(prefix))) {
      return new ServerInterceptingCall(call);
    }
    if (inFlight >= maxCalls) {
      const error = new OverloadedError(maxCalls, RETRY_AFTER_MS);
      return new ServerInterceptingCall(call, {
        start: (next) =>
          next({
            onReceiveMetadata: () =>
              call.sendStatus(toGrpcError(error, log.child({ method: descriptor.path }))),
            onReceiveMessage: () => undefined,
            onReceiveHalfClose: () => undefined,
          }),
      });
    }
    inFlight++;
    let counted = true;
    const leave = () => {
      if (!counted) return;
      counted = false;
      inFlight--;
    };
    return new ServerInterceptingCall(call, {
      start: (next) => next({ onCancel: leave }),
      sendStatus: (sent, next) => {
        leave();
        next(sent);
      },
    });
  };
}
