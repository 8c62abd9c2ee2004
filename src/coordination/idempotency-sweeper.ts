import type { MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';

const BATCH = 1000;
// Any fixed number works, as long as nothing else uses it as an advisory lock key.
const SWEEP_LOCK_KEY = 728_145_001;

const SWEEP_SQL = `
with sweeper as (select pg_try_advisory_xact_lock(${SWEEP_LOCK_KEY}) as mine),
doomed as (
  select ctid from idempotency_record
  where expires_at <= now() and (select mine from sweeper)
  limit ${BATCH}
)
delete from idempotency_record where ctid in (select ctid from doomed)`;

/**
 * Deletes expired idempotency keys in batches, on one replica at a time: each
 * batch runs only in the transaction that wins a shared advisory lock.
 */
export class IdempotencySweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

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
        const result = await tx
          .getConnection()
          .execute<{ affectedRows: number }>(SWEEP_SQL, [], 'run', tx.getTransactionContext());
        return result.affectedRows;
      });
      total += deleted;
      if (deleted < BATCH) return total;
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}
