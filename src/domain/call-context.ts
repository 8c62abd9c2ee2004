import type { CallBudget } from './call-budget';

/**
 * Who is calling and how long they will wait: all that a use case needs to
 * know of the call that reached it. The transport builds it once per call.
 */
export interface CallContext {
  /** The caller, recorded as requested, executed or rolled back by; scopes idempotency keys. */
  readonly actor: string;
  readonly budget: CallBudget;
}
