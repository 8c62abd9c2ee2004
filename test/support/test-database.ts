import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { adminClient, withDatabase } from './database-admin';

/** A migrated database of one test file's own, cloned from the template. */
export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const adminUrl = inject('databaseAdminUrl');
  const template = inject('templateDatabase');
  const name = `swap_test_${randomBytes(5).toString('hex')}`;
  const admin = await adminClient(adminUrl);
  try {
    await admin.query(`create database "${name}" template "${template}"`);
  } finally {
    await admin.end();
  }
  return {
    url: withDatabase(adminUrl, name),
    name,
    drop: async () => {
      const client = await adminClient(adminUrl);
      try {
        await client.query(`drop database if exists "${name}" with (force)`);
      } finally {
        await client.end();
      }
    },
  };
}
