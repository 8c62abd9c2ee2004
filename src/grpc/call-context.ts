import type { Metadata, ServerUnaryCall } from '@grpc/grpc-js';
import type { CallBudget } from '../domain/call-budget';

/** Who is calling and how long they will wait. */
export interface CallContext {
  /** Caller identity from the `x-actor` metadata; `anonymous` when absent. */
  actor: string;
  budget: CallBudget;
}

const ACTOR_KEY = 'x-actor';
const MAX_ACTOR_LENGTH = 200;

/**
 * Builds the context of one call: its budget ends at the gRPC deadline (or after
 * `defaultDeadlineMs` when the caller set none), and its signal fires when the
 * caller cancels.
 */
export function callContextOf(
  call: ServerUnaryCall<unknown, unknown>,
  defaultDeadlineMs: number,
): CallContext {
  const controller = new AbortController();
  call.once('cancelled', () => controller.abort(new Error('the caller cancelled the call')));
  return {
    actor: actorOf(call.metadata),
    budget: {
      deadline: deadlineOf(call.getDeadline(), defaultDeadlineMs),
      signal: controller.signal,
    },
  };
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
