/** One row of the audit trail, as it is read back. */
export interface AuditEvent {
  /** Position in the chain; ids increase in chain order (with gaps where an append rolled back). */
  id: string;
  /** When the row was appended (the database's clock, to the millisecond). */
  at: Date;
  principal: string;
  onBehalfOf: string | null;
  peer: string;
  /** The RPC's name, e.g. ExecuteSwap. */
  method: string;
  requestId: string | null;
  requestFingerprint: string | null;
  /** The gRPC status answered, by name: OK, FAILED_PRECONDITION, UNAUTHENTICATED, … */
  status: string;
  /** The ErrorInfo reason of a refusal. */
  reason: string | null;
  /** An OK answered from the stored answer of an earlier call: nothing ran. */
  replayed: boolean;
  swapIds: string[];
  conflictIds: string[];
  /** The call's trace, empty when it was not traced. */
  traceId: string;
  prevHash: string;
  hash: string;
}

/** What is appended; the database adds the id, the time and the chain's hashes. */
export type AuditEntry = Omit<AuditEvent, 'id' | 'at' | 'prevHash' | 'hash'>;

/**
 * The RPC's name from a method as any layer names it: `ExecuteSwap`, or the
 * gRPC path `/swap.v1.SwapService/ExecuteSwap`. The trail stores this form.
 */
export function rpcNameOf(method: string): string {
  return method.slice(method.lastIndexOf('/') + 1);
}
