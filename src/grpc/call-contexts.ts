import type { Metadata, ServerInterceptor } from '@grpc/grpc-js';
import { ServerInterceptingCall } from '@grpc/grpc-js';
import type { CallBudget } from '../domain/call-budget';
import type { Caller, CallContext } from '../domain/call-context';
import { CallCancelledError, DeadlineExceededError } from '../domain/errors';

/**
 * The call context of every call in flight, looked up by the handler through
 * the call's metadata (which grpc-js hands unchanged from the interceptors to
 * the handler). It is built in two steps: {@link interceptor} gives each call
 * its budget as the metadata arrives; the authentication interceptor, which
 * runs inside it, then {@link admit}s the call with the caller it proved. A
 * call that authentication refused never has a context.
 */
export class CallContexts {
  // Entries go when the call's metadata does.
  private readonly budgets = new WeakMap<Metadata, CallBudget>();
  private readonly byMetadata = new WeakMap<Metadata, CallContext>();

  constructor(private readonly defaultDeadlineMs: number) {}

  /**
   * The interceptor that gives each call its budget: it ends at the gRPC
   * deadline (or `defaultDeadlineMs` from now when the caller set none), and
   * its signal fires when the caller cancels. It must be in the server's
   * chain, before the authentication interceptor.
   */
  readonly interceptor: ServerInterceptor = (_method, call) => {
    const cancelled = new AbortController();
    const deadline = deadlineOf(call.getDeadline(), this.defaultDeadlineMs);
    return new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, nextMetadata) => {
            this.budgets.set(metadata, { deadline, signal: cancelled.signal });
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

  /** Completes a call's context with the caller that authentication established. */
  admit(metadata: Metadata, caller: Caller): void {
    const budget = this.budgets.get(metadata);
    if (!budget) throw new Error('no call budget: CallContexts.interceptor must run first');
    this.byMetadata.set(metadata, { caller, budget });
  }

  /** The context of a call, by its metadata, if the call was admitted. */
  find(metadata: Metadata): CallContext | undefined {
    return this.byMetadata.get(metadata);
  }

  /** The context of a call, by its metadata. */
  of(metadata: Metadata): CallContext {
    const context = this.byMetadata.get(metadata);
    if (!context)
      throw new Error('no call context: the authentication interceptor is not installed');
    return context;
  }
}

function deadlineOf(deadline: Date | number, fallbackMs: number): number {
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(at) ? at : Date.now() + fallbackMs;
}
