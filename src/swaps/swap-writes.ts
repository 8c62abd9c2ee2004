import type { EntityManager } from '@mikro-orm/postgresql';
import type { SwapMoves, SwapRecord } from './swap-record.entity';

/**
 * How a swap's changes reach the database, inside the attempt's unit of work.
 * Every move names its row, its holder before and after, and the version the
 * row has once moved, so each change is checked against the version the swap
 * judged. Two implementations: prepared statements (the default) and the
 * ORM's own loading and flushing (`SCHEDULE_WRITES=orm`, kept so the bench can
 * measure one against the other).
 */
export interface SwapWrites {
  /**
   * Records `swap`, a new record not yet persisted, and makes its moves: every
   * row goes from `fromPersonId` to `toPersonId`, its version bumped to
   * `version`. A row that is no longer held by `fromPersonId` at
   * `version - 1` raises MikroORM's `OptimisticLockError` (the facts were
   * stale: the transaction runner starts the attempt over).
   */
  execute(em: EntityManager, swap: SwapRecord): Promise<void>;
  /**
   * Moves every row of `moves` back to `fromPersonId`, if it is still as the
   * swap left it (held by `toPersonId`, at `version`), and returns the moves
   * whose rows are not. When it returns any, the caller must refuse: rows
   * already moved back are undone with the refusal.
   */
  revert(em: EntityManager, moves: SwapMoves): Promise<SwapMoves>;
}
