import type { CallBudget } from './call-budget';

/** Who is calling, as the transport established it. */
export interface Caller {
  /**
   * The authenticated principal: a client certificate's SPIFFE ID (or first DNS
   * SAN), or a token's `sub`; `anonymous` when authentication is off.
   */
  readonly principal: string;
  /** The person a delegating front-end acts for (`x-on-behalf-of`), if any. */
  readonly onBehalfOf: string | undefined;
  /** The peer address of the connection, for the audit trail. */
  readonly peer: string;
}

/**
 * Who is calling and how long they will wait: all that a use case needs to
 * know of the call that reached it. The transport builds it once per call.
 */
export interface CallContext {
  readonly caller: Caller;
  readonly budget: CallBudget;
}

/** What a change records as requested, executed or rolled back by. */
export function recordedActorOf(caller: Caller): string {
  return caller.onBehalfOf ? `${caller.onBehalfOf} (via ${caller.principal})` : caller.principal;
}

/**
 * The scope of an idempotency key: the principal, the person it acts for and
 * the method, so the same request id from anyone else is another key.
 */
export function idempotencyScopeOf(caller: Caller, method: string): string {
  return JSON.stringify([caller.principal, caller.onBehalfOf ?? null, method]);
}
