/**
 * Opening and preparing the database, written once for the service and the
 * CLI: with no DATABASE_URL both run on the same embedded PostgreSQL, and both
 * must release it in the same order.
 */
import type { MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import type { Config } from '../config';
import { migrateToLatest } from '../db/migrate';
import { createOrm } from '../db/orm';
import { type DemoSeedSummary, isDatabaseEmpty, seedDemoProgram } from './demo-seed-writer';
import { type EmbeddedDatabase, startEmbeddedDatabase } from './embedded-database';

/** Database name on the embedded server; the service and the CLI open the same one. */
const EMBEDDED_DATABASE = 'swap';

/** A connected ORM and, without DATABASE_URL, the embedded server under it. */
export interface OpenDatabase {
  readonly orm: MikroORM;
  /** True when it runs on the embedded server that this process started. */
  readonly embedded: boolean;
  /**
   * Closes the ORM, then stops the embedded server. Each step is attempted even
   * if the other fails, so no server is left running; failures are rethrown
   * together as an AggregateError, one error per step, named for it.
   */
  close(): Promise<void>;
}

export interface OpenDatabaseOptions {
  poolMax: number;
  /** Longest wait for a pooled connection; the default of `ormOptions` when absent. */
  acquireTimeoutMs?: number;
  /** Longest wait for a query's reply before the connection counts as hung; unwatched when absent. */
  replyTimeoutMs?: number;
  /** Every connection's session lock_timeout and statement_timeout; PostgreSQL's when absent. */
  sessionTimeoutMs?: number;
  log: Logger;
  /** Where the embedded server's own messages go; `log.info` when absent. */
  serverLog?: (message: string) => void;
}

/**
 * Connects to `settings.url` or, when it is absent, starts the embedded
 * PostgreSQL in `settings.embeddedDir` and connects to that. If connecting
 * fails, the embedded server is stopped again before the error is rethrown.
 */
export async function openDatabase(
  settings: Config['database'],
  options: OpenDatabaseOptions,
): Promise<OpenDatabase> {
  const { log } = options;
  let embedded: EmbeddedDatabase | undefined;
  let url = settings.url;
  if (url === undefined) {
    embedded = await startEmbeddedDatabase({
      dataDir: settings.embeddedDir,
      port: settings.embeddedPort,
      database: EMBEDDED_DATABASE,
      log: options.serverLog ?? ((message) => log.info(message)),
    });
    url = embedded.url;
    log.info(
      { dataDir: settings.embeddedDir, port: settings.embeddedPort },
      'no DATABASE_URL: using the embedded PostgreSQL',
    );
  }
  let orm: MikroORM;
  try {
    orm = await createOrm({
      clientUrl: url,
      poolMax: options.poolMax,
      acquireTimeoutMs: options.acquireTimeoutMs,
      ...(options.replyTimeoutMs !== undefined && { replyTimeoutMs: options.replyTimeoutMs }),
      ...(options.sessionTimeoutMs !== undefined && {
        sessionTimeoutMs: options.sessionTimeoutMs,
      }),
    });
  } catch (error) {
    // The connection failure is the error worth reporting; a failed stop would only hide it.
    await embedded?.stop().catch(() => undefined);
    throw error;
  }
  const server = embedded;
  return {
    orm,
    embedded: server !== undefined,
    close: async () => {
      const failures: Error[] = [];
      await orm.close().catch((error: unknown) => {
        failures.push(stepFailed('closing the ORM', error));
      });
      await server?.stop().catch((error: unknown) => {
        failures.push(stepFailed('stopping embedded PostgreSQL', error));
      });
      if (failures.length > 0) throw new AggregateError(failures, 'closing the database failed');
    },
  };
}

function stepFailed(step: string, error: unknown): Error {
  return new Error(`${step} failed: ${String(error)}`, { cause: error });
}

export interface PrepareDatabaseOptions {
  /** Apply the pending migrations first. */
  migrate: boolean;
  /** Seed the demo program if the database holds no schedule data. */
  seedDemo: boolean;
  /** ISO date; a seeded demo covers the academic year that contains it. */
  today: string;
  log: Logger;
}

/** What {@link prepareDatabase} did. */
export interface PreparedDatabase {
  /** Migrations applied now, in order; empty when none was pending or `migrate` was off. */
  applied: string[];
  /** The demo seed and how long it took; absent when `seedDemo` was off or data was there. */
  seeded: { summary: DemoSeedSummary; ms: number } | undefined;
}

/**
 * Brings the schema up to date and seeds the demo program into an empty
 * database, as `options` ask; logs what it applied and what it seeded.
 */
export async function prepareDatabase(
  orm: MikroORM,
  options: PrepareDatabaseOptions,
): Promise<PreparedDatabase> {
  const { log } = options;
  const applied = options.migrate ? await migrateToLatest(orm) : [];
  if (applied.length > 0) log.info({ applied }, 'applied migrations');
  if (!options.seedDemo || !(await isDatabaseEmpty(orm.em.fork()))) {
    return { applied, seeded: undefined };
  }
  const startedAt = performance.now();
  const summary = await seedDemoProgram(orm.em.fork(), { today: options.today });
  const ms = Math.round(performance.now() - startedAt);
  log.info({ ...summary }, 'seeded the demo program into the empty database');
  return { applied, seeded: { summary, ms } };
}
