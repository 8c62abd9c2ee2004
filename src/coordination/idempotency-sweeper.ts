import type { MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';

const BATCH = 1000;
// Any fixed number works, as long as nothing else uses it as an advisory lock key.
const SWEEP_LOCK_KEY = 728_145_001;

const CLAIM_SQL = `select pg_try_advisory_xact_lock(${SWEEP_LOCK_KEY}) as mine`;

// A statement of its own, after the lock: its snapshot then includes every
// batch the previous holder committed, so it counts only rows still there.
const SWEEP_SQL = `
delete from idempotency_record where ctid in (
  select ctid from idempotency_record where expires_at <= now() limit ${BATCH}
)`;

/**
 * Deletes expired idempotency keys in batches, on one replica at a time: each
 * batch runs only in the transaction that wins a shared advisory lock, and a
 * replica that finds the lock taken leaves the rest to the one holding it.
 */
export class IdempotencySweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /**
   * When this replica last finished a sweep it held the lock for (epoch ms);
   * the start counts as one, so a sweeper that never runs shows up as stalled.
   */
  private lastSweptAtMs = Date.now();

  constructor(
    private readonly orm: MikroORM,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      this.running ??= this.sweep()
        .then((deleted) => {
          if (deleted > 0) this.log.info({ deleted }, 'swept expired idempotency keys');
        })
        .catch((error: unknown) => this.log.warn({ err: error }, 'idempotency sweep failed'))
        .finally(() => (this.running = undefined));
    }, this.intervalMs);
    this.timer.unref();
  }

  /** Deletes every expired key this replica may; returns how many. */
  async sweep(): Promise<number> {
    let total = 0;
    for (;;) {
      const em = this.orm.em.fork();
      const deleted = await em.transactional(async (tx) => {
        const [claim] = await tx.execute<{ mine: boolean }[]>(CLAIM_SQL);
        if (!claim?.mine) return undefined;
        const result = await tx
          .getConnection()
          .execute<{ affectedRows: number }>(SWEEP_SQL, [], 'run', tx.getTransactionContext());
        return result.affectedRows;
      });
      // Another replica holds the lock: it sweeps on until nothing is left.
      if (deleted === undefined) return total;
      total += deleted;
      if (deleted < BATCH) {
        this.lastSweptAtMs = Date.now();
        return total;
      }
    }
  }

  /** Epoch ms of the last sweep this replica completed under the lock (or of its start). */
  lastSweptAt(): number {
    return this.lastSweptAtMs;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}
