import type { MikroORM } from '@mikro-orm/postgresql';

export interface PoolStats {
  inUse: number;
  idle: number;
  /** Callers waiting for a connection. */
  waiting: number;
}

interface TarnPool {
  numUsed(): number;
  numFree(): number;
  numPendingAcquires(): number;
}

/** The connection pool's occupancy (knex's tarn pool under MikroORM). */
export function poolStats(orm: MikroORM): PoolStats {
  const client = orm.em.getConnection().getKnex().client as { pool?: TarnPool };
  const pool = client.pool;
  if (!pool) return { inUse: 0, idle: 0, waiting: 0 };
  return { inUse: pool.numUsed(), idle: pool.numFree(), waiting: pool.numPendingAcquires() };
}
