import type { EntityManager } from '@mikro-orm/postgresql';
import type { Caller } from '../domain/call-context';

/** The swaps and conflicts a mutation's answer concerns (what the audit trail files it under). */
export interface MutationSubjects {
  readonly swapIds: readonly string[];
  readonly conflictIds: readonly string[];
}

/** A mutation the write path has made or replayed, as its hooks are told of it. */
export interface MutationRecord {
  readonly caller: Caller;
  /** The use case's method, e.g. ExecuteSwap. */
  readonly method: string;
  readonly requestId: string;
  /** What the idempotency key was claimed with: SHA-256 of the request's canonical JSON. */
  readonly fingerprint: string;
  /** The answer: the one just made, or the one replayed. */
  readonly value: unknown;
  readonly subjects: MutationSubjects;
}

/**
 * Runs inside the mutation's transaction as its last statement, after the
 * answer is stored and right before COMMIT: what it writes commits with the
 * change or not at all. A hook that fails fails the call, which commits nothing.
 */
export type CommitHook = (em: EntityManager, mutation: MutationRecord) => Promise<void>;

/**
 * Runs after a replay has been decided, outside any transaction of the call.
 * It must not reject: the caller gets the stored answer whatever becomes of
 * the hook's own work.
 */
export type ReplayHook = (mutation: MutationRecord) => Promise<void>;

/** What `main.ts` plugs into the write path around each mutation (the audit trail). */
export interface MutationHooks {
  onCommitted?: readonly CommitHook[];
  onReplayed?: readonly ReplayHook[];
}
