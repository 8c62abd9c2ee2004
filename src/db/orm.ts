import { MikroORM, type Options } from '@mikro-orm/postgresql';
import { Migrator } from '@mikro-orm/migrations';
import type { Client } from 'pg';
import { ENTITIES } from './entities';
import { watchReplies } from './hung-connection';
import { MIGRATIONS } from './migrations';

export interface OrmOptions {
  clientUrl: string;
  poolMax: number;
  /** Longest wait for a pooled connection before the call fails UNAVAILABLE. */
  acquireTimeoutMs?: number;
  /**
   * Longest wait for any query's reply before its connection is destroyed as
   * hung (see `watchReplies`); unwatched when absent (the CLI's migrations).
   */
  replyTimeoutMs?: number;
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
    pool: {
      min: 0,
      max: options.poolMax,
      idleTimeoutMillis: 30_000,
      acquireTimeoutMillis: acquireTimeoutMs,
      ...(options.replyTimeoutMs !== undefined && {
        afterCreate: watching(options.replyTimeoutMs),
      }),
    },
    driverOptions: {
      // node-postgres settings. A connection whose startup is never answered
      // (a partition) would otherwise hang for good and keep its pool slot:
      // the pool would wait for it instead of opening another once the
      // network heals. Keepalive lets the kernel notice a peer that is gone.
      connection: { connectionTimeoutMillis: acquireTimeoutMs, keepAlive: true },
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

/** The pool's hook on every new connection (knex's `afterCreate`; `pool.on('connect')` under pg.Pool). */
function watching(replyTimeoutMs: number) {
  return (connection: Client, done: (error: Error | null, connection: Client) => void) => {
    watchReplies(connection, replyTimeoutMs);
    done(null, connection);
  };
}
