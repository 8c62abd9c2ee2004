import { createHash } from 'node:crypto';
import v8 from 'node:v8';
import type { IdempotencyStore, StoredResponse } from '../coordination/idempotency-store';
import type { LockGuard } from '../coordination/lock-guard';
import type { ScheduleLocks } from '../coordination/schedule-locks';
import type { TransactionRunner } from '../db/transaction-runner';
import { type CallContext, idempotencyScopeOf, recordedActorOf } from '../domain/call-context';
import {
  InvalidArgumentError,
  PreconditionFailedError,
  type RuleViolation,
} from '../domain/errors';
import type { ServiceTelemetry } from '../observability/service-telemetry';
import { type WriteContext, writeContextOf } from './write-context';
import type { MutationRecord, MutationSubjects, WriteHooks } from './write-hooks';

/** A write that needs the call's locks and one transaction, but no idempotency key. */
export interface LockedWrite<T> {
  /** The lock names the change touches. */
  lockNames: readonly string[];
  /**
   * How long to wait for the locks: LOCK_WAIT_MS (the default), or the whole
   * call budget, for a write whose lock only keeps duplicate work apart (a
   * burst of detections queues instead of failing LOCK_TIMEOUT).
   */
  lockWait?: 'configured' | 'budget';
  /** The change itself: inside the transaction, under the locks. */
  change: (ctx: WriteContext) => Promise<T>;
}

/** What identifies a mutating call and its answer, whatever the change. */
export interface MutationKey<T> {
  /** The RPC; with the caller it scopes the key, so the same id elsewhere is another key. */
  method: string;
  requestId: string;
  /**
   * What the caller asked for, without the request id, and never anything the
   * server decided (an option it picked, a row it read): a reused key with
   * another request is refused, and a retry of the same request replays.
   */
  request: unknown;
  /** The swaps and conflicts the answer concerns, recorded with it; none unless given. */
  subjects?: (value: T) => MutationSubjects;
}

/**
 * One mutating call, as a use case describes it. The answer `T` is stored with
 * the change, so it must be plain data (what structured clone keeps: no
 * methods, no entity references).
 */
export interface Mutation<T> extends MutationKey<T>, LockedWrite<T> {}

/**
 * A mutating call whose locks and change follow from what it reads first (a
 * resolution picks its option from the alert's current state). `plan` runs
 * only once the key is known to have no committed answer: a retry replays what
 * the first call did instead of planning again against the state it left.
 * It may throw to refuse the call; nothing is written then.
 */
export interface PlannedMutation<T> extends MutationKey<T> {
  plan: () => Promise<LockedWrite<T>>;
}

/** The answer of a mutating call, and whether it was replayed rather than recomputed. */
export interface Committed<T> {
  value: T;
  /** True when a committed earlier call with this key answered, and nothing ran. */
  replayed: boolean;
}

/**
 * The one write path. Every mutating call goes through `commit`, which owns the
 * whole protocol, in this order:
 *
 * 1. replay: a committed answer for the key (in the replay cache, asked for
 *    while step 2 takes the locks; for a planned mutation, in the database
 *    too, before its plan) is returned as is; otherwise a planned mutation
 *    makes its plan (what to lock and change);
 * 2. locks: the distributed locks on the change's names (advisory locks if Redis is out);
 * 3. transaction: one unit of work per attempt, retried on conflicts within the budget;
 * 4. guard: the lock enters the transaction (advisory locks are taken here);
 * 5. idempotency: the key is claimed in the transaction;
 * 6. change: the use case's change, whose row-lock helper fences as it locks,
 *    and whose schedule-change announcements run the hooks in the same transaction;
 * 7. answer: stored under the key, committed with the change or not at all,
 *    the commit statements (the audit row) in the same statement;
 * 8. commit hooks: the last work before COMMIT (none in production).
 *
 * A replay (step 1, or a key found committed at step 5) runs the replay hooks
 * instead. A change the schedule refuses (FAILED_PRECONDITION) rolls its
 * attempt back; the refusal is then the key's answer, claimed and stored in a
 * transaction of its own under the same locks (steps 3–5 and 7, no change).
 * Use cases only describe the call; none of them can skip a step.
 */
export class WritePath {
  constructor(
    private readonly locks: ScheduleLocks,
    private readonly idempotency: IdempotencyStore,
    private readonly transactions: TransactionRunner,
    private readonly telemetry: ServiceTelemetry,
    private readonly hooks: WriteHooks,
  ) {}

  /** Runs a mutating call exactly once per request id, as described above. */
  async commit<T>(
    call: CallContext,
    mutation: Mutation<T> | PlannedMutation<T>,
  ): Promise<Committed<T>> {
    const { requestId } = mutation;
    const scope = idempotencyScopeOf(call.caller, mutation.method);
    const fingerprint = fingerprintOf(mutation.request);
    let write: LockedWrite<T>;
    // A plain mutation's cached answer, asked for while its locks are taken.
    let early: Promise<StoredResponse | undefined> | undefined;
    if ('plan' in mutation) {
      const lookup = () =>
        this.transactions.outsideTransaction(call.budget, (em) =>
          this.idempotency.lookup(em, scope, requestId),
        );
      const earlier = await lookup();
      if (earlier) return this.replay(call, mutation, fingerprint, earlier);
      try {
        write = await mutation.plan();
      } catch (error) {
        // A duplicate of this call may have committed since the lookup, and the
        // plan then saw the state it left (an alert already resolved, say).
        const committed = await lookup();
        if (committed) return this.replay(call, mutation, fingerprint, committed);
        throw error;
      }
    } else {
      // Only the cache is asked: a committed answer in the database is found
      // by the claim, in the transaction, as surely as by a read before it. And
      // it is asked while the locks are taken, its GET sent just before the
      // lock script on the same connection: one round trip for both, so a
      // fresh key (nearly every call) costs no wait of its own, and a hit gives
      // its locks back unused (after waiting for them if another call holds
      // them, at most the lock wait: a hit outranks a lock timeout).
      early = this.idempotency.cached(scope, requestId);
      write = mutation;
    }
    // The refusal the change threw, if it did: it rolls its attempt back.
    let refusal: PreconditionFailedError | undefined;
    const outcome = await this.locks
      .withLocks(write.lockNames, call.budget, write.lockWait, async (guard) => {
        const cached = await early;
        if (cached) return { kind: 'replay' as const, committed: cached };
        try {
          return await this.inTransaction(call, guard, async (ctx) => {
            const committed = await this.idempotency.claim(ctx.em, scope, requestId, fingerprint);
            if (committed) return { kind: 'replay' as const, committed };
            const value = await write.change(ctx).catch((error: unknown) => {
              if (error instanceof PreconditionFailedError) refusal = error;
              throw error;
            });
            // Flushed first, so the answer (and its replays) carries the stored versions.
            await ctx.em.flush();
            const response = v8.serialize(value);
            // Timed from before the statement is sent, so the round trip counts
            // against the cache's lifetime rather than extending it.
            const measuredAt = performance.now();
            // Last, so whatever a commit statement locks (the audit chain's
            // head) is held for the COMMIT alone; in the answer's own statement,
            // so the audit row costs no round trip of its own.
            const record = recordOf(call, mutation, fingerprint, value);
            const riders = this.hooks.commitStatements.map((hook) => ({
              statement: hook.statement,
              values: hook.valuesOf(record),
            }));
            const ttlMs = await this.idempotency.complete(
              ctx.em,
              scope,
              requestId,
              response,
              riders,
            );
            for (const hook of this.hooks.committed) await hook(ctx.em, record);
            return { kind: 'fresh' as const, value, response, ttlMs, measuredAt };
          });
        } catch (error) {
          if (refusal === undefined || error !== refusal) throw error;
          // The schedule refused the call under its claimed key: that refusal
          // is the key's answer, committed with nothing else (what the change
          // wrote went with its attempt), still under the locks, so that a
          // duplicate delivered while the schedule moves on gets the same
          // refusal, never a change under an id already refused. A duplicate
          // that committed in between (the key was free once the attempt
          // rolled back) is replayed instead: either way, one answer.
          const refused = refusal;
          return this.inTransaction(call, guard, async (ctx) => {
            const committed = await this.idempotency.claim(ctx.em, scope, requestId, fingerprint);
            if (committed) return { kind: 'replay' as const, committed };
            const stored: StoredRefusal = { [REFUSAL]: refused.violations };
            await this.idempotency.complete(ctx.em, scope, requestId, v8.serialize(stored));
            return { kind: 'refused' as const, error: refused };
          });
        }
      })
      .catch(async (error: unknown) => {
        const cached = await early;
        if (cached) return { kind: 'replay' as const, committed: cached };
        throw error;
      });
    if (outcome.kind === 'replay')
      return this.replay(call, mutation, fingerprint, outcome.committed);
    if (outcome.kind === 'refused') throw outcome.error;
    // The key's time left was measured by the database; what has passed since, by us.
    const ttlMs = outcome.ttlMs - (performance.now() - outcome.measuredAt);
    // Best effort, and never worth a round trip of the caller's time: not awaited.
    void this.idempotency.remember(
      scope,
      requestId,
      { fingerprint, response: outcome.response },
      ttlMs,
    );
    return { value: outcome.value, replayed: false };
  }

  /**
   * Runs a write that is idempotent by nature (detection: its unique index
   * makes a second run raise nothing), under the locks and in one transaction.
   */
  commitLocked<T>(call: CallContext, write: LockedWrite<T>): Promise<T> {
    return this.underLocks(call, write, (ctx) => write.change(ctx));
  }

  private underLocks<T>(
    call: CallContext,
    write: LockedWrite<unknown>,
    work: (ctx: WriteContext) => Promise<T>,
  ): Promise<T> {
    return this.locks.withLocks(write.lockNames, call.budget, write.lockWait, (guard) =>
      this.inTransaction(call, guard, work),
    );
  }

  /** One transaction (retried as the runner retries), entered under `guard`. */
  private inTransaction<T>(
    call: CallContext,
    guard: LockGuard,
    work: (ctx: WriteContext) => Promise<T>,
  ): Promise<T> {
    return this.transactions.transactionally(guard.budget, async (em) => {
      await guard.enter(em);
      return work(
        writeContextOf(em, recordedActorOf(call.caller), guard, this.hooks.scheduleChanged),
      );
    });
  }

  private async replay<T>(
    call: CallContext,
    mutation: MutationKey<T>,
    fingerprint: string,
    stored: StoredResponse,
  ): Promise<Committed<T>> {
    if (stored.fingerprint !== fingerprint) {
      throw new InvalidArgumentError(
        'request_id',
        'was already used for a different request; use a new request_id for a new request',
        'IDEMPOTENCY_KEY_REUSED',
      );
    }
    const answer = v8.deserialize(stored.response) as T | StoredRefusal;
    // A refusal replays as the same refusal; it is no OK answer to audit.
    if (isRefusal(answer)) throw new PreconditionFailedError(answer[REFUSAL]);
    this.telemetry.replays.add(1, { method: mutation.method });
    const value = answer;
    const record = recordOf(call, mutation, fingerprint, value);
    for (const hook of this.hooks.replayed) await hook(record);
    return { value, replayed: true };
  }
}

function recordOf<T>(
  call: CallContext,
  mutation: MutationKey<T>,
  fingerprint: string,
  value: T,
): MutationRecord {
  return {
    caller: call.caller,
    method: mutation.method,
    requestId: mutation.requestId,
    fingerprint,
    value,
    subjects: mutation.subjects?.(value) ?? { swapIds: [], conflictIds: [] },
  };
}

/** SHA-256 of the request as canonical JSON (object keys sorted), so field order never matters. */
function fingerprintOf(request: unknown): string {
  return createHash('sha256').update(canonicalJson(request)).digest('hex');
}

function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/** The key under which a stored answer is a refusal; no use case's answer has it. */
const REFUSAL = '$refusedWith';

/** A FAILED_PRECONDITION committed as a key's answer: the rules it broke. */
interface StoredRefusal {
  [REFUSAL]: readonly RuleViolation[];
}

function isRefusal(answer: unknown): answer is StoredRefusal {
  return typeof answer === 'object' && answer !== null && REFUSAL in answer;
}

/** Whether a key's stored answer is a refusal rather than a change's answer. */
export function isStoredRefusal(response: Uint8Array): boolean {
  return isRefusal(v8.deserialize(response));
}
