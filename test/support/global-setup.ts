import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbeddedDatabase, type EmbeddedDatabase } from '../../src/dev/embedded-database';
import { createOrm } from '../../src/db/orm';
import { migrateToLatest } from '../../src/db/migrate';
import { adminClient, withDatabase } from './database-admin';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A URL on the test PostgreSQL server, for creating and dropping databases. */
    databaseAdminUrl: string;
    /** The migrated database that each test file clones; one per test run. */
    templateDatabase: string;
  }
}

let embedded: EmbeddedDatabase | undefined;
let adminUrl: string | undefined;
// Per run, so that two test runs on one server never share (or drop) a template.
const TEMPLATE_DATABASE = `swap_test_template_${process.pid}`;

/**
 * Tests run on real PostgreSQL: the server in DATABASE_URL when it is set (CI
 * sets it), otherwise an embedded one. A migrated template database is made
 * once; each test file clones it into a database of its own.
 */
export async function setup(project: TestProject): Promise<void> {
  adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    embedded = await startEmbeddedDatabase({
      dataDir: path.resolve('.data/test-postgres'),
      port: 54330,
      database: 'postgres',
      log: (m) => console.log(m),
    });
    adminUrl = embedded.url;
  }
  const admin = await adminClient(adminUrl);
  try {
    await admin.query(`drop database if exists "${TEMPLATE_DATABASE}" with (force)`);
    await admin.query(`create database "${TEMPLATE_DATABASE}"`);
  } finally {
    await admin.end();
  }
  const orm = await createOrm({ clientUrl: withDatabase(adminUrl, TEMPLATE_DATABASE), poolMax: 2 });
  try {
    await migrateToLatest(orm);
  } finally {
    await orm.close();
  }
  project.provide('databaseAdminUrl', adminUrl);
  project.provide('templateDatabase', TEMPLATE_DATABASE);
}

export async function teardown(): Promise<void> {
  if (adminUrl) {
    const admin = await adminClient(adminUrl);
    await admin
      .query(`drop database if exists "${TEMPLATE_DATABASE}" with (force)`)
      .finally(() => admin.end());
  }
  await embedded?.stop();
}
