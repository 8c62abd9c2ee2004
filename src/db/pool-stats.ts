import type { MikroORM } from '@mikro-orm/postgresql';
import type { Pool } from 'pg';

export interface PoolStats {
  inUse: number;
  idle: number;
  /** Callers waiting for a connection. */
  waiting: number;
}

/** The pg pool behind MikroORM's connection (MikroORM 7 runs kysely over a plain `pg.Pool`). */
export function connectionPool(orm: MikroORM): Promise<Pool> {
  return orm.em.getConnection().getNativeClient();
}

/** The connection pool's occupancy; connections still being opened count as in use. */
export function poolStats(pool: Pool): PoolStats {
  return {
    inUse: pool.totalCount - pool.idleCount,
    idle: pool.idleCount,
    waiting: pool.waitingCount,
  };
}
