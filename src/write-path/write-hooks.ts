import type { EntityManager } from '@mikro-orm/postgresql';
import type { PreparedStatement } from '../db/prepared-statement';
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
 * One statement of the mutation's transaction, sent in the same statement as
 * the stored answer (one round trip for both), the transaction's last but for
 * the {@link CommitHook}s: what it writes commits with the change or not at
 * all, and if it fails the call fails and commits nothing. It runs in the
 * answer's snapshot, so it must not read what the answer writes.
 */
export interface CommitStatement {
  readonly statement: PreparedStatement<object>;
  /** The values of the statement's placeholders, for this mutation. */
  valuesOf(mutation: MutationRecord): readonly unknown[];
}

/**
 * Runs inside the mutation's transaction after the answer is stored and its
 * {@link CommitStatement}s ran, right before COMMIT: what it writes commits
 * with the change or not at all. A hook that fails fails the call, which
 * commits nothing.
 */
export type CommitHook = (em: EntityManager, mutation: MutationRecord) => Promise<void>;

/**
 * Runs after a replay has been decided, outside any transaction of the call.
 * It must not reject: the caller gets the stored answer whatever becomes of
 * the hook's own work.
 */
export type ReplayHook = (mutation: MutationRecord) => Promise<void>;

/** What a change announces once it has moved schedule rows. */
export interface ScheduleChange {
  /** The swap that made the change, recorded on whatever the hooks raise. */
  swapId: string;
  /** The faculty whose schedule changed. */
  facultyIds: readonly string[];
  /** The Mondays of the weeks that changed. */
  weeks: readonly string[];
}

/**
 * Runs in the same transaction as the change that announced it, as the change
 * announces it (conflict detection; later the outbox).
 */
export type ScheduleChangeHook = (em: EntityManager, change: ScheduleChange) => Promise<void>;

/**
 * Everything `main.ts` plugs into the write path: the write path calls them
 * and imports none of their modules.
 */
export interface WriteHooks {
  /** Conflict detection. */
  scheduleChanged: readonly ScheduleChangeHook[];
  /** The audit trail's committed row. */
  commitStatements: readonly CommitStatement[];
  /** Work of its own right before COMMIT (none in production; faults in tests). */
  committed: readonly CommitHook[];
  /** The audit trail's replay row. */
  replayed: readonly ReplayHook[];
}
