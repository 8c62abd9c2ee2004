import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { migrateToLatest } from '../src/db/migrate';
import { createOrm } from '../src/db/orm';

/** A migrated database that belongs to one bench run and is dropped at its end. */
export interface BenchDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/**
 * Creates `swap_bench_<random>` on the server of `adminUrl` and migrates it with
 * the service's own migrations, so the bench measures the real schema.
 */
export async function createBenchDatabase(adminUrl: string): Promise<BenchDatabase> {
  const name = `swap_bench_${randomBytes(5).toString('hex')}`;
  await onAdmin(adminUrl, (admin) => admin.query(`create database "${name}"`));
  const url = withDatabase(adminUrl, name);
  const drop = () =>
    onAdmin(adminUrl, (admin) => admin.query(`drop database if exists "${name}" with (force)`));
  try {
    const orm = await createOrm({ clientUrl: url, poolMax: 2 });
    try {
      await migrateToLatest(orm);
    } finally {
      await orm.close();
    }
  } catch (error) {
    await drop().catch(() => undefined);
    throw error;
  }
  return { url, name, drop: async () => void (await drop()) };
}

async function onAdmin<T>(adminUrl: string, work: (admin: pg.Client) => Promise<T>): Promise<T> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    return await work(admin);
  } finally {
    await admin.end();
  }
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}
