import { MikroORM, type Options } from '@mikro-orm/postgresql';
import { Migrator } from '@mikro-orm/migrations';
import { ENTITIES } from './entities';
import { MIGRATIONS } from './migrations';

export interface OrmOptions {
  clientUrl: string;
  poolMax: number;
  /** Longest wait for a pooled connection before the call fails UNAVAILABLE. */
  acquireTimeoutMs?: number;
  debug?: boolean;
}

/** The ORM options, shared by the service, the CLI and the tests. */
export function ormOptions(options: OrmOptions): Options {
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
      acquireTimeoutMillis: options.acquireTimeoutMs ?? 10_000,
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
