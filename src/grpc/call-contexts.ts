import type { Metadata, ServerInterceptor } from '@grpc/grpc-js';
import { ServerInterceptingCall } from '@grpc/grpc-js';
import type { CallContext } from '../domain/call-context';
import { CallCancelledError, DeadlineExceededError } from '../domain/errors';

const ACTOR_KEY = 'x-actor';
const MAX_ACTOR_LENGTH = 200;

/**
 * The call context of every call in flight, built by an interceptor as the
 * call's metadata arrives and looked up by the handler through that metadata.
 * The budget ends at the gRPC deadline (or `defaultDeadlineMs` from now when
 * the caller set none), and its signal fires when the caller cancels.
 */
export class CallContexts {
  // Keyed by the call's metadata object, which grpc-js hands unchanged from
  // the interceptors to the handler; entries go when the call does.
  private readonly byMetadata = new WeakMap<Metadata, CallContext>();

  constructor(private readonly defaultDeadlineMs: number) {}

  /** The interceptor that builds each call's context; it must be in the server's chain. */
  readonly interceptor: ServerInterceptor = (_method, call) => {
    const cancelled = new AbortController();
    const deadline = deadlineOf(call.getDeadline(), this.defaultDeadlineMs);
    return new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, nextMetadata) => {
            this.byMetadata.set(metadata, {
              actor: actorOf(metadata),
              budget: { deadline, signal: cancelled.signal },
            });
            nextMetadata(metadata);
          },
          // grpc-js cancels a call when its deadline passes, too.
          onCancel: () =>
            cancelled.abort(
              Date.now() >= deadline
                ? new DeadlineExceededError('the call ran out of time')
                : new CallCancelledError(),
            ),
        }),
    });
  };

  /** The context of a call, by its metadata, if the interceptor has built one. */
  find(metadata: Metadata): CallContext | undefined {
    return this.byMetadata.get(metadata);
  }

  /** The context of a call, by its metadata. */
  of(metadata: Metadata): CallContext {
    const context = this.byMetadata.get(metadata);
    if (!context) throw new Error('no call context: CallContexts.interceptor is not installed');
    return context;
  }
}

function deadlineOf(deadline: Date | number, fallbackMs: number): number {
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(at) ? at : Date.now() + fallbackMs;
}

// Until authentication binds it to a principal, the actor is whatever the caller says.
function actorOf(metadata: Metadata): string {
  const value = metadata.get(ACTOR_KEY)[0];
  const actor = typeof value === 'string' ? value.trim().slice(0, MAX_ACTOR_LENGTH) : '';
  return actor || 'anonymous';
}
