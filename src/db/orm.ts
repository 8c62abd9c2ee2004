import { MikroORM, type Options } from '@mikro-orm/postgresql';
import { Migrator } from '@mikro-orm/migrations';
import type { Pool } from 'pg';
import { releaseBrokenConnections } from './broken-connections';
import { ENTITIES } from './entities';
import { prepareConnections } from './hung-connection';
import { MIGRATIONS } from './migrations';

export interface OrmOptions {
  clientUrl: string;
  poolMax: number;
  /** Longest wait for a pooled connection before the call fails UNAVAILABLE. */
  acquireTimeoutMs?: number;
  /**
   * Longest wait for any query's reply before its connection is destroyed as
   * hung (see `prepareConnections`); unwatched when absent (the CLI's migrations).
   */
  replyTimeoutMs?: number;
  /**
   * The lock_timeout and statement_timeout every connection's session starts
   * with, sent as a startup parameter (no round trip); PostgreSQL's (none)
   * when absent. The transaction runner then sets its own only when a call
   * has less time left than this.
   */
  sessionTimeoutMs?: number;
  debug?: boolean;
}

/** The ORM options, shared by the service, the CLI and the tests. */
export function ormOptions(options: OrmOptions): Options {
  const acquireTimeoutMs = options.acquireTimeoutMs ?? 10_000;
  return {
    clientUrl: options.clientUrl,
    entities: ENTITIES,
    // Entities are defined by EntitySchema, so no metadata needs reflecting.
    discovery: { warnWhenNoEntities: true },
    extensions: [Migrator],
    migrations: {
      migrationsList: MIGRATIONS,
      transactional: true,
      allOrNothing: true,
      snapshot: false,
      // migrateToLatest() reports what it applied through our own logger.
      silent: true,
    },
    pool: { min: 0, max: options.poolMax, idleTimeoutMillis: 30_000 },
    // Handed to the `pg.Pool` and its clients (MikroORM's pool options stop at
    // min, max and idle time).
    driverOptions: {
      // pg-pool applies it both to waiting for a free connection and to
      // opening a new one, so a connection whose startup is never answered (a
      // partition) does not hang for good holding its pool slot; either way
      // the caller gets UNAVAILABLE.
      connectionTimeoutMillis: acquireTimeoutMs,
      // Lets the kernel notice a peer that is gone while the connection idles.
      keepAlive: true,
      ...(options.sessionTimeoutMs !== undefined && {
        options: `-c lock_timeout=${options.sessionTimeoutMs} -c statement_timeout=${options.sessionTimeoutMs}`,
      }),
      // Before the pool hands out any connection, even the one MikroORM.init checks with.
      onPoolCreated: (pool: Pool) => {
        prepareConnections(pool, options.replyTimeoutMs);
        releaseBrokenConnections(pool);
      },
    },
    // The request scope is explicit: every unit of work forks its own EntityManager.
    allowGlobalContext: false,
    // Hydration never runs entity constructors; ours are plain data holders.
    forceEntityConstructor: false,
    // Relations are loaded only where a use case asks for them.
    populateAfterFlush: false,
    debug: options.debug ?? false,
  };
}

/** Connects the ORM; the caller owns it and must close it. */
export function createOrm(options: OrmOptions): Promise<MikroORM> {
  return MikroORM.init(ormOptions(options));
}
