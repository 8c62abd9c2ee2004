import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isConnectionFailure, isPoolTimeout } from '../src/db/connection-failure';
import { type BlackholeProxy, startBlackholeProxy } from './support/blackhole-proxy';
import { createTestDatabase, type TestDatabase } from './support/test-database';

/**
 * The classifier against the errors the pool under MikroORM 7 really raises
 * (pg-pool, not knex's tarn): their messages are all it has to go on, so an
 * upgrade that rewords them must fail here rather than turn UNAVAILABLE into
 * INTERNAL. The pools are real, against the test PostgreSQL.
 */

let db: TestDatabase;
let proxy: BlackholeProxy;

beforeAll(async () => {
  db = await createTestDatabase();
  proxy = await startBlackholeProxy(Number(new URL(db.url).port || 5432));
});
afterAll(async () => {
  await proxy?.close();
  await db?.drop();
});

async function failureOf(attempt: Promise<unknown>): Promise<unknown> {
  try {
    await attempt;
  } catch (error) {
    return error;
  }
  throw new Error('expected the attempt to fail');
}

describe('pg-pool failures', () => {
  it('a full pool whose connections stay busy is a pool timeout, not a lost connection', async () => {
    const pool = new pg.Pool({ connectionString: db.url, max: 1, connectionTimeoutMillis: 100 });
    const held = await pool.connect();
    try {
      const error = await failureOf(pool.connect());
      expect((error as Error).message).toBe('timeout exceeded when trying to connect');
      expect(isPoolTimeout(error)).toBe(true);
      expect(isPoolTimeout(new Error('wrapped', { cause: error }))).toBe(true);
      expect(isConnectionFailure(error)).toBe(false);
    } finally {
      held.release();
      await pool.end();
    }
  });

  it('a connection that does not open in time is a lost connection', async () => {
    const url = new URL(db.url);
    url.host = `127.0.0.1:${proxy.port}`;
    // The server's half of the handshake never arrives.
    proxy.arm();
    const pool = new pg.Pool({ connectionString: url.toString(), connectionTimeoutMillis: 100 });
    try {
      const error = await failureOf(pool.connect());
      expect((error as Error).message).toBe('Connection terminated due to connection timeout');
      expect(isConnectionFailure(error)).toBe(true);
      expect(isPoolTimeout(error)).toBe(false);
    } finally {
      proxy.disarm();
      await pool.end();
    }
  });

  it('a statement on a connection whose backend was terminated is a lost connection', async () => {
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    const client = await pool.connect();
    client.on('error', () => undefined);
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      const {
        rows: [row],
      } = await client.query<{ pid: number }>('select pg_backend_pid() as pid');
      await admin.query('select pg_terminate_backend($1)', [row!.pid]);
      const error = await failureOf(client.query('select 1'));
      expect(isConnectionFailure(error)).toBe(true);
      expect(isPoolTimeout(error)).toBe(false);
    } finally {
      client.release(true);
      await admin.end();
      await pool.end();
    }
  });
});
