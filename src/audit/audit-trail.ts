import { isSpanContextValid, trace } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { TransactionRunner } from '../db/transaction-runner';
import { budgetOf } from '../domain/call-budget';
import type { CommitStatement, MutationRecord, ReplayHook } from '../write-path/write-hooks';
import { APPEND_AUDIT_ENTRY, appendAuditEntry, auditEntryValues } from './audit-append';
import { type AuditEntry, rpcNameOf } from './audit-event';

/**
 * A call answered with an error, as the transport's error boundary or the
 * authentication interceptor saw it.
 */
export interface RefusalEvent {
  principal: string;
  onBehalfOf?: string | undefined;
  peer: string;
  /** The RPC's name or its gRPC path (`/swap.v1.SwapService/ExecuteSwap`). */
  method: string;
  /** The request_id as the caller sent it, if any; kept even when it is malformed. */
  requestId?: string | undefined;
  /** The status answered, by name (`PERMISSION_DENIED`). */
  status: string;
  /** The ErrorInfo reason the answer carried, if any. */
  reason?: string | null | undefined;
}

/**
 * The most a row written in a transaction of its own may take, whatever the
 * ceiling: a refused call's answer waits for its row, so a slow or unreachable
 * database delays that answer by at most this much, and refusals under an
 * outage cannot pile up waiting for pooled connections (the transaction
 * runner's limit ends the wait, the pool's included, at the budget). Not
 * less: under a burst the row may first wait for the chain's head lock behind
 * the calls committing (2 s lost rows on a loaded CI machine).
 */
export const MAX_STANDALONE_BUDGET_MS = 5_000;

/** A request_id is caller-chosen text until validated; longer ones are clipped. */
const MAX_REQUEST_ID = 128;

/**
 * The audit trail's writer. A committed mutation's row is appended in the
 * mutation's own transaction (the write path's commit hook); a replayed or
 * refused call's row in a transaction of its own, best effort: if that write
 * fails it is logged and the caller still gets the answer it was going to get.
 */
export class AuditTrail {
  /**
   * `standaloneBudgetMs` (capped at {@link MAX_STANDALONE_BUDGET_MS}) bounds
   * a row written in a transaction of its own, whatever the call had left:
   * waiting for the chain's head under load included, since every writer of
   * the trail takes its turn there.
   */
  constructor(
    private readonly transactions: TransactionRunner,
    private readonly log: Logger,
    standaloneBudgetMs: number,
  ) {
    this.standaloneBudgetMs = Math.min(standaloneBudgetMs, MAX_STANDALONE_BUDGET_MS);
  }

  private readonly standaloneBudgetMs: number;

  /**
   * The committed mutation's row, appended in its transaction (with its
   * answer, in one statement); a failure fails the mutation.
   */
  readonly committedRow: CommitStatement = {
    statement: APPEND_AUDIT_ENTRY,
    valuesOf: (mutation) => auditEntryValues(entryOf(mutation, false)),
  };

  /** Records a replay: OK, answered from the stored answer of an earlier call. */
  readonly onReplayed: ReplayHook = (mutation) => this.appendAlone(entryOf(mutation, true));

  /**
   * Records a refused call (any error status, an authentication or
   * authorization refusal among them). Never rejects.
   */
  recordRefusal(event: RefusalEvent): Promise<void> {
    const requestId = event.requestId ? event.requestId.slice(0, MAX_REQUEST_ID) : null;
    return this.appendAlone({
      principal: event.principal,
      onBehalfOf: event.onBehalfOf ?? null,
      peer: event.peer,
      method: rpcNameOf(event.method),
      requestId,
      requestFingerprint: null,
      status: event.status,
      reason: event.reason ?? null,
      replayed: false,
      swapIds: [],
      conflictIds: [],
      traceId: activeTraceId(),
    });
  }

  private async appendAlone(entry: AuditEntry): Promise<void> {
    try {
      // A budget of its own: the call's may be spent (DEADLINE_EXCEEDED) or cancelled.
      await this.transactions.transactionally(budgetOf(this.standaloneBudgetMs), (em) =>
        appendAuditEntry(em, entry),
      );
    } catch (error) {
      const { principal, method, requestId, status } = entry;
      this.log.error(
        { err: error, audit: { principal, method, requestId, status } },
        'audit event not recorded',
      );
    }
  }
}

function entryOf(mutation: MutationRecord, replayed: boolean): AuditEntry {
  const { caller, subjects } = mutation;
  return {
    principal: caller.principal,
    onBehalfOf: caller.onBehalfOf ?? null,
    peer: caller.peer,
    method: rpcNameOf(mutation.method),
    requestId: mutation.requestId,
    requestFingerprint: mutation.fingerprint,
    status: 'OK',
    reason: null,
    replayed,
    swapIds: [...subjects.swapIds],
    conflictIds: [...subjects.conflictIds],
    traceId: activeTraceId(),
  };
}

/** The trace of the active span, or empty when the call is not traced. */
function activeTraceId(): string {
  const context = trace.getActiveSpan()?.spanContext();
  return context && isSpanContextValid(context) ? context.traceId : '';
}
